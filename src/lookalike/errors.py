"""The error hierarchy. The library raises these; the CLI and web layers map them to exit codes
and HTTP statuses, each in one place. Messages name the file or field, what was expected, what
was found, and the fix."""

from __future__ import annotations


class LookalikeError(Exception):
    """Root of every error lookalike raises on purpose."""


class InvalidInputError(LookalikeError, ValueError):
    """A bad argument or option: the caller can fix it by passing something else."""


class UnknownImageError(InvalidInputError):
    """An image id or path that the index does not hold."""


class ImageError(LookalikeError):
    """An image could not be decoded or is refused (truncated, not an image, too large)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class IndexDirectoryError(LookalikeError):
    """Base of the errors about an index directory."""


class NotAnIndexError(IndexDirectoryError):
    """The directory is not a lookalike index."""


class IndexFormatError(IndexDirectoryError):
    """The index was written by a newer lookalike, or its files are damaged."""


class IndexLockedError(IndexDirectoryError):
    """Another process is writing the index."""


class EmbedderMismatchError(IndexDirectoryError):
    """A query or an update would mix vectors from a different embedder into the index."""


class ModelError(LookalikeError):
    """A model file is missing, damaged, or does not match its recorded digest."""


class DamagedIndexError(IndexFormatError):
    """A file of the index does not hold what was committed (checksum, size or shape differ)."""


class DamagedSegmentError(DamagedIndexError):
    """A vector segment is missing, truncated or altered since it was committed. ``missing``:
    the file is gone (a reader racing a compaction sees that too, and reads again)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


class DamagedGraphError(DamagedIndexError):
    """The HNSW graph (derived data) is damaged: exact search still works, and the next
    `lookalike index` rebuilds the graph."""


class ReadOnlyIndexError(IndexDirectoryError):
    """A change was asked of an index whose directory cannot be written."""


class DiskFullError(IndexDirectoryError):
    """The disk holding the index filled up during a write."""


class DamagedIndexWarning(UserWarning):
    """Part of an index is damaged but the library worked around it (e.g. a damaged graph:
    searched exactly instead). `lookalike verify --repair` fixes the cause."""


class MissingDependencyError(LookalikeError):
    """An optional dependency a feature needs is not installed; the message says which extra
    to install."""


class FetchCancelledError(LookalikeError):
    """A fetch of images was stopped (its Fetcher closed) before every request was answered."""


class FileActionError(LookalikeError):
    """Moving, linking or trashing a user's file failed part-way through a duplicate plan; the
    message names the file, the cause and how to go back (the journal's undo)."""
