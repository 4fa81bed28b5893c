"""`lookalike evaluate` on real images: a labelled Fashion-MNIST folder, a UKBench-style folder
and a copy-detection set, through the real engine, with a report a browser can open offline."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from lookalike.evaluation.copies import CopySet
from lookalike.evaluation.datasets import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    copy_detection,
    detect,
    read_idx,
    ukbench,
)
from lookalike.evaluation.runner import EvalOptions, embedder_list, evaluate
from tests.helpers import run_cli

needs_fmnist = pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists(),
    reason="Debian's dataset-fashion-mnist is not installed (CI installs it)",
)


@pytest.fixture(scope="module")
def fmnist_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 Fashion-MNIST test images as a labelled folder (one subfolder per class)."""
    root = tmp_path_factory.mktemp("fmnist") / "labelled"
    images = read_idx(FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz")[:400]
    labels = read_idx(FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz")[:400]
    for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / FASHION_MNIST_CLASSES[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return root


def test_read_idx_matches_the_fashion_mnist_header() -> None:
    if not (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("dataset-fashion-mnist not installed")
    images = read_idx(FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10_000, 28, 28) and labels.shape == (10_000,)
    assert sorted(set(labels.tolist())) == list(range(10))
    assert labels[:5].tolist() == [9, 2, 1, 1, 6]  # the published first test labels


@pytest.mark.heavy
@needs_fmnist
def test_evaluate_cli_on_a_labelled_folder_writes_table_json_and_report(
    fmnist_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    result = run_cli("evaluate", fmnist_folder, "--out", out)
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "results.json").read_text())
    by_name = {r["embedder"]: r for r in data["results"]}
    assert list(by_name) == ["lite0", "pixels", "colour-histogram"]  # baselines always there
    assert data["dataset"]["queries"] == 400 and data["dataset"]["kind"] == "labelled"
    for row in by_name.values():
        assert 0.0 < row["map"] <= 1.0
        assert 0.0 <= row["precision_at_10"] <= 1.0 and row["images_per_second"] > 0
        assert row["ns"] is None  # no N-S for a labelled folder
    # Real signal, not noise: 10 classes means chance-level P@10 is about 0.1.
    assert by_name["lite0"]["precision_at_10"] > 0.5
    assert by_name["lite0"]["map"] > by_name["colour-histogram"]["map"]
    assert "| lite0 |" in (out / "results.md").read_text()
    assert "mAP" in result.stdout and "lite0" in result.stdout
    page = (out / "index.html").read_text()
    sources = re.findall(r'src="([^"]+)"', page)
    assert len(sources) >= 1 + 3 * 3  # PR curves + histogram, montage and t-SNE per embedder
    for source in sources:
        assert "://" not in source and (out / source).is_file()
        with Image.open(out / source) as image:
            assert image.width > 200
    assert "http://" not in page and "https://" not in page


@pytest.mark.heavy
@needs_fmnist
def test_pca_rows_show_what_dimension_reduction_costs(fmnist_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "pca"
    result = run_cli(
        "evaluate", fmnist_folder, "--out", out, "--no-baselines", "--no-plots",
        "--pca", "16", "--pca", "128", "--pca", "4096",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {r["embedder"]: r for r in json.loads((out / "results.json").read_text())["results"]}
    assert list(rows) == ["lite0", "lite0 + PCA 16", "lite0 + PCA 128"]  # 4096 > 1280: skipped
    assert "no PCA to 4096" in result.stderr
    assert [r["dim"] for r in rows.values()] == [1280, 16, 128]
    assert rows["lite0 + PCA 128"]["bytes_per_vector"] == 512
    full, small, mid = (rows[n]["map"] for n in rows)
    # 128 components keep nearly all of the quality; 16 keep the classes apart, but lose some.
    assert abs(mid - full) < 0.03 and 0.5 * full < small < mid + 0.03
    assert all(r["search_ms"] > 0 for r in rows.values())

    dataset = detect(fmnist_folder, tmp_path)
    options = EvalOptions(workers=0, pca_dims=(32,), whiten=True)
    plain, whitened = evaluate(dataset, ["lite0"], tmp_path / "w", options=options)
    assert whitened.name == "lite0 + PCA 32 whitened" and whitened.dim == 32
    assert whitened.scores != plain.scores and whitened.scores.precision_at_10 > 0.5
    bad = run_cli("evaluate", fmnist_folder, "--out", out, "--whiten")
    assert bad.returncode == 2 and "--whiten needs --pca" in bad.stderr


@needs_fmnist
def test_evaluation_is_reproducible_to_the_digit(fmnist_folder: Path, tmp_path: Path) -> None:
    dataset = detect(fmnist_folder, tmp_path)
    first = evaluate(dataset, ["pixels"], tmp_path / "a", options=EvalOptions(workers=0))
    second = evaluate(dataset, ["pixels"], tmp_path / "b", options=EvalOptions(workers=0))
    assert first[0].scores == second[0].scores


@pytest.mark.heavy
def test_ukbench_layout_and_ns_score(copy_set: CopySet, tmp_path: Path) -> None:
    """Groups of four: each original with three of its copies, named like UKBench."""
    root = tmp_path / "ukbench"
    root.mkdir()
    by_original: dict[str, list[Path]] = {}
    for pair in copy_set.copies:
        by_original.setdefault(pair.original.name, []).append(pair.copy)
    number = 0
    for original in copy_set.originals:
        members = [
            original,
            *[
                c
                for c in by_original[original.name]
                if c.stem.split("__")[1] in ("hflip", "crop60", "grey")
            ],
        ]
        for member in members:
            shutil.copy(member, root / f"ukbench{number:05d}.jpg")
            number += 1
    dataset = detect(root, tmp_path)
    assert dataset.kind == "ukbench" and dataset.has_ns and len(dataset.items) == 32
    results = evaluate(
        dataset, ["lite0", "colour-histogram"], tmp_path / "out", options=EvalOptions(workers=0)
    )
    lite0, histogram = results
    assert lite0.scores.ns is not None and 3.5 <= lite0.scores.ns <= 4.0
    assert histogram.scores.ns is not None and histogram.scores.ns < lite0.scores.ns
    assert ukbench(root).items[5].group == "00001"


@pytest.mark.heavy
def test_copy_detection_dataset(copy_set: CopySet, tmp_path: Path) -> None:
    originals = tmp_path / "originals"
    originals.mkdir()
    for path in copy_set.originals:
        shutil.copy(path, originals / path.name)
    dataset = copy_detection(originals, tmp_path / "generated", seed=3)
    assert len(dataset.queries()) == 72 and len(dataset.gallery()) == 80
    (lite0,) = evaluate(dataset, ["lite0"], tmp_path / "out", options=EvalOptions(workers=0))
    assert lite0.scores.recall_at_1 >= 0.95
    assert lite0.scores.ns is not None and lite0.scores.ns >= 3.5


def test_embedder_list_adds_baselines_once() -> None:
    assert embedder_list([]) == ["lite0", "pixels", "colour-histogram"]
    assert embedder_list(["lite2", "histogram"], baselines=True) == ["lite2", "histogram", "pixels"]
    assert embedder_list(["lite1"], baselines=False) == ["lite1"]


def test_bad_dataset_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "flat" / "a.png")
    result = run_cli("evaluate", tmp_path / "flat", "--out", tmp_path / "r")
    assert result.returncode == 2 and "class subfolder" in result.stderr
    result = run_cli("evaluate", tmp_path / "nowhere", "--out", tmp_path / "r")
    assert result.returncode == 2 and "folder not found" in result.stderr
