"""The convolutional autoencoder: it learns, it is reproducible, and what is saved is what
embeds. Real data: Fashion-MNIST training images (shrunk to 16 px so each fit takes seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from lookalike.embedders.base import l2_normalise
from lookalike.embedders.trained import load_trained_embedder
from lookalike.errors import InvalidInputError, ModelError
from lookalike.evaluation.datasets import FASHION_MNIST_DIR, read_idx
from lookalike.training.autoencoder import ConvAutoencoder

TRAIN_IMAGES = FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz"
pytestmark = [
    pytest.mark.heavy,
    pytest.mark.skipif(
        not TRAIN_IMAGES.is_file(),
        reason=f"Fashion-MNIST is not installed at {FASHION_MNIST_DIR} "
        "(Debian: dataset-fashion-mnist)",
    ),
]


def small(count: int, size: int = 16) -> npt.NDArray[np.uint8]:
    pixels = read_idx(TRAIN_IMAGES)[:count]
    return np.stack(
        [
            np.asarray(Image.fromarray(p).convert("RGB").resize((size, size), Image.BILINEAR))
            for p in pixels
        ]
    )


def model(**overrides: object) -> ConvAutoencoder:
    params: dict[str, object] = {"image_size": 16, "latent_dim": 16, "width": 8, "epochs": 3}
    params.update(threads=1, **overrides)
    return ConvAutoencoder(**params)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def images() -> npt.NDArray[np.uint8]:
    return small(600)


@pytest.fixture(scope="module")
def trained(images: npt.NDArray[np.uint8]) -> ConvAutoencoder:
    return model().fit(images)


def test_loss_decreases(trained: ConvAutoencoder) -> None:
    history = trained.history_
    assert len(history) == 3
    assert history[-1].train_loss < 0.8 * history[0].train_loss
    assert history[-1].validation_loss < history[0].validation_loss
    assert trained.best_epoch_ == min(history, key=lambda r: r.validation_loss).epoch


def test_same_seed_same_model_other_seed_other_model(
    images: npt.NDArray[np.uint8], trained: ConvAutoencoder
) -> None:
    again = model().fit(images)
    assert np.array_equal(again.encode(images[:64]), trained.encode(images[:64]))
    other = model(seed=1).fit(images)
    assert not np.allclose(other.encode(images[:64]), trained.encode(images[:64]))


def test_saved_model_embeds_like_the_trained_one(
    images: npt.NDArray[np.uint8], trained: ConvAutoencoder, tmp_path: Path
) -> None:
    folder = trained.save(tmp_path / "ae")
    names = {p.name for p in folder.iterdir()}
    assert {"lookalike-model.json", "weights.safetensors", "encoder.onnx"} <= names
    with Image.open(folder / "reconstructions.png") as preview:
        assert preview.size == (8 * 64, 2 * 64)  # validation images above reconstructions
    reloaded = ConvAutoencoder.load(folder)
    assert np.array_equal(reloaded.encode(images), trained.encode(images))

    embedder = load_trained_embedder(folder)
    assert embedder.spec.params == {"path": str(folder)}
    assert embedder.dim == 16 and embedder.input_spec.size == 16
    vectors = embedder.embed(images[:100])
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, l2_normalise(trained.encode(images[:100])), atol=1e-5)
    assert np.array_equal(load_trained_embedder(folder).embed(images[:100]), vectors)


def test_retrained_model_has_another_digest(
    images: npt.NDArray[np.uint8], trained: ConvAutoencoder, tmp_path: Path
) -> None:
    folder = trained.save(tmp_path / "ae")
    first = load_trained_embedder(folder).weights_digest
    model(seed=3, epochs=1).fit(images).save(folder)
    assert load_trained_embedder(folder).weights_digest != first


def test_config_for_another_size_or_dim_is_refused(
    trained: ConvAutoencoder, tmp_path: Path
) -> None:
    folder = trained.save(tmp_path / "ae")
    config_path = folder / "lookalike-model.json"
    config = json.loads(config_path.read_text())
    for key, value in (("image_size", 32), ("latent_dim", 64)):
        config_path.write_text(json.dumps({**config, key: value}))
        with pytest.raises(ModelError, match=key):
            load_trained_embedder(folder)
        with pytest.raises(ModelError, match="another image size or dimension"):
            ConvAutoencoder.load(folder)
    config_path.write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(ModelError, match="upgrade lookalike"):
        load_trained_embedder(folder)


def test_bad_input_is_refused(images: npt.NDArray[np.uint8]) -> None:
    with pytest.raises(InvalidInputError, match="image size"):
        model(image_size=20).fit(images)
    with pytest.raises(InvalidInputError, match="uint8 of shape"):
        model().fit(small(20, size=32))
    with pytest.raises(InvalidInputError, match="not trained"):
        model().encode(images)
