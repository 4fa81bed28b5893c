"""The Fashion-MNIST triplet head of the learned-embeddings benchmarks, trained the way
`lookalike train triplet` trains one: 20 % of each class held out (seed 0) to pick the epoch."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lookalike.training.triplet import TripletHead
from lookalike.training.validation import split_indices


def fashion_head(threads: int | None, *, epochs: int = 30) -> TripletHead:
    """`--dim 256 --hidden 1024`: the head of the README's Fashion-MNIST table."""
    return TripletHead(dim=256, hidden=(1024,), epochs=epochs, threads=threads)


def fit_head(
    head: TripletHead, features: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]
) -> TripletHead:
    train, held = split_indices(len(labels), 0.2, seed=0, labels=labels)
    return head.fit(features[train], labels[train], validation=(features[held], labels[held]))
