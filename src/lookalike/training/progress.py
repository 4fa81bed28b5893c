"""Progress events of training, for callbacks (the CLI draws them as a progress bar)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TrainingProgress:
    """One step of a phase. ``phase`` is 'decode', 'features', 'train' or 'vocabulary'; during
    'train', ``done``/``total`` count epochs and the losses (or validation mAP) are filled in."""

    phase: str
    done: int
    total: int
    train_loss: float | None = None
    validation_loss: float | None = None
    validation_map: float | None = None


TrainingCallback = Callable[[TrainingProgress], None]


def silent(event: TrainingProgress) -> None:
    """The callback used when none is given."""
