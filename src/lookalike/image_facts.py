"""What a photo archive's rules need to know about one image file, read from its header only
(no pixels decoded): size on disk, modification time, resolution as a viewer shows it, format,
and when it was taken (EXIF). HEIC/HEIF and AVIF are read like JPEGs (pillow-heif, Pillow);
camera RAW from LibRaw's metadata (rawpy)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PIL import Image

from lookalike.errors import ImageError
from lookalike.image_formats import Container, container_of, prepare_container, read_head
from lookalike.orientation import ORIENTATION_TAG, QUARTER_TURNS
from lookalike.raw_images import read_raw_header

_EXIF_IFD = 0x8769
_DATE_TIME_ORIGINAL = 0x9003
_DATE_TIME = 0x0132


@dataclass(frozen=True)
class ImageFacts:
    """One file's facts; ``width``/``height``/``format``/``taken`` are None when the header
    cannot be read (the file is gone, damaged, or of a format whose reader is not installed).
    ``format``: PIL's name in lower case (``jpeg``, ``png``, ``heif``, ``avif``, ...), or for a
    camera RAW its flavour from the file name (``dng``, ``cr2``, ``nef``, ...; else ``raw``)."""

    path: str
    size: int
    mtime_ns: int
    width: int | None
    height: int | None
    format: str | None
    #: EXIF DateTimeOriginal (else DateTime) as ISO 8601 without zone, as the camera wrote it.
    taken: str | None

    @property
    def pixels(self) -> int:
        return (self.width or 0) * (self.height or 0)


def read_facts(path: Path | str) -> ImageFacts:
    """The facts of ``path``. Raises ``OSError`` only when the file cannot be stat'ed."""
    stat = Path(path).stat()
    width = height = None
    fmt = taken = None
    try:
        container = container_of(read_head(Path(path)), Path(path).suffix)
        if container is Container.RAW:
            raw = read_raw_header(Path(path), name=str(path))
            width, height, fmt, taken = raw.width, raw.height, raw.format, raw.taken
            return ImageFacts(str(path), stat.st_size, stat.st_mtime_ns, width, height, fmt, taken)
        prepare_container(container, str(path))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                width, height = image.size
                fmt = (image.format or "").lower() or None
                exif = image.getexif()
                if exif.get(ORIENTATION_TAG) in QUARTER_TURNS:
                    width, height = height, width
                taken = _taken(exif)
    except (ImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        pass
    return ImageFacts(str(path), stat.st_size, stat.st_mtime_ns, width, height, fmt, taken)


def _taken(exif: Image.Exif) -> str | None:
    raw = exif.get_ifd(_EXIF_IFD).get(_DATE_TIME_ORIGINAL) or exif.get(_DATE_TIME)
    if not isinstance(raw, str):
        return None
    try:
        return datetime.strptime(raw.strip("\x00 "), "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None
