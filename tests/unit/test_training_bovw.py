"""Bag of visual words on real photos: scikit-image's colour photos and their edited copies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from lookalike.embedders.base import l2_normalise
from lookalike.embedders.bovw import BagOfVisualWords
from lookalike.embedders.trained import load_trained_embedder
from lookalike.errors import InvalidInputError, ModelError
from lookalike.evaluation.copies import CopySet
from lookalike.imaging import load_prepared

pytestmark = pytest.mark.heavy

SIZE = 128


@pytest.fixture(scope="module")
def pixels(copy_set: CopySet) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """(originals, copies) prepared at the BoVW input size."""
    spec = BagOfVisualWords(image_size=SIZE).input_spec
    originals = np.stack([load_prepared(p, spec) for p in copy_set.originals])
    copies = np.stack([load_prepared(c.copy, spec) for c in copy_set.copies])
    return originals, copies


@pytest.fixture(scope="module")
def model(pixels: tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]) -> BagOfVisualWords:
    return BagOfVisualWords(words=64, image_size=SIZE).fit(np.concatenate(pixels))


def test_copies_find_their_original(
    model: BagOfVisualWords,
    pixels: tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]],
    copy_set: CopySet,
) -> None:
    originals, copies = pixels
    sims = l2_normalise(model.features(copies)) @ l2_normalise(model.features(originals)).T
    truth = [copy_set.originals.index(c.original) for c in copy_set.copies]
    found = float(np.mean(sims.argmax(axis=1) == np.asarray(truth)))
    assert found > 0.5  # chance: 1/8


def test_same_seed_same_vocabulary(
    model: BagOfVisualWords, pixels: tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]
) -> None:
    again = BagOfVisualWords(words=64, image_size=SIZE).fit(np.concatenate(pixels))
    assert np.array_equal(again.vocabulary_, model.vocabulary_)
    assert np.array_equal(again.idf_, model.idf_)


def test_saved_model_embeds_like_the_trained_one(
    model: BagOfVisualWords,
    pixels: tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]],
    tmp_path: Path,
) -> None:
    folder = model.save(tmp_path / "bovw")
    embedder = load_trained_embedder(folder)
    assert embedder.dim == 64 and embedder.input_spec.size == SIZE
    copies = pixels[1]
    assert np.array_equal(embedder.embed(copies), l2_normalise(model.features(copies)))
    assert np.array_equal(BagOfVisualWords.load(folder).features(copies), model.features(copies))


def test_mismatched_model_is_refused(model: BagOfVisualWords, tmp_path: Path) -> None:
    folder = model.save(tmp_path / "bovw")
    config_path = folder / "lookalike-model.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "words": 128}))
    with pytest.raises(ModelError, match="another image size or dimension"):
        load_trained_embedder(folder)
    config_path.write_text(json.dumps({**config, "kind": "pickle"}))
    with pytest.raises(ModelError, match="'kind'"):
        load_trained_embedder(folder)
    (folder / "lookalike-model.json").unlink()
    with pytest.raises(ModelError, match=r"lookalike-model\.json"):
        load_trained_embedder(folder)


def test_bad_input_is_refused(
    pixels: tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]],
) -> None:
    with pytest.raises(InvalidInputError, match="words"):
        BagOfVisualWords(words=1, image_size=SIZE).fit(pixels[0])
    with pytest.raises(InvalidInputError, match="uint8 of shape"):
        BagOfVisualWords(image_size=64).fit(pixels[0])
    with pytest.raises(InvalidInputError, match="not learned"):
        BagOfVisualWords(image_size=SIZE).features(pixels[0])
