"""One contract for every registered embedder (timm's habit): built from its registry entry, it
embeds real photos into finite, L2-normalised float32 (n, dim) vectors, does so
deterministically, and its spec survives a JSON round trip to the same embedder.

Entries taking a file get a small model made here: a seeded convolution exported as ONNX, and
model folders trained in seconds. A trained kind not trained here says which tests cover it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from lookalike.embedders import EMBEDDERS, Embedder, EmbedderSpec, create_embedder, resolve_spec
from lookalike.embedders.registry import ALIASES, DEFAULT_EMBEDDER, choices, describe, entry_for
from lookalike.embedders.trained_kinds import TRAINED_KINDS
from lookalike.errors import InvalidInputError, ModelError
from lookalike.imaging import load_prepared
from lookalike.input_spec import InputSpec

PHOTOS = ("chelsea", "coffee", "astronaut")
#: Trained kinds whose contract other tests check (they need the real network to train).
COVERED_ELSEWHERE = {"triplet": "tests/unit/test_training_triplet.py"}

U8 = npt.NDArray[np.uint8]
SpecMaker = Callable[[Path], EmbedderSpec]


def _photos() -> list[npt.NDArray[np.uint8]]:
    import skimage.data

    return [np.asarray(getattr(skimage.data, name)(), dtype=np.uint8) for name in PHOTOS]


def _png(pixels: U8) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo_files() -> list[bytes]:
    """The photos as PNG files' bytes, decoded by the same code as indexing."""
    return [_png(pixels) for pixels in _photos()]


def batch_for(embedder: Embedder, files: list[bytes]) -> U8:
    return np.stack([load_prepared(data, embedder.input_spec) for data in files])


