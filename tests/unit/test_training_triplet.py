"""The triplet head: on real Fashion-MNIST images and EfficientNet-Lite0 features (computed once
and cached), a few seconds of training raise held-out mAP over the base features."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from lookalike.embedders.base import l2_normalise
from lookalike.embedders.pretrained import EfficientNetLite
from lookalike.embedders.trained import load_trained_embedder
from lookalike.errors import ModelError
from lookalike.evaluation.datasets import FASHION_MNIST_DIR, fashion_mnist
from lookalike.imaging import load_prepared
from lookalike.training.data import LabelledFeatures, labelled_features
from lookalike.training.triplet import TripletHead
from lookalike.training.validation import mean_average_precision, split_indices

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.skipif(
        not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
        reason=f"Fashion-MNIST is not installed at {FASHION_MNIST_DIR} "
        "(Debian: dataset-fashion-mnist)",
    ),
]


@pytest.fixture(scope="module")
def base() -> EfficientNetLite:
    return EfficientNetLite("efficientnet-lite0")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fashion_mnist(tmp_path_factory.mktemp("fm"), split="train", limit=300).root


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="module")
def data(folder: Path, base: EfficientNetLite, cache: Path) -> LabelledFeatures:
    return labelled_features(folder, base, cache=cache, workers=0)


def fit(data: LabelledFeatures, **params: object) -> TripletHead:
    train, held = split_indices(len(data.labels), 0.3, seed=0, labels=data.labels)
    settings: dict[str, object] = {"dim": 64, "epochs": 8, "threads": 1, **params}
    return TripletHead(**settings).fit(  # type: ignore[arg-type]
        data.features[train],
        data.labels[train],
        validation=(data.features[held], data.labels[held]),
    )


@pytest.fixture(scope="module")
def head(data: LabelledFeatures) -> TripletHead:
    return fit(data)


def test_features_are_computed_once(
    folder: Path, base: EfficientNetLite, cache: Path, data: LabelledFeatures
) -> None:
    assert data.features.shape == (300, 1280) and len(data.classes) == 10
    assert len(list(cache.glob("features-*.npz"))) == 1
    started = time.perf_counter()
    again = labelled_features(folder, base, cache=cache)
    assert time.perf_counter() - started < 2.0
    assert np.array_equal(again.features, data.features)
    assert np.array_equal(again.labels, data.labels)


def test_head_raises_held_out_map(head: TripletHead) -> None:
    assert head.map_ > head.base_map_ + 0.05, (head.base_map_, head.map_)
    assert head.history_[-1].train_loss < head.history_[0].train_loss


def test_same_seed_same_head(data: LabelledFeatures, head: TripletHead) -> None:
    again = fit(data)
    assert all(np.array_equal(again.weights_[k], head.weights_[k]) for k in head.weights_)
    other = fit(data, seed=1)
    assert not np.array_equal(other.weights_["layers.0.weight"], head.weights_["layers.0.weight"])


def test_saved_head_embeds_like_the_trained_one(
    folder: Path, base: EfficientNetLite, data: LabelledFeatures, head: TripletHead, tmp_path: Path
) -> None:
    saved = head.save(tmp_path / "head", base="efficientnet-lite0", base_digest=base.weights_digest)
    embedder = load_trained_embedder(saved)
    assert embedder.dim == 64 and embedder.input_spec == base.input_spec
    paths = sorted(folder.rglob("*.png"))[:16]
    pixels = np.stack([load_prepared(p, base.input_spec) for p in paths])
    expected = l2_normalise(head.transform(base.embed(pixels)))
    np.testing.assert_allclose(embedder.embed(pixels), expected, atol=1e-5)
    # The head is applied with NumPy; the score it was selected by is reproduced from it.
    _, held = split_indices(len(data.labels), 0.3, seed=0, labels=data.labels)
    score = mean_average_precision(head.transform(data.features[held]), data.labels[held])
    assert score == pytest.approx(head.map_, abs=1e-4)


def test_head_worse_than_its_base_is_refused_unless_forced(
    data: LabelledFeatures, base: EfficientNetLite, tmp_path: Path
) -> None:
    worse = fit(data, dim=2, epochs=1, learning_rate=1e-9)
    assert worse.map_ < worse.base_map_
    with pytest.raises(ModelError, match="--force"):
        worse.save(tmp_path / "worse", base="efficientnet-lite0", base_digest=base.weights_digest)
    assert not (tmp_path / "worse").exists()
    saved = worse.save(
        tmp_path / "worse", base="efficientnet-lite0", base_digest=base.weights_digest, force=True
    )
    assert load_trained_embedder(saved).dim == 2


def test_mismatched_head_is_refused(
    base: EfficientNetLite, head: TripletHead, tmp_path: Path
) -> None:
    saved = head.save(tmp_path / "head", base="efficientnet-lite0", base_digest=base.weights_digest)
    config_path = saved / "lookalike-model.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "dim": 128}))
    with pytest.raises(ModelError, match="another image size or dimension"):
        load_trained_embedder(saved)
    config_path.write_text(json.dumps({**config, "base_weights_sha256": "0" * 64}))
    with pytest.raises(ModelError, match="train the head again"):
        load_trained_embedder(saved)
