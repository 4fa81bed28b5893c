"""The input contract between decoding and an embedder: how an image is cut and scaled."""

from __future__ import annotations

from dataclasses import dataclass

from lookalike.errors import InvalidInputError


@dataclass(frozen=True)
class InputSpec:
    """How an image is cut and scaled before it reaches the network.

    The shorter side is scaled to ``size / crop_fraction`` and the centre ``size`` x ``size``
    square is kept (done in one resampling step from the source). Workers hand the embedder
    uint8 RGB arrays of shape (size, size, 3); mean and std (in 0..1 units) are applied by the
    embedder itself, so the arrays crossing process boundaries stay four times smaller.
    """

    size: int = 224
    crop_fraction: float = 0.875
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def __post_init__(self) -> None:
        if not 8 <= self.size <= 4096:
            raise InvalidInputError(f"input size must be 8..4096 pixels, got {self.size}")
        if not 0.1 <= self.crop_fraction <= 1.0:
            raise InvalidInputError(f"crop_fraction must be in 0.1..1.0, got {self.crop_fraction}")
        if any(s <= 0 for s in self.std):
            raise InvalidInputError(f"std values must be positive, got {self.std}")
