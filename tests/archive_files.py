"""Real files of the archive formats, made from real photos: HEIC (pillow-heif), AVIF (Pillow)
and DNG (a Bayer mosaic of the photo in a TIFF with the DNG tags, written with tifffile, with
or without an embedded preview), each optionally stored turned with an orientation tag."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

U8 = npt.NDArray[np.uint8]

#: The transposition that stores an upright picture so that EXIF ``orientation`` shows it
#: upright again (the inverse of what a viewer applies).
_STORE = {
    1: None,
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}
#: XYZ (D65) to linear sRGB, so the DNG's "camera" is linear sRGB and LibRaw's output is sRGB.
_XYZ_TO_SRGB = (32406, -15372, -4986, -9689, 18758, 415, 557, -2040, 10570)


def stored(upright: U8, orientation: int) -> Image.Image:
    """The picture as a camera would store it before tagging it with ``orientation``."""
    image = Image.fromarray(upright)
    method = _STORE[orientation]
    return image.transpose(method) if method is not None else image


def exif_bytes(orientation: int, taken: str | None = None) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    if taken is not None:
        exif.get_ifd(0x8769)[0x9003] = taken
    return exif.tobytes()


def heic_bytes(
    upright: U8,
    *,
    orientation: int = 1,
    taken: str | None = None,
    thumbnails: tuple[int, ...] = (),
) -> bytes:
    """A HEIC file of the picture (pillow-heif turns the EXIF orientation into the HEIF
    rotation it writes), with embedded thumbnails of those longer sides, as phones write."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    out = io.BytesIO()
    stored(upright, orientation).save(
        out,
        format="HEIF",
        quality=90,
        exif=exif_bytes(orientation, taken),
        thumbnails=list(thumbnails),
    )
    return out.getvalue()


def avif_bytes(upright: U8, *, orientation: int = 1) -> bytes:
    """An AVIF file of the picture, stored turned with an EXIF orientation tag."""
    out = io.BytesIO()
    stored(upright, orientation).save(out, format="AVIF", quality=90, exif=exif_bytes(orientation))
    return out.getvalue()


def write_dng(
    path: Path,
    upright: U8,
    *,
    orientation: int = 1,
    preview_side: int | None = None,
    preview_upright: bool = False,
    preview_jpeg: bool = True,
    preview_exif: int | None = None,
    taken: str | None = None,
) -> Path:
    """A valid DNG of the picture: its stored pixels as an RGGB Bayer mosaic, 12-bit linear,
    in a CFA TIFF with DNGVersion, ColorMatrix1, AsShotNeutral and WhiteLevel. ``preview_side``:
    IFD0 is then an 8-bit RGB preview of the whole picture, its longer side that many pixels
    (stored turned like the mosaic; ``preview_upright``: as shown, as some cameras store it;
    ``preview_exif``: stored for, and tagged with, its own EXIF orientation), a JPEG
    (``preview_jpeg``, as cameras write it) or uncompressed RGB, the mosaic in a SubIFD."""
    import tifffile

    pixels = np.asarray(stored(upright, orientation))
    height, width = (s - s % 2 for s in pixels.shape[:2])
    pixels = pixels[:height, :width]
    linear = np.round((pixels / 255.0) ** 2.2 * 4095).astype(np.uint16)
    mosaic = np.empty((height, width), np.uint16)
    mosaic[0::2, 0::2] = linear[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = linear[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = linear[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = linear[1::2, 1::2, 2]
    matrix = tuple(v for x in _XYZ_TO_SRGB for v in (x, 10000))
    main = [
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50708, "s", 0, "Lookalike Test Camera", True),  # UniqueCameraModel
        (50721, "2i", 9, matrix, True),  # ColorMatrix1
        (50778, "H", 1, 21, True),  # CalibrationIlluminant1: D65
        (50728, "2I", 3, (1, 1, 1, 1, 1, 1), True),  # AsShotNeutral
        (274, "H", 1, orientation, True),  # Orientation
        (271, "s", 0, "Lookalike", True),  # Make
        (272, "s", 0, "Test Camera", True),  # Model
    ]
    if taken is not None:
        main.append((306, "s", 0, taken, True))  # DateTime
    cfa = [
        (33421, "H", 2, (2, 2), False),  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), False),  # CFAPattern: RGGB
        (50717, "I", 1, 4095, False),  # WhiteLevel
    ]
    small: Image.Image | None = None
    if preview_side is not None:
        small = stored(upright, preview_exif) if preview_exif else Image.fromarray(pixels)
        if preview_upright:
            small = Image.fromarray(upright)
        small.thumbnail((preview_side, preview_side), Image.Resampling.LANCZOS)
    with tifffile.TiffWriter(path) as tif:
        if small is not None:
            tif.write(
                np.asarray(small),
                photometric="rgb",
                subfiletype=1,
                subifds=1,
                rowsperstrip=small.height,
                extratags=main,
            )
            tif.write(mosaic, photometric=32803, subfiletype=0, extratags=cfa)
        else:
            tif.write(mosaic, photometric=32803, subfiletype=0, extratags=main + cfa)
    if small is not None and preview_jpeg:
        out = io.BytesIO()
        exif = exif_bytes(preview_exif) if preview_exif else b""
        small.save(out, format="JPEG", quality=90, exif=exif)
        _make_preview_jpeg(path, out.getvalue())
    return path


def _make_preview_jpeg(path: Path, jpeg: bytes) -> None:
    """Turn the DNG's uncompressed preview (IFD0, one strip) into the JPEG ``jpeg``: tifffile
    cannot write JPEG strips without imagecodecs, so its tags are pointed at the JPEG's bytes,
    appended to the file. A JFIF block is dropped: a camera's EXIF block comes first."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        where = {
            name: tags[name].valueoffset
            for name in (
                "Compression",
                "PhotometricInterpretation",
                "StripOffsets",
                "StripByteCounts",
            )
        }
    if jpeg[2:4] == b"\xff\xe0":  # APP0 (JFIF)
        jpeg = jpeg[:2] + jpeg[4 + int.from_bytes(jpeg[4:6], "big") :]
    data = bytearray(path.read_bytes())
    struct.pack_into("<H", data, where["Compression"], 7)  # JPEG
    struct.pack_into("<H", data, where["PhotometricInterpretation"], 6)  # YCbCr
    struct.pack_into("<I", data, where["StripOffsets"], len(data))
    struct.pack_into("<I", data, where["StripByteCounts"], len(jpeg))
    path.write_bytes(bytes(data) + jpeg)


def correlation(a: U8, b: U8) -> float:
    """Pearson correlation of two pictures' pixels after resizing ``a`` to ``b``'s size."""
    if a.shape != b.shape:
        a = np.asarray(Image.fromarray(a).resize((b.shape[1], b.shape[0])))
    return float(np.corrcoef(a.astype(float).ravel(), b.astype(float).ravel())[0, 1])
