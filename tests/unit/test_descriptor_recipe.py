"""The whole-image input contract, descriptor recipes, quality presets and shape batching."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from lookalike.embedders.base import EmbedderSpec, check_batch, l2_normalise
from lookalike.embedders.batching import embed_images
from lookalike.embedders.quality import QUALITIES, apply_quality, quality_named
from lookalike.embedders.recipe import Recipe
from lookalike.errors import InvalidInputError
from lookalike.imaging import load_prepared, prepare
from lookalike.input_spec import InputSpec

WHOLE = InputSpec(size=288, resize="whole", max_size=576, multiple=32)


@pytest.fixture(scope="module")
def chelsea() -> Image.Image:
    """A 451 x 300 (w x h) colour photo of a cat."""
    from skimage import data

    return Image.fromarray(np.asarray(data.chelsea(), dtype=np.uint8))  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (451, 300, (288, 448)),  # 4:3-ish landscape: the long side follows, rounded to 32
        (300, 451, (448, 288)),  # the same in portrait
        (500, 500, (288, 288)),
        (4000, 1000, (288, 576)),  # a panorama: the long side is capped
        (64, 48, (288, 384)),  # a small image is scaled up like any other
    ],
)
def test_whole_shape_keeps_the_aspect_ratio(
    width: int, height: int, expected: tuple[int, int]
) -> None:
    assert WHOLE.shape_for(width, height) == expected
    assert WHOLE.accepts(*expected)


def test_crop_shape_is_the_square() -> None:
    assert InputSpec(size=224).shape_for(451, 300) == (224, 224)


def test_whole_image_is_not_cropped(chelsea: Image.Image) -> None:
    pixels = prepare(chelsea, WHOLE)
    assert pixels.shape == (288, 448, 3) and pixels.dtype == np.uint8
    # The left and right edges of the photo are in it: the centre crop cuts them off.
    edges = np.asarray(chelsea.resize((448, 288), Image.Resampling.BILINEAR), dtype=np.int16)
    assert np.abs(pixels[:, :20].astype(np.int16) - edges[:, :20]).mean() < 2
    crop = prepare(chelsea, InputSpec(size=224))
    assert crop.shape == (224, 224, 3)


def test_whole_image_from_a_file_decodes_no_smaller_than_its_shorter_side(
    chelsea: Image.Image, tmp_path: pytest.TempPathFactory
) -> None:
    path = tmp_path / "cat.jpg"  # type: ignore[operator]
    chelsea.resize((1804, 1200)).save(path, quality=90)
    assert load_prepared(path, WHOLE).shape == (288, 448, 3)


def test_batches_of_the_wrong_shape_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="multiples of 32"):
        check_batch(np.zeros((1, 288, 450, 3), dtype=np.uint8), WHOLE)
    with pytest.raises(InvalidInputError, match="shorter side 288"):
        check_batch(np.zeros((1, 256, 448, 3), dtype=np.uint8), WHOLE)
    check_batch(np.zeros((2, 448, 288, 3), dtype=np.uint8), WHOLE)


def test_bad_specs_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="resize must be one of"):
        InputSpec(resize="stretch")
    with pytest.raises(InvalidInputError, match="max_size"):
        InputSpec(size=288, resize="whole", max_size=200)


class MeanColour:
    """A real, tiny embedder for any image shape: the mean colour, and the image's height and
    width, so the test can see which image each vector came from and what shape it had."""

    def __init__(self, spec: InputSpec) -> None:
        self._input = spec
        self.calls: list[tuple[int, ...]] = []

    @property
    def spec(self) -> EmbedderSpec:
        return EmbedderSpec("mean-colour")

    @property
    def input_spec(self) -> InputSpec:
        return self._input

    @property
    def dim(self) -> int:
        return 5

    @property
    def weights_digest(self) -> str:
        return "0" * 64

    def embed(self, batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        check_batch(batch, self._input)
        self.calls.append(batch.shape)
        n, h, w, _ = batch.shape
        colour = batch.reshape(n, -1, 3).mean(axis=1)
        shape = np.tile(np.asarray([[h, w]], dtype=np.float64), (n, 1))
        return np.hstack([colour, shape]).astype(np.float32)


def test_embed_images_batches_by_shape_and_keeps_the_order() -> None:
    rng = np.random.default_rng(0)
    shapes = [(288, 384), (288, 288), (384, 288), (288, 384), (288, 288), (288, 384)]
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes]
    model = MeanColour(WHOLE)
    vectors = embed_images(model, images, batch_size=2)
    for image, vector, (h, w) in zip(images, vectors, shapes, strict=True):
        np.testing.assert_allclose(vector[:3], image.reshape(-1, 3).mean(axis=0), rtol=1e-5)
        assert tuple(vector[3:]) == (h, w)
    # Three shapes, the most common split in batches of two: 4 network calls, each one shape.
    assert sorted(model.calls) == sorted(
        [(2, 288, 384, 3), (1, 288, 384, 3), (2, 288, 288, 3), (1, 384, 288, 3)]
    )


def test_gem_pooling_is_the_average_at_p1_and_leans_to_the_strongest_response() -> None:
    rng = np.random.default_rng(1)
    maps = rng.uniform(0, 6, (3, 8, 9, 12)).astype(np.float32)  # ReLU6 outputs are in [0, 6]
    average = l2_normalise(maps.reshape(3, 8, -1).mean(axis=2))
    np.testing.assert_allclose(Recipe(pooling="gem", gem_p=1.0).pool(maps), average, rtol=1e-5)
    # One strong, local response in channel 0 moves GeM (p=3) more than the average.
    spiked = maps.copy()
    spiked[:, 0] = 0.1
    spiked[:, 0, 4, 5] = 6.0
    gem = Recipe(pooling="gem", gem_p=3.0).pool(spiked)
    avg = Recipe(pooling="avg").pool(spiked)
    assert (gem[:, 0] > 1.5 * avg[:, 0]).all()
    np.testing.assert_allclose(np.linalg.norm(gem, axis=1), 1.0, rtol=1e-5)


def test_recipe_params_round_trip_and_the_classic_one_records_nothing() -> None:
    assert Recipe.classic().to_params() == {}
    assert Recipe.from_params({}) == Recipe.classic()
    for quality in QUALITIES:
        assert Recipe.from_params(quality.recipe.to_params()) == quality.recipe
    with pytest.raises(InvalidInputError, match="unknown recipe field"):
        Recipe.from_params({"pooling": "gem", "gem": 3})
    with pytest.raises(InvalidInputError, match="pooling must be one of"):
        Recipe.from_params({"pooling": "max"})
    assert "GeM pooling (p=3)" in Recipe(pooling="gem", gem_p=3.0).describe()
    assert "whole image, aspect kept" in quality_named("balanced").recipe.describe()


def test_quality_presets_shape_only_efficientnet_specs() -> None:
    balanced = apply_quality(EmbedderSpec("efficientnet-lite0"), None)
    assert balanced.params == quality_named("balanced").recipe.to_params()
    fast = apply_quality(EmbedderSpec("efficientnet-lite0"), "fast")
    assert fast.name == "efficientnet-lite0-int8"
    assert apply_quality(EmbedderSpec("efficientnet-lite0"), "classic").params == {}
    # A spec with a recipe of its own keeps it; other embedders take no preset.
    own = EmbedderSpec("efficientnet-lite0", {"input": "whole", "size": 256, "pooling": "gem"})
    assert apply_quality(own, None) == own
    assert apply_quality(EmbedderSpec("pixels", {"size": 8}), None).name == "pixels"
    with pytest.raises(InvalidInputError, match="--quality applies to the pretrained"):
        apply_quality(EmbedderSpec("pixels"), "best")
    with pytest.raises(InvalidInputError, match="unknown quality 'great'"):
        apply_quality(EmbedderSpec("efficientnet-lite0"), "great")
