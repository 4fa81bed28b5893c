"""Bring your own ONNX model: the tests export one themselves (EfficientNet-Lite0 as a plain
float NCHW model returning its feature map), index with it, and compare with the built-in."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from lookalike import EmbedderMismatchError, SearchEngine
from lookalike.embedders.onnx import OnnxEmbedder
from lookalike.embedders.pretrained import VARIANTS, EfficientNetLite, weights_path
from lookalike.evaluation.copies import CopySet
from tests.helpers import json_lines, run_cli, top_path

pytestmark = pytest.mark.heavy


def _export_feature_map_model(path: Path, *, perturb: bool = False) -> None:
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(weights_path(VARIANTS["efficientnet-lite0"]), weights_only=True)
    net.load_state_dict(state, strict=True)
    if perturb:
        torch.manual_seed(0)
        with torch.no_grad():
            net._conv_head.weight.add_(0.05 * torch.randn_like(net._conv_head.weight))

    class FeatureMap(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net.extract_features(x)  # (n, 1280, 7, 7): lookalike pools it

    model = FeatureMap().eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, 224, 224),),
            str(path),
            opset_version=17,
            dynamo=False,
            input_names=["pixels"],
            output_names=["features"],
            dynamic_axes={"pixels": {0: "n"}, "features": {0: "n"}},
        )


@pytest.fixture(scope="module")
def user_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("byo") / "my-lite0.onnx"
    _export_feature_map_model(path)
    return path


def test_user_onnx_model_matches_the_builtin_embedder(user_model: Path, copy_set: CopySet) -> None:
    mine = OnnxEmbedder(user_model, input_size=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    builtin = EfficientNetLite("efficientnet-lite0")
    assert mine.dim == 1280
    from lookalike.imaging import load_prepared

    batch = np.stack([load_prepared(p, mine.input_spec) for p in copy_set.originals[:4]])
    np.testing.assert_allclose(mine.embed(batch), builtin.embed(batch), atol=1e-4)


def test_index_and_search_with_a_user_onnx_model(
    user_model: Path, copy_set: CopySet, tmp_path: Path
) -> None:
    user_model = Path(shutil.copy(user_model, tmp_path / "mine.onnx"))  # this test rewrites it
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in copy_set.originals:
        shutil.copy(path, photos / path.name)
    index = tmp_path / "byo.idx"
    created = run_cli(
        "index",
        photos,
        "--index",
        index,
        "--embedder",
        user_model,
        "--onnx-mean",
        "0.5,0.5,0.5",
        "--onnx-std",
        "0.5,0.5,0.5",
        "-q",
    )
    assert created.returncode == 0, created.stderr
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["embedder"]["name"] == "onnx"
    assert manifest["embedder"]["params"]["path"] == str(user_model.resolve())
    assert manifest["embedder"]["params"]["mean"] == [0.5, 0.5, 0.5]
    assert manifest["dim"] == 1280 and len(manifest["weights_digest"]) == 64

    pairs = [p for p in copy_set.copies if p.edit in ("hflip", "rotate15")]
    result = run_cli("search", *[p.copy for p in pairs], "--index", index, "--json")
    assert result.returncode == 0, result.stderr
    for line, pair in zip(json_lines(result.stdout), pairs, strict=True):
        assert Path(top_path(line)).name == pair.original.name

    # Another embedder cannot be mixed into this index.
    mixed = run_cli("index", photos, "--index", index, "--embedder", "lite0")
    assert mixed.returncode == 2 and "onnx" in mixed.stderr

    # If the model file changes under the index, queries are refused rather than answered wrongly.
    _export_feature_map_model(user_model.with_name("other.onnx"), perturb=True)
    shutil.copy(user_model.with_name("other.onnx"), user_model)
    with SearchEngine.open(index) as engine, pytest.raises(EmbedderMismatchError, match="rebuild"):
        engine.search([str(pairs[0].copy)], k=1)
    refused = run_cli("search", pairs[0].copy, "--index", index)
    assert refused.returncode == 2 and "differ from those that built this index" in refused.stderr


def test_bad_onnx_options_are_clear_errors(user_model: Path, tmp_path: Path) -> None:
    from lookalike import InvalidInputError, ModelError

    with pytest.raises(InvalidInputError, match="no output 'nope'"):
        OnnxEmbedder(user_model, output="nope")
    with pytest.raises(InvalidInputError, match="not found"):
        OnnxEmbedder(tmp_path / "absent.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load ONNX model"):
        OnnxEmbedder(tmp_path / "junk.onnx")
