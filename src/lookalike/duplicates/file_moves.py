"""Moving and copying a user's files without ever overwriting one: a rename on one filesystem,
a durable copy then removal of the source across filesystems, and a free name when the
target is taken."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from lookalike.durable import fsync_dir, temporary_name
from lookalike.errors import InvalidInputError


def free_name(target: Path, taken: set[Path] | None = None) -> Path:
    """``target`` if nothing is there (nor in ``taken``), else ``name~1.ext``, ``name~2.ext``..."""
    taken = taken or set()
    candidate = target
    number = 0
    while candidate in taken or os.path.lexists(candidate):
        number += 1
        candidate = target.with_name(f"{target.stem}~{number}{target.suffix}")
    return candidate


def copy_durably(source: Path, target: Path) -> None:
    """Copy ``source`` (bytes, mode, times) to ``target`` through a temporary name, flushed to
    disk before the rename; refuses to replace an existing ``target``."""
    tmp = temporary_name(target)
    try:
        shutil.copy2(source, tmp)
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        _link_into_place(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(target.parent)


def keep_bytes(source: Path, target: Path) -> None:
    """Make ``target`` a durable second name of ``source``'s bytes: a hard link where the
    filesystem allows (no copy), else a durable copy. Refuses to replace ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise InvalidInputError(
                f"{target}: a file is already there; it was left alone"
            ) from None
        copy_durably(source, target)
    fsync_dir(target.parent)


def move_file(source: Path, target: Path) -> None:
    """Move ``source`` to ``target`` (whose folder is made), never replacing a file there.
    Across filesystems the bytes are copied and flushed before the source is removed, so a
    crash leaves the source, or both (the same bytes), never neither."""
    if os.path.lexists(target):
        raise InvalidInputError(
            f"{target}: a file is already there; it was left alone and {source} was not moved"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        linked = _link_into_place(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        copy_durably(source, target)
        linked = True
    fsync_dir(target.parent)  # the new name is on disk before the old one goes
    if linked:
        source.unlink()  # lost in a crash: both names stay, and undo drops the new one


def _link_into_place(source: Path, target: Path) -> bool:
    """Give ``source``'s file the name ``target`` too, failing if ``target`` exists (a hard
    link cannot replace a file, unlike a rename); True when both names now exist.
    Filesystems without hard links (FAT, some network shares) fall back to a rename after
    checking the name is free (False: ``source`` is gone)."""
    try:
        os.link(source, target)
        return True
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise InvalidInputError(
                f"{target}: a file is already there; it was left alone and {source} was not moved"
            ) from None
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EMLINK):
            raise
        if os.path.lexists(target):
            raise InvalidInputError(
                f"{target}: a file is already there; it was left alone and {source} was not moved"
            ) from None
        source.rename(target)
        return False


__all__ = ["copy_durably", "free_name", "keep_bytes", "move_file"]
