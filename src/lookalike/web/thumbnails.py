"""Thumbnails of indexed images, made on first request and cached on disk."""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image

from lookalike import durable
from lookalike.cache import cache_dir
from lookalike.catalog_records import ImageRecord
from lookalike.imaging import open_image


class Thumbnailer:
    """JPEG thumbnails under ``$LOOKALIKE_CACHE_DIR/thumbnails/<index>/``, keyed by image id,
    size, and the file's size and mtime (an edited photo gets a new thumbnail)."""

    def __init__(self, index_dir: Path) -> None:
        tag = hashlib.sha256(str(index_dir.resolve()).encode()).hexdigest()[:16]
        self.folder = cache_dir() / "thumbnails" / tag

    def path(self, record: ImageRecord, size: int) -> Path:
        """The thumbnail's file, made now if missing. Raises ImageError for unreadable files."""
        key = f"{record.id}-{size}-{record.size}-{record.mtime_ns}.jpg"
        target = self.folder / key
        if target.is_file():
            return target
        image = open_image(record.path, min_side=size)
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
        self.folder.mkdir(parents=True, exist_ok=True)
        # Readers (other requests, other workers) see a whole thumbnail or none.
        durable.write_with(target, lambda fh: image.save(fh, format="JPEG", quality=85))
        return target
