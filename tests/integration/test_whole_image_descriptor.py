"""The whole-image GeM descriptor on the real network: what it sees, what indexes record, and
that indexes made with the classic recipe keep answering as before."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from lookalike.embedders.base import EmbedderSpec
from lookalike.embedders.batching import embed_images
from lookalike.embedders.pretrained import EfficientNetLite
from lookalike.embedders.quality import quality_named, spec_for
from lookalike.engine import SearchEngine
from lookalike.imaging import load_prepared, prepare
from tests.helpers import run_cli

pytestmark = pytest.mark.heavy

CAT_CLASSES = {281, 282, 283, 284, 285}
BALANCED = quality_named("balanced").recipe


@pytest.fixture(scope="module")
def whole() -> EfficientNetLite:
    return EfficientNetLite("efficientnet-lite0", recipe=BALANCED)


@pytest.fixture(scope="module")
def classic() -> EfficientNetLite:
    return EfficientNetLite("efficientnet-lite0")


def _wide(centre: np.ndarray, sides: np.ndarray) -> Image.Image:
    """A 3:1 picture: ``centre`` (a square) between two side panels cut from ``sides``."""
    side = Image.fromarray(sides).resize((400, 400))
    canvas = Image.new("RGB", (1200, 400))
    canvas.paste(side, (0, 0))
    canvas.paste(Image.fromarray(centre).resize((400, 400)), (400, 0))
    canvas.paste(side.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (800, 0))
    return canvas


def test_the_whole_descriptor_sees_what_the_centre_crop_cuts_off(
    whole: EfficientNetLite, classic: EfficientNetLite
) -> None:
    cat = skimage.data.chelsea()[:300, 75:375]
    beside_coffee = _wide(cat, skimage.data.coffee())
    beside_rocket = _wide(cat, skimage.data.rocket())
    pair = [beside_coffee, beside_rocket]
    crops = np.stack([prepare(p, classic.input_spec) for p in pair])
    kept = [prepare(p, whole.input_spec) for p in pair]
    # 3:1: the long side is capped at twice the shorter one.
    assert kept[0].shape == (BALANCED.size, BALANCED.max_size, 3)
    # The centre crop sees the same cat in both; the whole image sees coffee or a rocket too.
    classic_vectors = classic.embed(crops)
    assert float(classic_vectors[0] @ classic_vectors[1]) > 0.99
    whole_vectors = embed_images(whole, kept)
    assert float(whole_vectors[0] @ whole_vectors[1]) < 0.9
    np.testing.assert_allclose(np.linalg.norm(whole_vectors, axis=1), 1.0, atol=1e-5)


def test_the_network_still_names_the_cat_at_any_shape(whole: EfficientNetLite) -> None:
    cat = Image.fromarray(skimage.data.chelsea())
    for picture in (cat, cat.transpose(Image.Transpose.ROTATE_90)):
        pixels = prepare(picture, whole.input_spec)[None]
        assert int(whole.classify(pixels).argmax()) in CAT_CLASSES


def test_int8_keeps_the_new_descriptor_close_to_float(whole: EfficientNetLite) -> None:
    int8 = EfficientNetLite("efficientnet-lite0-int8", recipe=BALANCED)
    assert int8.spec == EmbedderSpec("efficientnet-lite0-int8", BALANCED.to_params())
    held_out = [
        np.stack([getattr(skimage.data, name)()] * 3, axis=-1)
        for name in ("camera", "moon", "page", "grass", "gravel", "brick")
    ] + [skimage.data.retina(), skimage.data.coffee()[:, :500]]
    images = [prepare(Image.fromarray(a), whole.input_spec) for a in held_out]
    cosine = np.sum(embed_images(whole, images) * embed_images(int8, images), axis=1)
    assert cosine.mean() > 0.97 and cosine.min() > 0.93, cosine
    assert not np.allclose(cosine, 1.0)


def test_an_index_records_its_recipe_and_info_shows_it(gallery: Path, tmp_path: Path) -> None:
    directory = tmp_path / "idx"
    done = run_cli("index", gallery / "originals", "--index", directory, "--quiet")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["embedder"] == spec_for("efficientnet-lite0").to_json()
    assert manifest["embedder"]["params"] == BALANCED.to_params()
    shown = run_cli("info", "--index", directory)
    assert f"whole image, aspect kept, shorter side {BALANCED.size} px" in shown.stdout
    assert f"GeM pooling (p={BALANCED.gem_p:g})" in shown.stdout
    # Asking for another recipe on this index is refused, naming the fix.
    again = run_cli("index", gallery / "originals", "--index", directory, "--quality", "best")
    assert again.returncode != 0
    assert "use a new --index folder" in again.stderr


def test_a_classic_index_answers_exactly_as_before(
    gallery: Path, classic: EfficientNetLite, tmp_path: Path
) -> None:
    directory = tmp_path / "classic.idx"
    with SearchEngine.create(directory, quality="classic") as engine:
        engine.index_folder(gallery / "originals")
        assert engine.manifest.embedder == EmbedderSpec("efficientnet-lite0")
    # Indexes made before recipes existed record no params: they keep the classic recipe.
    with SearchEngine.open(directory) as engine:
        assert "(classic)" in str(engine.info().descriptor)
        photo = sorted((gallery / "originals").glob("*.jpg"))[0]
        (result,) = engine.search([photo], k=1)
        best = result.matches[0]
        assert Path(best.path).name == photo.name and best.score > 0.9999
        stored = engine.collection.vectors_for([best.id])[0]
        pixels = load_prepared(photo, classic.input_spec)
        np.testing.assert_allclose(stored, classic.embed(pixels[None])[0], atol=1e-6)
