"""How API answers name indexed files: relative to the folder that was indexed, so a server
does not tell every visitor where its photos live on disk (``serve --show-paths`` for the full
paths).

The catalog keeps absolute paths and each image's label, the first folder below the indexed
folder; so the path relative to the indexed folder is the part from the label's folder on, or
the file name for an image at the top level (which has no label). Images added through the API
live in the index folder and are named relative to it (``uploads/<hash>.jpg``).
"""

from __future__ import annotations

from pathlib import PurePath


def public_path(path: str, label: str | None, index_dir: PurePath) -> str:
    """``path`` as an API answer shows it: relative to the indexed folder."""
    full = PurePath(path)
    if full.is_relative_to(index_dir):
        return full.relative_to(index_dir).as_posix()
    if label:
        parents = full.parent.parts
        for depth in range(len(parents) - 1, 0, -1):  # the label's folder, nearest the file
            if parents[depth] == label:
                return PurePath(*full.parts[depth:]).as_posix()
    return full.name


__all__ = ["public_path"]
