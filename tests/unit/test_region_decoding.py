"""Decoding a region of a query image: the box is read in the upright image's full-scale
pixels, JPEGs are decoded no larger than the region needs, and only the region comes back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from lookalike.embedders.base import InputSpec
from lookalike.errors import ImageError, InvalidInputError
from lookalike.imaging import open_image
from lookalike.query import decode_queries
from lookalike.region import Box, Region

#: EXIF orientation 6: the stored pixels are shown turned a quarter clockwise.
ROTATED_90 = 6


def _difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two images, ``b`` resized to ``a``'s size."""
    b = b.resize(a.size, Image.Resampling.BILINEAR)
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean())


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2400 x 1800 photo (coffee, upscaled)."""
    path = tmp_path_factory.mktemp("region") / "coffee-big.jpg"
    photo = Image.fromarray(skimage.data.coffee()).resize((2400, 1800), Image.Resampling.BICUBIC)
    photo.save(path, quality=90)
    return path


@pytest.fixture(scope="module")
def rotated_jpeg(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Image.Image]:
    """A JPEG stored 1800 x 1200 with EXIF orientation 6, and the picture as a viewer shows
    it (1200 x 1800): the astronaut on the top half, the cat on the bottom half."""
    astronaut = Image.fromarray(skimage.data.astronaut()).resize((1200, 900))
    cat = Image.fromarray(skimage.data.chelsea()).resize((1200, 900))
    upright = Image.new("RGB", (1200, 1800))
    upright.paste(astronaut, (0, 0))
    upright.paste(cat, (0, 900))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # orientation 6 turns it back
    exif = Image.Exif()
    exif[0x0112] = ROTATED_90
    path = tmp_path_factory.mktemp("rotated") / "rotated.jpg"
    stored.save(path, quality=92, exif=exif.tobytes())
    return path, upright


def test_a_region_is_decoded_at_reduced_scale_but_never_below_min_side(big_jpeg: Path) -> None:
    box = Box(1200, 900, 2400, 1800)  # the bottom-right quarter, 1200 x 900
    region = open_image(big_jpeg, min_side=256, box=box)
    whole = open_image(big_jpeg, min_side=256)
    assert 256 <= min(region.size) < 900, region.size  # a draft, but the region keeps detail
    assert whole.width / 2400 < region.width / 1200  # the whole image is decoded smaller
    assert region.width / region.height == pytest.approx(1200 / 900, rel=0.01)
    exact = open_image(big_jpeg).crop(box.pixels())
    assert _difference(region, exact) < 3.0
    assert _difference(region, open_image(big_jpeg).crop((0, 0, 1200, 900))) > 15.0


def test_the_box_is_read_in_the_upright_image(rotated_jpeg: tuple[Path, Image.Image]) -> None:
    path, upright = rotated_jpeg
    assert open_image(path).size == (1200, 1800)
    for box in (Box(0, 0, 1200, 900), Box(0, 900, 1200, 1800), Box(300, 1000, 700, 1500)):
        for min_side in (None, 128):
            region = open_image(path, min_side=min_side, box=box)
            assert _difference(region, upright.crop(box.pixels())) < 4.0, (box, min_side)
    top = open_image(path, min_side=128, box=Box(0, 0, 1200, 900))
    assert _difference(top, upright.crop((0, 900, 1200, 1800))) > 15.0  # not the cat


def test_a_box_outside_the_upright_image_names_its_size(
    rotated_jpeg: tuple[Path, Image.Image],
) -> None:
    path, _ = rotated_jpeg
    # Inside the stored 1800 x 1200 pixels, but not inside the 1200 x 1800 picture shown.
    with pytest.raises(InvalidInputError, match=r"rotated\.jpg: box 0,0,1500,1000 .* 1200x1800"):
        open_image(path, min_side=128, box=Box(0, 0, 1500, 1000))
    with pytest.raises(InvalidInputError, match=r"holiday\.jpg: box .* at least 32 pixels"):
        open_image(path, box=Box(0, 0, 20, 400), name="holiday.jpg")


def test_regions_decode_from_paths_bytes_and_pil_images_alike(big_jpeg: Path) -> None:
    spec = InputSpec(size=32, crop_fraction=1.0)
    box = Box(600, 300, 1800, 1500)
    queries = [
        Region(big_jpeg, box),
        Region(big_jpeg.read_bytes(), box),
        Region(open_image(big_jpeg), box),
    ]
    decoded = decode_queries(queries, spec, grey_side=256)
    assert decoded.names == (str(big_jpeg), "<image bytes>", "<PIL image>")
    assert decoded.boxes == (box, box, box)
    first = decoded.pixels[0].astype(np.float32)
    for pixels in decoded.pixels[1:]:
        assert np.abs(first - pixels).mean() < 3.0
    assert decoded.grey is not None
    assert {g.shape for g in decoded.grey} == {(256, 256)}  # the square region, not 4:3
    whole = decode_queries([big_jpeg], spec, grey_side=256)
    assert whole.boxes == () and whole.box(0) is None
    assert whole.grey is not None and whole.grey[0].shape == (192, 256)
    assert np.abs(first - whole.pixels[0]).mean() > 10.0


def test_a_bad_region_names_the_query_it_came_with(big_jpeg: Path, tmp_path: Path) -> None:
    spec = InputSpec(size=32, crop_fraction=1.0)
    with pytest.raises(InvalidInputError, match=r"upload\.jpg: box .* 2400x1800"):
        decode_queries(
            [Region(big_jpeg.read_bytes(), Box(0, 0, 2401, 100))], spec, names=["upload.jpg"]
        )
    with pytest.raises(ImageError, match=r"gone\.jpg: file not found"):
        decode_queries([Region(tmp_path / "gone.jpg", Box(0, 0, 100, 100))], spec)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_gives_the_region_a_viewer_sees(
    orientation: int, tmp_path: Path
) -> None:
    """The region is cut from the stored pixels and turned upright alone: it must equal the
    same box cut from the whole picture turned upright (PIL's exif_transpose), pixel for pixel."""
    stored = Image.fromarray(skimage.data.astronaut()).resize((300, 200))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"orientation{orientation}.png"
    stored.save(path, exif=exif.tobytes())
    upright = open_image(path)
    width, height = upright.size
    assert (width, height) == ((200, 300) if orientation >= 5 else (300, 200))
    for box in (
        Box(0, 0, 40, 90),
        Box(width - 33, height - 70, width, height),
        Box(10.4, 20.6, 150.2, 120.7),
        Box(0, 0, width, height),
    ):
        region = open_image(path, box=box)
        expected = upright.crop(box.pixels())
        assert region.size == expected.size, (orientation, box)
        assert np.array_equal(np.asarray(region), np.asarray(expected)), (orientation, box)
