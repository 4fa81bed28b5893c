"""A projection head learned with triplet loss on frozen pretrained features.

Batches hold P classes x K images (pytorch-metric-learning's ``MPerClassSampler``); triplets are
mined online inside each batch (its ``TripletMarginMiner``: semi-hard by default, or hard, or
all) and scored by its ``TripletMarginLoss`` on L2-normalised outputs. Features are computed
once (see :mod:`lookalike.training.data`), so an epoch costs milliseconds to seconds. The
held-out mAP is measured before training (base features) and after each epoch; the best epoch
is kept, and a head that does not beat its base is refused when saving unless forced.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lookalike.embedders.base import Params
from lookalike.embedders.metric import apply_head, head_shapes
from lookalike.embedders.model_folder import require, write_model_folder
from lookalike.errors import InvalidInputError, ModelError
from lookalike.training.progress import TrainingCallback, TrainingProgress, silent
from lookalike.training.threads import torch_threads
from lookalike.training.validation import mean_average_precision
from lookalike.version import __version__

MINING = ("semihard", "hard", "all")


@dataclass(frozen=True)
class HeadEpoch:
    epoch: int
    train_loss: float
    validation_map: float


class TripletHead:
    """Learns a ``dim``-d projection of pretrained features where same-class images are close.

    Example:
        >>> head = TripletHead(dim=256)  # doctest: +SKIP
        >>> head.fit(x_train, y_train, validation=(x_val, y_val))  # doctest: +SKIP
        >>> head.base_map_, head.map_  # held-out mAP: base features, head  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        dim: int = 256,
        hidden: Sequence[int] = (),
        epochs: int = 30,
        classes_per_batch: int = 16,
        images_per_class: int = 8,
        margin: float = 0.2,
        mining: str = "semihard",
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        patience: int = 5,
        seed: int = 0,
        threads: int | None = None,
    ) -> None:
        self.dim = dim
        self.hidden = tuple(hidden)
        self.epochs = epochs
        self.classes_per_batch = classes_per_batch
        self.images_per_class = images_per_class
        self.margin = margin
        self.mining = mining
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.seed = seed
        self.threads = threads

    def fit(
        self,
        features: npt.NDArray[np.float32],
        labels: Sequence[int] | npt.NDArray[np.int64],
        *,
        validation: tuple[npt.NDArray[np.float32], Sequence[int] | npt.NDArray[np.int64]],
        progress: TrainingCallback = silent,
    ) -> TripletHead:
        """Train on (n, base_dim) features with integer class labels; keep the epoch with the
        best mAP on ``validation`` (features and labels held out from training)."""
        require("pytorch_metric_learning", "triplet mining")
        y = np.asarray(labels, dtype=np.int64)
        x_val, y_val = validation[0], np.asarray(validation[1], dtype=np.int64)
        classes = len(np.unique(y))
        self._check_params(features, y, classes)
        with torch_threads(self.threads):
            return self._fit(features, y, x_val, y_val, classes, progress)

    def _fit(
        self,
        features: npt.NDArray[np.float32],
        y: npt.NDArray[np.int64],
        x_val: npt.NDArray[np.float32],
        y_val: npt.NDArray[np.int64],
        classes: int,
        progress: TrainingCallback,
    ) -> TripletHead:
        import torch
        from pytorch_metric_learning import losses, miners, samplers

        started = time.perf_counter()
        per_batch = min(self.classes_per_batch, classes)
        batch = per_batch * self.images_per_class
        self.base_map_ = mean_average_precision(x_val, y_val)
        torch.manual_seed(self.seed)
        head = _build(features.shape[1], self.hidden, self.dim)
        optimiser = torch.optim.Adam(
            head.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )
        miner = miners.TripletMarginMiner(margin=self.margin, type_of_triplets=self.mining)
        loss_fn = losses.TripletMarginLoss(margin=self.margin)
        inputs, targets = torch.from_numpy(features), torch.from_numpy(y)
        length = max(batch, len(y) - len(y) % batch)
        history: list[HeadEpoch] = []
        best, best_state, waited = -1.0, copy.deepcopy(head.state_dict()), 0
        with _seeded_sampling(self.seed):
            sampler = samplers.MPerClassSampler(
                y, m=self.images_per_class, batch_size=batch, length_before_new_iter=length
            )
            for epoch in range(self.epochs):
                head.train()
                order = torch.tensor(list(iter(sampler)), dtype=torch.int64)
                total, steps = 0.0, 0
                for start in range(0, len(order), batch):
                    rows = order[start : start + batch]
                    out = head(inputs[rows])
                    loss = loss_fn(out, targets[rows], miner(out, targets[rows]))
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                    total, steps = total + float(loss.item()), steps + 1
                score = mean_average_precision(self._project(head, x_val), y_val)
                history.append(HeadEpoch(epoch + 1, total / max(steps, 1), score))
                progress(
                    TrainingProgress(
                        "train",
                        epoch + 1,
                        self.epochs,
                        train_loss=history[-1].train_loss,
                        validation_map=score,
                    )
                )
                if score > best:
                    best, best_state, waited = score, copy.deepcopy(head.state_dict()), 0
                else:
                    waited += 1
                    if waited >= self.patience:
                        break
        head.load_state_dict(best_state)
        self.weights_ = {k: v.detach().numpy().copy() for k, v in head.state_dict().items()}
        self.map_ = best
        self.history_ = tuple(history)
        self.best_epoch_ = max(history, key=lambda r: r.validation_map).epoch
        self.train_seconds_ = time.perf_counter() - started
        self.base_dim_ = int(features.shape[1])
        return self

    def _check_params(
        self, features: npt.NDArray[np.float32], labels: npt.NDArray[np.int64], classes: int
    ) -> None:
        if self.mining not in MINING:
            raise InvalidInputError(f"mining must be one of {', '.join(MINING)}, got {self.mining}")
        for name in ("dim", "epochs", "classes_per_batch", "images_per_class", "patience"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if features.ndim != 2 or len(features) != len(labels):
            raise InvalidInputError(
                f"features must be (n, d) with one label per row, got {features.shape} and "
                f"{len(labels)} labels"
            )
        if classes < 2:
            raise InvalidInputError("triplet training needs at least two classes")

    def _project(self, head: Any, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        import torch

        head.eval()
        with torch.no_grad():
            return np.asarray(head(torch.from_numpy(features)).numpy(), dtype=np.float32)

    def transform(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Projected features (n, dim), not normalised, computed with NumPy."""
        weights = getattr(self, "weights_", None)
        if weights is None:
            raise InvalidInputError("the head is not trained yet: call fit() first")
        return apply_head(features, weights)

    def save(
        self,
        folder: Path | str,
        *,
        base: str,
        base_digest: str,
        base_recipe: Params | None = None,
        force: bool = False,
    ) -> Path:
        """Write the model folder. Refused when the head's held-out mAP is below the base
        features' unless ``force``: a learned embedding worse than its input helps nobody."""
        if getattr(self, "weights_", None) is None:
            raise InvalidInputError("the head is not trained yet: call fit() first")
        if self.map_ < self.base_map_ and not force:
            raise ModelError(
                f"the trained head reaches a held-out mAP of {self.map_:.3f}, below the "
                f"{self.base_map_:.3f} of the {base} features it starts from; nothing was saved "
                "(more labelled images, other --dim/--epochs/--margin, or --force to save anyway)"
            )
        config = {
            "base": base,
            "base_weights_sha256": base_digest,
            "base_recipe": dict(base_recipe or {}),
            "base_dim": self.base_dim_,
            "dim": self.dim,
            "hidden": list(self.hidden),
            "margin": self.margin,
            "mining": self.mining,
            "seed": self.seed,
            "epochs_run": len(self.history_),
            "best_epoch": self.best_epoch_,
            "validation_map_base": round(self.base_map_, 4),
            "validation_map": round(self.map_, 4),
            "train_seconds": round(self.train_seconds_, 1),
            "lookalike_version": __version__,
        }
        return write_model_folder(Path(folder), "triplet", config, self.weights_)


def _build(base_dim: int, hidden: Sequence[int], dim: int) -> Any:
    import torch
    from torch import nn

    shapes = head_shapes(base_dim, hidden, dim)

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList(
                nn.Linear(shapes[f"layers.{i}.weight"][1], shapes[f"layers.{i}.weight"][0])
                for i in range(len(shapes) // 2)
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for i, layer in enumerate(self.layers):
                x = layer(x)
                if i < len(self.layers) - 1:
                    x = torch.relu(x)
            return x

    return Head()


@contextmanager
def _seeded_sampling(seed: int) -> Iterator[None]:
    """pytorch-metric-learning draws from one module-level NumPy generator; seed it for the
    duration of training, then put the library's own back."""
    from pytorch_metric_learning.utils import common_functions

    previous = common_functions.NUMPY_RANDOM
    common_functions.NUMPY_RANDOM = np.random.RandomState(seed)
    try:
        yield
    finally:
        common_functions.NUMPY_RANDOM = previous
