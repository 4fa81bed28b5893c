"""Which container an image file is (HEIF, AVIF, camera RAW, or anything PIL reads), told
from its first bytes and its name, and the optional libraries that read the archive formats.

HEIF (phones' HEIC) is read by pillow-heif, registered with PIL on first use; AVIF by Pillow
itself (Pillow >= 11.3 built with libavif); camera RAW by rawpy (LibRaw). The two extra
libraries are the ``archive`` extra: a file that needs one that is missing is refused with a
reason that says how to install it, never a crash.
"""

from __future__ import annotations

import enum
import os
import struct
import sys
import threading
from pathlib import Path
from types import ModuleType

from lookalike.errors import ImageError

#: Camera RAW files, read through rawpy (LibRaw).
RAW_EXTENSIONS = frozenset(
    {".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf"}
    | {".rw2", ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".erf", ".kdc", ".mrw", ".mos"}
)
HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".hif"})
AVIF_EXTENSIONS = frozenset({".avif"})
#: The extensions of the formats this module adds to those PIL reads itself.
ARCHIVE_EXTENSIONS = RAW_EXTENSIONS | HEIF_EXTENSIONS | AVIF_EXTENSIONS

INSTALL_ARCHIVE = "install the archive extra (pip install 'lookalike[archive]')"

#: How many leading bytes :func:`container_of` looks at (a TIFF's first directory is there).
HEAD_BYTES = 4096

_HEVC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"}
_HEIF_BRANDS = _HEVC_BRANDS | {b"mif1", b"msf1", b"mif2", b"miaf"}
_AVIF_BRANDS = {b"avif", b"avis"}
_RAW_BRANDS = {b"crx "}  # Canon CR3
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
#: Headers of RAW formats that are not plain TIFFs (Fujifilm RAF, Olympus ORF, Panasonic RW2).
_RAW_MAGIC = (b"FUJIFILMCCD-RAW", b"IIRO", b"IIRS", b"MMOR", b"IIU\x00")
_DNG_VERSION = 50706
_NEW_SUBFILE_TYPE = 254
_MAKE = 271
_SUB_IFDS = 330
#: Headers of common formats PIL reads itself (JPEG, PNG, GIF, BMP, WebP).
_PIL_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"RIFF")


class Container(enum.Enum):
    """How a file must be decoded."""

    PIL = "pil"  # PIL's own plugins (JPEG, PNG, TIFF, WebP, ...)
    HEIF = "heif"
    AVIF = "avif"
    RAW = "raw"


def container_of(head: bytes, suffix: str = "") -> Container:
    """The container of a file whose first bytes are ``head`` and whose name ends in
    ``suffix`` (may be empty: an upload). Content decides where it can; a TIFF-based RAW
    (NEF, ARW, PEF, SRW: TIFFs from a camera) is known by its name or its DNG tag."""
    if head[4:8] == b"ftyp":
        brands = _ftyp_brands(head)
        if brands & _RAW_BRANDS:
            return Container.RAW
        if head[8:12] in _AVIF_BRANDS or (brands & _AVIF_BRANDS and not brands & _HEVC_BRANDS):
            return Container.AVIF
        if brands & _HEIF_BRANDS:
            return Container.HEIF
    suffix = suffix.lower()
    if head.startswith(_RAW_MAGIC):
        return Container.RAW
    if head[:4] in _TIFF_MAGIC:
        tiff_raw = head[8:10] == b"CR" or suffix in RAW_EXTENSIONS or _is_camera_raw(head)
        return Container.RAW if tiff_raw else Container.PIL
    if head.startswith(_PIL_MAGIC):
        return Container.PIL
    # Content unknown (damaged, or a format only its reader knows): the name decides, so a
    # damaged RAW or HEIC is refused by its own reader, or for want of it.
    for extensions, container in _BY_SUFFIX:
        if suffix in extensions:
            return container
    return Container.PIL


_BY_SUFFIX = (
    (RAW_EXTENSIONS, Container.RAW),
    (HEIF_EXTENSIONS, Container.HEIF),
    (AVIF_EXTENSIONS, Container.AVIF),
)


def read_head(source: Path | bytes) -> bytes:
    """The first :data:`HEAD_BYTES` of a file or of its bytes."""
    if isinstance(source, bytes):
        return source[:HEAD_BYTES]
    with source.open("rb") as fh:
        return fh.read(HEAD_BYTES)


