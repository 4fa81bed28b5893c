"""The bundled ImageNet weights are really loaded, exported once and cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from lookalike.embedders.pretrained import VARIANTS, EfficientNetLite, exported_model
from lookalike.errors import ModelError
from lookalike.imaging import prepare

pytestmark = pytest.mark.heavy

CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = {967, 968, 504}  # espresso, cup, coffee mug


@pytest.fixture(scope="module")
def lite0() -> EfficientNetLite:
    return EfficientNetLite("efficientnet-lite0")


def _batch(model: EfficientNetLite, *arrays: np.ndarray) -> np.ndarray:
    return np.stack([prepare(Image.fromarray(a), model.input_spec) for a in arrays])


def test_lite0_classifier_names_cat_and_espresso(lite0: EfficientNetLite) -> None:
    logits = lite0.classify(_batch(lite0, skimage.data.chelsea(), skimage.data.coffee()))
    cat, coffee = logits.argmax(axis=1).tolist()
    assert cat in CAT_CLASSES
    assert coffee in COFFEE_CLASSES


def test_embeddings_are_unit_length_deterministic_and_1280_d(lite0: EfficientNetLite) -> None:
    batch = _batch(lite0, skimage.data.astronaut(), skimage.data.rocket())
    first, second = lite0.embed(batch), lite0.embed(batch)
    assert first.shape == (2, 1280) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(first, second)
    # Two different photos are not the same vector.
    assert float(first[0] @ first[1]) < 0.9


def test_export_is_cached_by_weights_digest(lite0: EfficientNetLite, model_cache: Path) -> None:
    exported = [p for p in sorted((model_cache / "models").glob("efficientnet-lite0-*-r1.onnx"))]
    assert len(exported) == 1
    assert lite0.weights_digest[:16] in exported[0].name
    stamp = exported[0].stat().st_mtime_ns
    EfficientNetLite("efficientnet-lite0")  # reuses the export
    assert exported[0].stat().st_mtime_ns == stamp


def test_incomplete_weights_are_refused_not_randomly_initialised(tmp_path: Path) -> None:
    from lookalike.embedders.pretrained import weights_path

    variant = VARIANTS["efficientnet-lite0"]
    state = torch.load(weights_path(variant), map_location="cpu", weights_only=True)
    state.pop(next(iter(state)))
    broken = tmp_path / "broken.pth"
    torch.save(state, broken)
    with pytest.raises(ModelError, match="not a complete efficientnet-lite0 state_dict"):
        exported_model(variant, broken, "f" * 64)
    assert not list((tmp_path).glob("*.onnx"))


def test_int8_variant_is_quantised_once_and_stays_close_to_float(
    lite0: EfficientNetLite, model_cache: Path
) -> None:
    int8 = EfficientNetLite("efficientnet-lite0-int8")
    assert (
        int8.spec.name == "efficientnet-lite0-int8" and int8.weights_digest == lite0.weights_digest
    )
    (quantised,) = (model_cache / "models").glob("efficientnet-lite0-*-r1-int8-q*.onnx")
    float_export = quantised.with_name(quantised.name.split("-int8")[0] + ".onnx")
    assert quantised.stat().st_size < 0.7 * float_export.stat().st_size  # int8 weights
    stamp = quantised.stat().st_mtime_ns
    EfficientNetLite("efficientnet-lite0-int8")  # reuses the quantised file
    assert quantised.stat().st_mtime_ns == stamp

    photos = _batch(lite0, skimage.data.chelsea(), skimage.data.coffee())
    cat, coffee = int8.classify(photos).argmax(axis=1).tolist()
    assert cat in CAT_CLASSES and coffee in COFFEE_CLASSES
    # Photos the calibration never saw: scikit-image's greyscale and other colour photos.
    held_out = [
        np.stack([getattr(skimage.data, name)()] * 3, axis=-1)
        for name in ("camera", "moon", "page", "text", "grass", "gravel", "brick")
    ] + [skimage.data.coins()[..., None].repeat(3, axis=2), skimage.data.retina()]
    batch = _batch(lite0, *held_out)
    cosine = np.sum(lite0.embed(batch) * int8.embed(batch), axis=1)
    np.testing.assert_allclose(np.linalg.norm(int8.embed(batch), axis=1), 1.0, atol=1e-5)
    assert cosine.mean() > 0.97 and cosine.min() > 0.95, cosine
    assert not np.allclose(cosine, 1.0)  # it really is another model
