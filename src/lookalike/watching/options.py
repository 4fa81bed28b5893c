"""``WatchOptions``: how a folder is watched (timings, batch size, decoding workers)."""

from __future__ import annotations

from dataclasses import dataclass

from lookalike.errors import InvalidInputError


@dataclass(frozen=True)
class WatchOptions:
    """``rescan``: seconds between full rescans of the folder (0: only the one at start), which
    catch what filesystem events miss. A file is taken ``quiet`` seconds after it was closed
    with no event since; a file never seen closed (a platform without close events, a writer
    that keeps it open) once it has not changed for ``settle`` seconds. ``max_batch``: files
    per commit. ``workers``: decoding processes for rescans and large batches (None: one per
    core); small batches decode in the watching process, which starts faster."""

    rescan: float = 300.0
    quiet: float = 0.2
    settle: float = 3.0
    max_batch: int = 256
    workers: int | None = None

    def __post_init__(self) -> None:
        for name in ("rescan", "quiet", "settle"):
            value = getattr(self, name)
            if not value >= 0:
                raise InvalidInputError(
                    f"WatchOptions.{name} must be 0 or more seconds, got {value!r}"
                )
        if self.max_batch < 1:
            raise InvalidInputError(
                f"WatchOptions.max_batch must be at least 1, got {self.max_batch!r}"
            )
        if self.workers is not None and self.workers < 0:
            raise InvalidInputError(
                f"WatchOptions.workers must be 0 (none) or more, got {self.workers!r}"
            )