def _onnx_model(folder: Path) -> EmbedderSpec:
    """A seeded 3x3 convolution (8 channels, stride 4) and a ReLU, NCHW float in, feature map
    out (the embedder pools it)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["pixels", "w"], ["conv"], strides=[4, 4]),
            helper.make_node("Relu", ["conv"], ["features"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", 3, 64, 64])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "tiny.onnx"
    onnx.save(model, str(path))
    spec = resolve_spec(str(path))
    return EmbedderSpec(spec.name, {**spec.params, "input_size": 64, "crop_fraction": 1.0})


def _training_images(size: int) -> U8:
    """The photos at ``size`` px, with flips and shifts: enough images to split and train on."""
    spec = InputSpec(size=size, crop_fraction=1.0)
    base = [load_prepared(_png(pixels), spec) for pixels in _photos()]
    images = []
    for image in base:
        for shift in range(0, size, max(1, size // 4)):
            rolled = np.roll(image, shift, axis=1)
            images += [rolled, rolled[:, ::-1], rolled[::-1]]
    return np.ascontiguousarray(np.stack(images))


def _bovw_folder(folder: Path) -> EmbedderSpec:
    from lookalike.embedders.bovw import BagOfVisualWords

    model = BagOfVisualWords(words=16, image_size=64).fit(_training_images(64))
    return resolve_spec(str(model.save(folder / "bovw")))


def _autoencoder_folder(folder: Path) -> EmbedderSpec:
    from lookalike.training.autoencoder import ConvAutoencoder

    model = ConvAutoencoder(image_size=16, latent_dim=8, width=4, epochs=1, threads=1)
    return resolve_spec(str(model.fit(_training_images(16)).save(folder / "ae")))


#: How to get a spec for each entry that takes a file, and for each trained kind.
FILE_SPECS: dict[str, SpecMaker] = {"onnx": _onnx_model}
TRAINED_SPECS: dict[str, SpecMaker] = {"bovw": _bovw_folder, "autoencoder": _autoencoder_folder}
HEAVY_TRAINED = {"autoencoder"}  # trains with PyTorch


def _named(name: str) -> SpecMaker:
    return lambda _folder: EmbedderSpec(name)


def _cases() -> list[object]:
    cases: list[object] = []
    for entry in EMBEDDERS:
        marks = [pytest.mark.heavy] if entry.heavy else []
        if entry.name == "trained":
            continue
        maker = _named(entry.name) if entry.claims is None else FILE_SPECS[entry.name]
        cases.append(pytest.param(maker, id=entry.name, marks=marks))
    for kind, maker in TRAINED_SPECS.items():
        marks = [pytest.mark.heavy] if kind in HEAVY_TRAINED else []
        cases.append(pytest.param(maker, id=f"trained-{kind}", marks=marks))
    return cases


def test_every_entry_and_trained_kind_has_a_contract_case() -> None:
    file_entries = {e.name for e in EMBEDDERS if e.claims is not None} - {"trained"}
    assert file_entries == set(FILE_SPECS)
    assert set(TRAINED_KINDS) == set(TRAINED_SPECS) | set(COVERED_ELSEWHERE)


@pytest.mark.parametrize("make_spec", _cases())
def test_embedder_contract(make_spec: SpecMaker, photo_files: list[bytes], tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    embedder = create_embedder(spec, threads=1)
    assert embedder.spec.name == spec.name

    batch = batch_for(embedder, photo_files)
    vectors = embedder.embed(batch)
    assert vectors.shape == (len(PHOTOS), embedder.dim) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(embedder.embed(batch), vectors)  # deterministic
    single = embedder.embed(batch[1:2])  # a query is a batch of one
    np.testing.assert_allclose(single[0], vectors[1], atol=1e-5)

    stored = json.loads(json.dumps(embedder.spec.to_json()))
    again = create_embedder(EmbedderSpec.from_json(stored), threads=1)
    assert again.spec.key() == embedder.spec.key()
    assert again.weights_digest == embedder.weights_digest and again.dim == embedder.dim
    np.testing.assert_allclose(again.embed(batch), vectors, atol=1e-6)


def test_names_and_aliases_resolve_to_their_entry() -> None:
    for entry in EMBEDDERS:
        if entry.claims is not None:
            assert entry_for(entry.name) is None  # chosen by a path, never by a bare name
            continue
        for typed in (entry.name, *entry.aliases):
            assert resolve_spec(typed) == EmbedderSpec(entry.name)
    assert ALIASES["lite0"] == DEFAULT_EMBEDDER == "efficientnet-lite0"
    assert resolve_spec("color-histogram").name == "colour-histogram"


def test_help_and_errors_list_the_registry() -> None:
    with pytest.raises(InvalidInputError, match="unknown embedder 'vgg'") as caught:
        resolve_spec("vgg")
    for entry in EMBEDDERS:
        assert entry.label in choices() or entry.description in choices()
        assert entry.description in describe()
    assert choices() in str(caught.value)
    with pytest.raises(InvalidInputError, match="known embedders: efficientnet-lite0"):
        create_embedder(EmbedderSpec("vgg"))


def test_paths_resolve_to_files_and_folders(tmp_path: Path) -> None:
    assert resolve_spec(str(tmp_path / "m.onnx")) == EmbedderSpec(
        "onnx", {"path": str((tmp_path / "m.onnx").resolve())}
    )
    with pytest.raises(InvalidInputError, match="unknown embedder"):
        resolve_spec(str(tmp_path))  # a folder without a model
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "lookalike-model.json").write_text('{"kind": "nope"}')
    spec = resolve_spec(str(tmp_path / "model"))
    assert spec.name == "trained"
    with pytest.raises(ModelError, match="must be one of autoencoder, triplet, bovw"):
        create_embedder(spec)


def test_reading_the_registry_imports_no_heavy_library() -> None:
    import subprocess

    code = (
        "import sys, lookalike\n"
        "from lookalike.embedders import EMBEDDERS, resolve_spec\n"
        "resolve_spec('lite0'); resolve_spec('x.onnx')\n"
        "print(sorted(m for m in ('torch', 'onnxruntime', 'hnswlib', 'sklearn') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"
