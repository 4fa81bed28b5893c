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
