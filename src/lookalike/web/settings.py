"""Server settings, declared as data and checked at start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lookalike.errors import InvalidInputError


@dataclass(frozen=True)
class ServeSettings:
    """How ``lookalike serve`` runs. Read-only and loopback-only unless told otherwise."""

    index: Path
    max_upload_bytes: int = 20 * 1024 * 1024
    allow_writes: bool = False
    default_k: int = 12
    max_k: int = 200
    thumbnail_sizes: tuple[int, ...] = (128, 256, 512)
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1024:
            raise InvalidInputError(
                f"max upload size must be at least 1 KiB, got {self.max_upload_bytes} bytes"
            )
        if not 1 <= self.default_k <= self.max_k:
            raise InvalidInputError(
                f"default k must be between 1 and max k ({self.max_k}), got {self.default_k}"
            )
