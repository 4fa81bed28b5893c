"""Durable writes: a file is either its old self or its new self on disk, never a mix.

Every file lookalike keeps (segments, graphs, the manifest, model exports, thumbnails, uploads,
Ray shards) is written to a hidden temporary name beside its target, flushed to disk, renamed
over the target, and the folder is flushed so the rename itself survives a power cut. A crash
at any moment leaves at most a hidden ``.*.tmp`` file, which the owner of the folder deletes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

#: Temporary files are named ``.<target name>.<random>.tmp``: hidden, and matched by this glob.
TEMPORARY_GLOB = ".*.tmp"


def temporary_name(target: Path) -> Path:
    """A fresh hidden name beside ``target``, unique across processes and threads."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a folder's entries, to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Flush a folder's entries (a rename is durable only once its folder is)."""
    fsync_path(directory)


def commit_file(tmp: Path, target: Path) -> None:
    """Make a fully written temporary file durable and give it its final name, atomically
    (fsync the data, rename, fsync the folder). For files written by another library."""
    with tmp.open("rb+") as fh:
        os.fsync(fh.fileno())
    tmp.replace(target)
    fsync_dir(target.parent)


@contextlib.contextmanager
def staged(target: Path) -> Iterator[Path]:
    """A temporary path to write ``target`` through: committed when the block ends, deleted
    if it raises. For writers that want a path (``save_index``, ``torch.onnx.export``)."""
    tmp = temporary_name(target)
    try:
        yield tmp
        commit_file(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_with(target: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``target`` durably through a callback given an open binary file."""
    with staged(target) as tmp, tmp.open("wb") as fh:
        write(fh)


def write_bytes(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` durably: readers see the old file or the new one."""
    write_with(target, lambda fh: fh.write(data))


@contextlib.contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """A temporary folder that replaces ``target`` (a folder) when the block ends; on error
    the old folder stays and the temporary one is deleted."""
    staging = temporary_name(target)
    staging.mkdir(parents=True)
    old = temporary_name(target)
    try:
        yield staging
        for path in staging.rglob("*"):
            if path.is_file():
                with path.open("rb+") as fh:
                    os.fsync(fh.fileno())
            elif path.is_dir():
                fsync_dir(path)
        fsync_dir(staging)
        moved = target.exists()
        if moved:
            target.rename(old)
        try:
            staging.rename(target)
        except BaseException:
            if moved:  # put the old folder back rather than delete it below
                old.rename(target)
            raise
        fsync_dir(target.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def remove_temporaries(folder: Path) -> None:
    """Delete what interrupted writes left in ``folder`` (only its own hidden ``.*.tmp``)."""
    if not folder.is_dir():
        return
    for path in folder.glob(TEMPORARY_GLOB):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


__all__ = [
    "TEMPORARY_GLOB",
    "commit_file",
    "fsync_dir",
    "fsync_path",
    "remove_temporaries",
    "staged",
    "staged_folder",
    "temporary_name",
    "write_bytes",
    "write_with",
]