def _ftyp_brands(head: bytes) -> set[bytes]:
    """The major and compatible brands of an ISO media file's leading ``ftyp`` box."""
    size = struct.unpack(">I", head[:4])[0]
    end = min(max(size, 16), len(head))
    return {head[8:12]} | {head[i : i + 4] for i in range(16, end - 3, 4)}


def _is_camera_raw(head: bytes) -> bool:
    """Whether a TIFF is a camera's RAW, by its first directory (when it lies within
    ``head``): a DNGVersion tag, or a camera's make on a reduced-resolution first image (the
    preview NEF, PEF, SRW and others put before the sensor data in a sub-directory)."""
    order = "<" if head[:2] == b"II" else ">"
    tags: dict[int, int] = {}
    try:
        (offset,) = struct.unpack_from(order + "I", head, 4)
        (count,) = struct.unpack_from(order + "H", head, offset)
        for entry in range(min(count, 512)):
            tag, kind, _, value = struct.unpack_from(order + "HHII", head, offset + 2 + 12 * entry)
            if kind == 3:  # SHORT: the value sits in the entry's first two bytes
                (value,) = struct.unpack_from(order + "H", head, offset + 10 + 12 * entry)
            tags[tag] = value
    except struct.error:  # the directory lies beyond the head, or the file is cut short
        pass
    reduced = bool(tags.get(_NEW_SUBFILE_TYPE, 0) & 1)
    return _DNG_VERSION in tags or (reduced and _MAKE in tags and _SUB_IFDS in tags)


_LOCK = threading.Lock()
_heif_registered = False


def require_heif(name: str) -> None:
    """Make PIL read HEIF files (once per process), or refuse ``name`` saying what to install."""
    global _heif_registered
    with _LOCK:
        if _heif_registered:
            return
        try:
            import pillow_heif
        except ImportError as exc:
            raise ImageError(name, f"HEIC/HEIF needs pillow-heif: {INSTALL_ARCHIVE}") from exc
        # libheif applies the file's rotation and mirroring itself, and pillow-heif then sets
        # the EXIF orientation to 1: turning the picture upright again finds nothing to do.
        pillow_heif.register_heif_opener()
        _heif_registered = True


def require_avif(name: str) -> None:
    """Refuse ``name`` when this Pillow cannot read AVIF, saying what to upgrade."""
    from PIL import features

    if not features.check("avif"):
        raise ImageError(name, "AVIF needs Pillow 11.3 or newer built with libavif: upgrade Pillow")


def require_rawpy(name: str) -> ModuleType:
    """The rawpy module, or refuse ``name`` saying what to install.

    rawpy's wheel carries its own OpenMP runtime (libgomp), which is not fork-safe: once a
    process has run a parallel region, a child forked from it hangs in its first one (our
    decode workers are forked). LibRaw is therefore loaded with OMP_NUM_THREADS=1, read by
    that runtime once, when it is loaded, so it never starts threads; the variable is put
    back at once, so other libraries (PyTorch's own OpenMP) are not affected."""
    if "rawpy" in sys.modules and sys.modules["rawpy"] is not None:
        return sys.modules["rawpy"]
    with _RAWPY_IMPORT:
        saved = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = "1"
        try:
            import rawpy
        except ImportError as exc:
            raise ImageError(name, f"camera RAW needs rawpy: {INSTALL_ARCHIVE}") from exc
        finally:
            if saved is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = saved
    return rawpy


_RAWPY_IMPORT = threading.Lock()


def check_pixels(width: int, height: int, max_pixels: int, name: str, *, kind: str) -> None:
    """Refuse ``name`` (a ``kind`` of file: "image", "camera RAW") with no pixels, or with more
    than ``max_pixels`` (a decompression bomb), before its pixels are decoded."""
    if width < 1 or height < 1:
        raise ImageError(name, f"{kind} has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(
            name,
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (a decompression bomb or an absurdly large image); "
            "downscale it or raise max_pixels",
        )


def prepare_container(container: Container, name: str) -> None:
    """Make sure the library ``container`` needs is there (RAW is checked when it is read)."""
    if container is Container.HEIF:
        require_heif(name)
    elif container is Container.AVIF:
        require_avif(name)


__all__ = [
    "ARCHIVE_EXTENSIONS",
    "AVIF_EXTENSIONS",
    "HEIF_EXTENSIONS",
    "INSTALL_ARCHIVE",
    "RAW_EXTENSIONS",
    "Container",
    "check_pixels",
    "container_of",
    "prepare_container",
    "read_head",
    "require_avif",
    "require_heif",
    "require_rawpy",
]
