"""`lookalike train autoencoder|triplet|bovw`, then index and search with the trained model,
as a user runs them (fresh processes), on real Fashion-MNIST images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lookalike.evaluation.datasets import FASHION_MNIST_DIR, fashion_mnist
from tests.helpers import json_lines, run_cli, top_path

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.skipif(
        not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
        reason=f"Fashion-MNIST is not installed at {FASHION_MNIST_DIR} "
        "(Debian: dataset-fashion-mnist)",
    ),
]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 labelled training images, one subfolder per class."""
    return fashion_mnist(tmp_path_factory.mktemp("fm"), split="train", limit=120).root


def test_help_lists_the_three_trainers() -> None:
    result = run_cli("train", "--help")
    assert result.returncode == 0
    for command in ("autoencoder", "triplet", "bovw"):
        assert command in result.stdout


def test_autoencoder_index_search_and_retrain(photos: Path, tmp_path: Path) -> None:
    model = tmp_path / "ae"
    train = ("train", "autoencoder", photos, "--out", model, "--image-size", "16")
    small = ("--latent-dim", "16", "--width", "8", "--epochs", "2", "--threads", "1", "-q")
    result = run_cli(*train, *small)
    assert result.returncode == 0, result.stderr
    assert "Saved to" in result.stdout
    assert (model / "reconstructions.png").is_file()

    index = tmp_path / "idx"
    result = run_cli("index", photos, "--index", index, "--embedder", model, "-q", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["added"] == 120
    info = json.loads(run_cli("info", "--index", index, "--json").stdout)
    assert info["embedder"] == "trained" and info["dim"] == 16
    assert info["embedder_params"] == {"path": str(model.resolve())}

    query = sorted(photos.rglob("*.png"))[7]
    result = run_cli("search", query, "--index", index, "--json", "-k", "3")
    assert result.returncode == 0, result.stderr
    assert top_path(json_lines(result.stdout)[0]) == str(query.resolve())

    # Another model under the same path must not be mixed into the old index.
    result = run_cli(*train, *small, "--seed", "5")
    assert result.returncode == 0, result.stderr
    result = run_cli("search", query, "--index", index)
    assert result.returncode == 2
    assert "rebuild the index" in result.stderr and "Traceback" not in result.stderr


def test_triplet_reports_held_out_map(photos: Path, tmp_path: Path) -> None:
    model = tmp_path / "head"
    args = ("--dim", "32", "--epochs", "5", "--threads", "1", "--force", "-q")
    result = run_cli("train", "triplet", photos, "--out", model, *args)
    assert result.returncode == 0, result.stderr
    assert "Held-out mAP" in result.stdout
    config = json.loads((model / "lookalike-model.json").read_text())
    assert config["kind"] == "triplet" and config["base"] == "efficientnet-lite0"
    assert 0.0 < config["validation_map_base"] <= 1.0


def test_bovw_trains(photos: Path, tmp_path: Path) -> None:
    model = tmp_path / "bovw"
    args = ("--words", "16", "--image-size", "64", "-q")
    result = run_cli("train", "bovw", photos, "--out", model, *args)
    assert result.returncode == 0, result.stderr
    assert json.loads((model / "lookalike-model.json").read_text())["words"] == 16


def test_user_errors_are_one_line(photos: Path, tmp_path: Path) -> None:
    unlabelled = tmp_path / "flat"
    unlabelled.mkdir()
    for path in sorted(photos.rglob("*.png"))[:4]:
        (unlabelled / path.name).write_bytes(path.read_bytes())
    cases = [
        (("train", "autoencoder", tmp_path / "missing", "--out", tmp_path / "m"), "not found"),
        (("train", "triplet", unlabelled, "--out", tmp_path / "m"), "class subfolder"),
        (("train", "autoencoder", photos, "--out", tmp_path / "m", "--image-size", "20"), "16"),
        (("index", photos, "--index", tmp_path / "i", "--embedder", tmp_path), "unknown embedder"),
    ]
    for args, message in cases:
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
