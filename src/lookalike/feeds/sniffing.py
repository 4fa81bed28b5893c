"""Telling an image format from a file's first bytes; a server's Content-Type is never trusted."""

from __future__ import annotations

#: Bytes of a body needed to tell its format (ISO-BMFF brands sit in the first 32).
SNIFF_BYTES = 32

_HEIF_BRANDS = {
    b"avif": "avif",
    b"avis": "avif",
    b"heic": "heic",
    b"heix": "heic",
    b"heim": "heic",
    b"heis": "heic",
    b"hevc": "heic",
    b"hevx": "heic",
    b"mif1": "heic",
    b"msf1": "heic",
}


def _heif_extension(head: bytes) -> str | None:
    """AVIF or HEIC from an ISO-BMFF ``ftyp`` box: its major brand, else a compatible one."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return None
    box_size = int.from_bytes(head[:4], "big")
    brands = [head[8:12]]
    end = min(box_size, len(head)) if box_size >= 16 else len(head)
    brands += [head[i : i + 4] for i in range(16, end - 3, 4)]
    found = [_HEIF_BRANDS[b] for b in brands if b in _HEIF_BRANDS]
    if not found:
        return None
    return "avif" if "avif" in found else found[0]


def image_extension(head: bytes) -> str | None:
    """The file extension (without a dot) of the image format ``head`` starts, or None when
    the bytes are not one of JPEG, PNG, GIF, WebP, BMP, TIFF, AVIF or HEIC."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"BM") and len(head) >= 14:
        return "bmp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tif"
    return _heif_extension(head)


__all__ = ["SNIFF_BYTES", "image_extension"]
