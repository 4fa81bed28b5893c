"""Disk errors: file-system errors of a write into an index directory, as the typed errors the
front ends report in one line."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from lookalike.errors import DiskFullError, ReadOnlyIndexError


@contextlib.contextmanager
def writing(directory: Path) -> Iterator[None]:
    """File-system errors of a write into the index become typed errors naming the directory:
    a full disk, a read-only directory."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(
                f"{directory}: disk full while writing the index; free space and re-run; "
                "nothing committed is lost"
            ) from exc
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM) and not os.access(
            directory if directory.exists() else directory.parent, os.W_OK
        ):
            raise ReadOnlyIndexError(
                f"{directory}: the index directory is read-only (a read-only mount or "
                "volume?); search, info and verify work there, changes need a writable copy"
            ) from exc
        raise
