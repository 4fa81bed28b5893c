"""The input contract between decoding and an embedder: how an image is cut and scaled."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lookalike.errors import InvalidInputError

#: The ways an image reaches a network: a centre square, or the whole picture, aspect kept.
RESIZE_MODES = ("crop", "whole")


@dataclass(frozen=True)
class InputSpec:
    """How an image is cut and scaled before it reaches the network.

    ``resize="crop"`` (the classic recipe): the shorter side is scaled to ``size /
    crop_fraction`` and the centre ``size`` x ``size`` square is kept, in one resampling step
    from the source. Every image becomes (size, size, 3).

    ``resize="whole"``: nothing is cut off. The shorter side is scaled to ``size`` and the
    longer one in proportion, capped at ``max_size`` (so a panorama stays cheap); both sides
    are rounded to a multiple of ``multiple`` (a network's total stride: the feature map then
    covers the image exactly, and batches of the same shape are common). Images of different
    aspect ratios get different shapes; :func:`lookalike.embedders.batching.embed_images`
    batches them by shape.

    Workers hand the embedder uint8 RGB arrays; mean and std (in 0..1 units) are applied by the
    embedder itself, so the arrays crossing process boundaries stay four times smaller.
    """

    size: int = 224
    crop_fraction: float = 0.875
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    resize: str = "crop"
    max_size: int = 0
    multiple: int = 32

    def __post_init__(self) -> None:
        if not 8 <= self.size <= 4096:
            raise InvalidInputError(f"input size must be 8..4096 pixels, got {self.size}")
        if not 0.1 <= self.crop_fraction <= 1.0:
            raise InvalidInputError(f"crop_fraction must be in 0.1..1.0, got {self.crop_fraction}")
        if any(s <= 0 for s in self.std):
            raise InvalidInputError(f"std values must be positive, got {self.std}")
        if self.resize not in RESIZE_MODES:
            raise InvalidInputError(
                f"resize must be one of {', '.join(RESIZE_MODES)}, got {self.resize!r}"
            )
        if self.resize == "whole":
            if not 1 <= self.multiple <= self.size:
                raise InvalidInputError(
                    f"multiple must be 1..size ({self.size}), got {self.multiple}"
                )
            if self.max_size and self.max_size < self.size:
                raise InvalidInputError(
                    f"max_size ({self.max_size}) must be at least size ({self.size}), or 0 "
                    "for no cap"
                )

    @property
    def whole(self) -> bool:
        return self.resize == "whole"

    @property
    def decode_side(self) -> int:
        """The shorter side a decoder needs at least (JPEGs decode no larger than this)."""
        return self.size if self.whole else math.ceil(self.size / self.crop_fraction)

    def shape_for(self, width: int, height: int) -> tuple[int, int]:
        """(height, width) of the network input made from a ``width`` x ``height`` image."""
        if not self.whole:
            return self.size, self.size
        short, long = min(width, height), max(width, height)
        long_out = self.size * long / max(short, 1)
        if self.max_size:
            long_out = min(long_out, self.max_size)
        short_px = self._round(self.size)
        long_px = max(short_px, self._round(long_out))
        return (long_px, short_px) if height > width else (short_px, long_px)

    def accepts(self, height: int, width: int) -> bool:
        """Whether a prepared array of this height and width keeps the contract."""
        if not self.whole:
            return height == width == self.size
        low, high = min(height, width), max(height, width)
        cap = self._round(self.max_size) if self.max_size else None
        fits = cap is None or high <= cap
        return (
            height % self.multiple == 0
            and width % self.multiple == 0
            and low == self._round(self.size)
            and fits
        )

    def _round(self, pixels: float) -> int:
        return max(self.multiple, round(pixels / self.multiple) * self.multiple)
