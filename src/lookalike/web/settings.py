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
    #: Uploads are untrusted: far fewer pixels than local files (40 MP decodes to ~120 MB RGB).
    max_upload_pixels: int = 40_000_000
    #: Host names the server answers to besides the loopback names (DNS rebinding guard).
    allowed_hosts: tuple[str, ...] = ()
    #: Full file paths in API answers; by default paths are relative to the indexed folder.
    show_paths: bool = False
    #: Uploads decoded at once (default: one per core); more wait up to ``decode_wait`` s, then 503.
    decode_slots: int | None = None
    decode_wait: float = 30.0
    #: Micro-batching: seconds a search waits for others to share its network batch (0: off,
    #: one search at a time), and the most query images in one batch.
    batch_wait: float = 0.005
    max_batch: int = 16
    #: Micro-batching: batches that may run at once; with more than one, a batch that starts
    #: while another runs uses a one-thread copy of the network. Default 1: measured on 2 cores,
    #: two gave 0-25 % more requests/s but a 23-36 % worse p99 (web/service.py).
    batch_workers: int = 1
    #: Seconds a client may take to send a request's headers, and an upload's body.
    header_timeout: float = 10.0
    body_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1024:
            raise InvalidInputError(
                "ServeSettings.max_upload_bytes: max upload size must be at least 1 KiB, "
                f"got {self.max_upload_bytes} bytes"
            )
        if self.max_k < 1:
            raise InvalidInputError(f"ServeSettings.max_k must be at least 1, got {self.max_k}")
        if not 1 <= self.default_k <= self.max_k:
            raise InvalidInputError(
                f"ServeSettings.default_k: default k must be between 1 and max k ({self.max_k}), "
                f"got {self.default_k}"
            )
        sizes = self.thumbnail_sizes
        if not sizes or any(not 1 <= size <= 4096 for size in sizes):
            raise InvalidInputError(
                "ServeSettings.thumbnail_sizes must be one or more sizes of 1..4096 pixels, "
                f"got {self.thumbnail_sizes}"
            )
        if not 0 <= self.batch_wait <= 1:
            raise InvalidInputError(
                "ServeSettings.batch_wait: the batch wait must be 0 (off) to 1 s, "
                f"got {self.batch_wait:g} s"
            )
        if self.max_batch < 1:
            raise InvalidInputError(
                f"ServeSettings.max_batch must be at least 1, got {self.max_batch}"
            )
        if self.batch_workers < 1:
            raise InvalidInputError(
                f"ServeSettings.batch_workers must be at least 1, got {self.batch_workers}"
            )
        if self.threads is not None and self.threads < 1:
            raise InvalidInputError(
                f"ServeSettings.threads must be at least 1 (None: every core), got {self.threads}"
            )
