"""Decoding an image for an explanation: its size as shown (EXIF orientation, full
resolution even when a JPEG is decoded at reduced scale), the region, the part the network
sees, and refusals that name the image and its size."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from lookalike.errors import ImageError, InvalidInputError
from lookalike.evaluation.copies import skimage_originals
from lookalike.explain.overlays import OVERLAY_SIDE, overlay_png
from lookalike.explain.views import view_image
from lookalike.input_spec import InputSpec
from lookalike.region import Box

WHOLE = InputSpec(size=256, resize="whole", max_size=512)
CROP = InputSpec(size=224)


@pytest.fixture(scope="module")
def chelsea() -> Image.Image:
    return dict(skimage_originals())["chelsea"]  # 451 x 300


def jpeg(image: Image.Image, *, orientation: int | None = None) -> bytes:
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def test_exif_rotated_photo_is_measured_and_boxed_as_shown(chelsea: Image.Image) -> None:
    data = jpeg(chelsea, orientation=6)  # stored 451 x 300, shown turned: 300 x 451
    view = view_image(data, WHOLE, box=Box(0, 0, 300, 200))
    assert view.size == (300, 451)
    assert view.seen == Box(0, 0, 300, 200)
    assert view.pixels.shape == (256, 384, 3)  # the 300 x 200 region, shorter side 256
    with pytest.raises(InvalidInputError, match="which is 300x451"):
        view_image(data, WHOLE, box=Box(0, 0, 451, 300))


def test_a_large_jpeg_reports_its_full_size_and_keeps_a_preview(chelsea: Image.Image) -> None:
    big = chelsea.resize((3608, 2400), Image.Resampling.BICUBIC)
    view = view_image(jpeg(big), CROP)
    assert view.size == (3608, 2400)
    assert max(view.preview.size) == OVERLAY_SIDE
    side = 2400 * CROP.crop_fraction
    assert view.seen.size == pytest.approx((side, side))
    assert view.pixels.shape == (224, 224, 3)
    png = overlay_png(view.preview, np.eye(8, 12, dtype=np.float32))
    with Image.open(io.BytesIO(png)) as shown:
        assert shown.format == "PNG" and shown.size == (512, 341)


def test_a_region_of_a_large_jpeg_is_decoded_sharp_enough(chelsea: Image.Image) -> None:
    big = chelsea.resize((3608, 2400), Image.Resampling.BICUBIC)
    whole = np.asarray(big.crop((1000, 800, 1400, 1200)).resize((256, 256)), dtype=np.float32)
    view = view_image(jpeg(big), WHOLE, box=Box(1000, 800, 1400, 1200))
    assert view.pixels.shape == (256, 256, 3)
    assert np.abs(view.pixels.astype(np.float32) - whole).mean() < 6  # the same pixels


def test_bad_files_are_refused_by_name() -> None:
    with pytest.raises(ImageError, match=r"upload\.png: not an image"):
        view_image(b"not an image", WHOLE, name="upload.png")
