"""Finding image files under a folder, and fingerprinting them for incremental indexing.

A file is unchanged when its size and modification time (ns) match the catalog; only then is
its content not read. New and changed files are hashed, which is how renames and moves are
recognised without embedding the image again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lookalike.errors import InvalidInputError
from lookalike.image_formats import ARCHIVE_EXTENSIONS

#: What a folder scan picks up: PIL's common formats, and HEIC/HEIF, AVIF and camera RAW (read
#: with the archive extra; without it such files are skipped with the reason).
IMAGE_EXTENSIONS = (
    frozenset(
        {".jpg", ".jpeg", ".jpe", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm"}
    )
    | ARCHIVE_EXTENSIONS
)

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class ImageFile:
    """An image file found on disk: absolute path, size in bytes, mtime in ns, folder label."""

    path: str
    size: int
    mtime_ns: int
    label: str | None


def scan_folder(
    root: Path | str,
    *,
    extensions: frozenset[str] = IMAGE_EXTENSIONS,
    include_hidden: bool = False,
) -> Iterator[ImageFile]:
    """Yield the image files under ``root`` (recursively), in a stable sorted order.

    The label of a file is the name of the first folder below ``root`` that contains it (the
    usual layout of a labelled dataset: one subfolder per class), or None at the top level.
    """
    base = check_folder(root)
    for dirpath, dirnames, filenames in os.walk(base):
        if not include_hidden:
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        dirnames.sort()
        relative_dir = Path(dirpath).relative_to(base)
        label = relative_dir.parts[0] if relative_dir.parts else None
        for name in sorted(filenames):
            if not include_hidden and name.startswith("."):
                continue
            if Path(name).suffix.lower() not in extensions:
                continue
            full = Path(dirpath) / name
            try:
                stat = full.stat()
            except OSError:
                continue  # vanished or a dangling link: it is simply not there
            if not full.is_file():
                continue
            yield ImageFile(str(full), stat.st_size, stat.st_mtime_ns, label)


def check_folder(root: Path | str) -> Path:
    """The resolved folder, or an error saying why it cannot be indexed."""
    base = Path(root).expanduser()
    if not base.exists():
        raise InvalidInputError(f"{base}: folder not found; pass an existing folder of images")
    if not base.is_dir():
        raise InvalidInputError(f"{base}: is a file, not a folder; pass the folder that holds it")
    return base.resolve()


def content_hash(path: str) -> str:
    """BLAKE2b-128 of the file's bytes, hex."""
    digest = hashlib.blake2b(digest_size=16)
    with Path(path).open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_digest(path: Path | str) -> str:
    """SHA-256 of a file, hex: the identity of model weights."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
