"""Decoding image files of every common mode and format, and refusing broken or hostile ones."""

from __future__ import annotations

import contextlib
import gc
import io
import struct
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from lookalike.embedders.base import InputSpec
from lookalike.errors import ImageError
from lookalike.imaging import load_prepared, open_image, prepare

SPEC = InputSpec()
U8 = npt.NDArray[np.uint8]


@pytest.fixture(scope="module")
def chelsea() -> U8:
    """A 451x300 (w x h) colour photo of a cat."""
    from skimage import data

    return np.asarray(data.chelsea(), dtype=np.uint8)  # type: ignore[no-untyped-call]


@pytest.fixture(scope="module")
def astronaut() -> U8:
    """A 512x512 colour photo."""
    from skimage import data

    return np.asarray(data.astronaut(), dtype=np.uint8)  # type: ignore[no-untyped-call]


@pytest.fixture(scope="module")
def camera() -> U8:
    """A 512x512 greyscale photo."""
    from skimage import data

    return np.asarray(data.camera(), dtype=np.uint8)  # type: ignore[no-untyped-call]


def _rgb(source: Path | bytes, **kwargs: int) -> U8:
    """open_image, checked to be RGB, as an array (the handle is closed before returning)."""
    image = open_image(source, **kwargs)
    try:
        assert image.mode == "RGB"
        return np.asarray(image).copy()
    finally:
        image.close()


def _prepared(source: Path | bytes) -> U8:
    out = load_prepared(source, SPEC)
    assert out.shape == (224, 224, 3)
    assert out.dtype == np.uint8
    return out


def _mad(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Mean absolute difference in grey levels."""
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())


@contextlib.contextmanager
def _handle_leak_tolerated() -> Iterator[None]:
    """Silence the ResourceWarning of a file open_image leaves open (a known library bug that
    test_file_is_closed records), so that the test around it is about its own subject."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        yield
        gc.collect()


def _image_error(source: Path | bytes, **kwargs: int) -> ImageError:
    with pytest.raises(ImageError) as info:
        open_image(source, **kwargs)
    error = info.value
    if isinstance(source, Path):
        assert error.path == str(source)
        assert str(source) in str(error)
    assert error.reason in str(error)
    return error


# -- modes ------------------------------------------------------------------------------------


def test_rgb_jpeg_is_returned_as_is(tmp_path: Path, chelsea: U8) -> None:
    path = tmp_path / "cat.jpg"
    Image.fromarray(chelsea).save(path, quality=95)
    pixels = _rgb(path)
    assert pixels.shape == chelsea.shape
    assert _mad(pixels, chelsea) < 3
    _prepared(path)


def test_greyscale_jpeg_becomes_grey_rgb(tmp_path: Path, chelsea: U8) -> None:
    grey = Image.fromarray(chelsea).convert("L")
    path = tmp_path / "grey.jpg"
    grey.save(path, quality=95)
    with Image.open(path) as check:
        assert check.mode == "L"
    pixels = _rgb(path)
    assert pixels.shape == (300, 451, 3)
    assert np.array_equal(pixels[..., 0], pixels[..., 1])
    assert np.array_equal(pixels[..., 1], pixels[..., 2])
    assert _mad(pixels[..., 0], np.asarray(grey)) < 3
    prepared = _prepared(path)
    assert np.array_equal(prepared[..., 0], prepared[..., 2])


def test_palette_png_without_transparency(tmp_path: Path, chelsea: U8) -> None:
    palette = Image.fromarray(chelsea).quantize(64)
    assert palette.mode == "P"
    path = tmp_path / "palette.png"
    palette.save(path)
    assert np.array_equal(_rgb(path), np.asarray(palette.convert("RGB")))
    _prepared(path)


def test_palette_png_transparent_index_becomes_white(tmp_path: Path) -> None:
    indices = np.zeros((40, 60), dtype=np.uint8)  # index 0: transparent black
    indices[:, 30:] = 1  # index 1: opaque dark blue
    image = Image.fromarray(indices, mode="P")
    image.putpalette([0, 0, 0, 10, 20, 200] + [0] * (254 * 3))
    path = tmp_path / "transparent-palette.png"
    image.save(path, transparency=0)
    with Image.open(path) as check:
        assert check.mode == "P"
        assert "transparency" in check.info
    pixels = _rgb(path)
    assert (pixels[:, :30] == 255).all()
    assert (pixels[:, 30:] == (10, 20, 200)).all()
    prepared = _prepared(path)
    assert (prepared[:, :100] == 255).all()
    assert (prepared[:, 124:] == (10, 20, 200)).all()


def test_rgba_png_transparent_region_is_white(tmp_path: Path, astronaut: U8) -> None:
    alpha = np.full(astronaut.shape[:2], 255, dtype=np.uint8)
    alpha[:, :200] = 0
    rgba = np.dstack([astronaut, alpha])
    rgba[:, 200:300, :3] = 0
    rgba[:, 200:300, 3] = 128  # half-transparent black over white: mid grey
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    pixels = _rgb(path)
    assert pixels.shape == (512, 512, 3)
    assert (pixels[:, :200] == 255).all()
    assert np.abs(pixels[:, 200:300].astype(int) - 127).max() <= 1
    assert np.array_equal(pixels[:, 300:], astronaut[:, 300:])
    _prepared(path)


def test_la_png_transparent_region_is_white(tmp_path: Path, camera: U8) -> None:
    alpha = np.full(camera.shape, 255, dtype=np.uint8)
    alpha[:256] = 0
    path = tmp_path / "la.png"
    Image.fromarray(np.dstack([camera, alpha]), mode="LA").save(path)
    with Image.open(path) as check:
        assert check.mode == "LA"
    pixels = _rgb(path)
    assert (pixels[:256] == 255).all()
    for channel in range(3):
        assert np.array_equal(pixels[256:, :, channel], camera[256:])
    _prepared(path)


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path, chelsea: U8) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(chelsea).convert("CMYK").save(path, quality=95)
    with Image.open(path) as check:
        assert check.mode == "CMYK"
    pixels = _rgb(path)
    assert pixels.shape == chelsea.shape
    assert _mad(pixels, chelsea) < 6
    _prepared(path)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_greyscale_scaled_to_8_bit(tmp_path: Path, suffix: str) -> None:
    values = np.linspace(0, 65535, 256 * 300).reshape(256, 300).astype(np.uint16)
    path = tmp_path / f"deep{suffix}"
    Image.fromarray(values).save(path)
    with Image.open(path) as check:
        assert check.mode.startswith("I")
    pixels = _rgb(path)
    expected = values.astype(np.float64) / 257.0
    for channel in range(3):
        assert np.abs(pixels[..., channel] - expected).max() <= 1.0
    assert pixels.min() == 0
    assert pixels.max() == 255
    _prepared(path)


def test_dark_16_bit_greyscale_is_not_stretched(tmp_path: Path) -> None:
    """Values all under 256 in a 16-bit file are near-black, not full-range 8-bit values."""
    values = np.tile(np.arange(0, 250, dtype=np.uint16), (20, 1))
    path = tmp_path / "dark.png"
    Image.fromarray(values).save(path)
    pixels = _rgb(path)
    assert pixels.max() <= 1


def test_bilevel_image_is_black_and_white(tmp_path: Path, chelsea: U8) -> None:
    bilevel = Image.fromarray(chelsea).convert("1")
    path = tmp_path / "bilevel.png"
    bilevel.save(path)
    with Image.open(path) as check:
        assert check.mode == "1"
    pixels = _rgb(path)
    expected = np.asarray(bilevel, dtype=np.uint8) * 255
    assert set(np.unique(pixels).tolist()) == {0, 255}
    assert np.array_equal(pixels[..., 1], expected)
    _prepared(path)


def _animated_gif(path: Path) -> None:
    frames = [Image.new("RGB", (64, 48), colour) for colour in [(255, 0, 0), (0, 0, 255)]]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(path) as check:
        assert getattr(check, "n_frames", 1) == 2


def test_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    _animated_gif(path)
    with _handle_leak_tolerated():
        pixels = _rgb(path)
        prepared = _prepared(path)
    assert (pixels == (255, 0, 0)).all()
    assert (prepared == (255, 0, 0)).all()


@pytest.mark.parametrize(
    ("suffix", "options", "tolerance"),
    [
        (".webp", {"lossless": True}, 0.0),
        (".webp", {"quality": 90}, 6.0),
        (".tif", {}, 0.0),
        (".bmp", {}, 0.0),
        (".png", {}, 0.0),
        (".ppm", {}, 0.0),
    ],
)
def test_other_formats(
    tmp_path: Path, chelsea: U8, suffix: str, options: dict[str, Any], tolerance: float
) -> None:
    path = tmp_path / f"cat{suffix}"
    Image.fromarray(chelsea).save(path, **options)
    pixels = _rgb(path)
    assert pixels.shape == chelsea.shape
    assert _mad(pixels, chelsea) <= tolerance
    _prepared(path)


def test_bytes_input_decodes_like_the_file(tmp_path: Path, chelsea: U8) -> None:
    path = tmp_path / "cat.jpg"
    Image.fromarray(chelsea).save(path, quality=90)
    data = path.read_bytes()
    assert np.array_equal(_rgb(data), _rgb(path))
    assert np.array_equal(_prepared(data), _prepared(path))


def test_bytes_input_errors_name_an_upload() -> None:
    error = _image_error(b"this is not an image")
    assert "not an image" in error.reason
    assert error.path == "<uploaded image>"
    assert str(error).startswith("<uploaded image>: ")
    assert "empty" in _image_error(b"").reason


# -- orientation, crops and sizes -------------------------------------------------------------


def test_exif_orientation_is_applied(tmp_path: Path, chelsea: U8) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to display
    path = tmp_path / "sideways.jpg"
    Image.fromarray(chelsea).save(path, quality=95, exif=exif)
    image = open_image(path)
    assert image.size == (300, 451)  # (w, h) transposed from 451x300
    pixels = np.asarray(image)
    clockwise = np.rot90(chelsea, k=-1)
    assert _mad(pixels, clockwise) < 5
    assert _mad(pixels, np.rot90(chelsea, k=1)) > 20
    assert _mad(_prepared(path), prepare(Image.fromarray(clockwise), SPEC)) < 5


def test_prepare_keeps_the_centre_square() -> None:
    pixels = np.zeros((256, 512, 3), dtype=np.uint8)
    pixels[:, :128] = (255, 0, 0)
    pixels[:, 128:384] = (0, 255, 0)
    pixels[:, 384:] = (0, 0, 255)
    out = prepare(Image.fromarray(pixels), SPEC)
    assert out.shape == (224, 224, 3)
    assert (out == (0, 255, 0)).all()


@pytest.fixture(scope="module")
def large_jpeg(tmp_path_factory: pytest.TempPathFactory, chelsea: U8) -> Path:
    path = tmp_path_factory.mktemp("large") / "large.jpg"
    Image.fromarray(chelsea).resize((3000, 2000), Image.Resampling.BICUBIC).save(path, quality=92)
    return path


def test_large_jpeg_draft_matches_full_decode(large_jpeg: Path) -> None:
    fast = _prepared(large_jpeg)
    full_image = open_image(large_jpeg)
    assert full_image.size == (3000, 2000)
    full = prepare(full_image, SPEC)
    assert _mad(fast, full) < 6


def test_large_jpeg_min_side_decodes_reduced(large_jpeg: Path) -> None:
    reduced = open_image(large_jpeg, min_side=256)
    width, height = reduced.size
    assert 256 <= min(width, height) < 512
    assert abs(width / height - 1.5) < 0.01
    # A min_side larger than the image decodes it at full size.
    assert open_image(large_jpeg, min_side=5000).size == (3000, 2000)


def test_absurdly_wide_image_prepares_its_centre(tmp_path: Path) -> None:
    pixels = np.zeros((12, 20000, 3), dtype=np.uint8)
    pixels[:, 9950:10050] = (0, 200, 0)  # the centre crop is 10.5 pixels wide
    path = tmp_path / "wide.png"
    Image.fromarray(pixels).save(path)
    assert (_prepared(path) == (0, 200, 0)).all()


# -- refusals ---------------------------------------------------------------------------------


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    assert "empty" in _image_error(path).reason


def test_text_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("shopping list: milk, eggs\n" * 20, encoding="utf-8")
    assert "not an image" in _image_error(path).reason
    with pytest.raises(ImageError):
        load_prepared(path, SPEC)


def test_truncated_jpeg(tmp_path: Path, chelsea: U8) -> None:
    whole = tmp_path / "whole.jpg"
    Image.fromarray(chelsea).save(whole, quality=90)
    data = whole.read_bytes()
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: int(len(data) * 0.4)])
    with _handle_leak_tolerated():
        assert "truncated" in _image_error(path).reason
        with pytest.raises(ImageError, match="truncated"):
            load_prepared(path, SPEC)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header declaring width x height RGB pixels, with (almost) no pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + _png_chunk(b"IEND", b"")
    )


def test_png_decompression_bomb_is_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_bomb(100_000, 100_000))
    assert path.stat().st_size < 200
    started = time.perf_counter()
    reason = _image_error(path).reason
    assert time.perf_counter() - started < 2.0
    assert "decompression bomb" in reason
    assert "10000000000" in reason.replace(",", "")


def test_png_over_our_limit_is_refused_quickly(tmp_path: Path) -> None:
    """Under PIL's own bomb threshold but over DEFAULT_MAX_PIXELS: our check refuses it."""
    path = tmp_path / "big.png"
    path.write_bytes(_png_bomb(13_000, 12_000))
    started = time.perf_counter()
    with _handle_leak_tolerated():
        reason = _image_error(path).reason
    assert time.perf_counter() - started < 5.0
    assert "over the limit" in reason
    assert "13000x12000" in reason


def test_lowered_max_pixels_refuses_a_normal_photo(tmp_path: Path, chelsea: U8) -> None:
    path = tmp_path / "cat.jpg"
    Image.fromarray(chelsea).save(path)
    with _handle_leak_tolerated():
        reason = _image_error(path, max_pixels=100_000).reason
        with pytest.raises(ImageError, match="over the limit"):
            load_prepared(path, SPEC, max_pixels=100_000)
    assert "over the limit" in reason
    assert "451x300" in reason
    assert _rgb(path, max_pixels=451 * 300).shape == chelsea.shape


def _write_animated(path: Path) -> None:
    _animated_gif(path)


def _write_truncated(path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="JPEG")
    data = buffer.getvalue()
    path.write_bytes(data[: int(len(data) * 0.4)])


def _write_plain(path: Path) -> None:
    Image.new("RGB", (300, 200), (90, 120, 30)).save(path, format="PNG")


@pytest.mark.parametrize(
    ("name", "write", "max_pixels"),
    [
        ("plain.png", _write_plain, 1000),
        ("truncated.jpg", _write_truncated, 10**8),
        ("animated.gif", _write_animated, 10**8),
    ],
    ids=["over-max-pixels", "truncated", "animated-gif"],
)
def test_file_is_closed(
    tmp_path: Path, name: str, write: Callable[[Path], None], max_pixels: int
) -> None:
    path = tmp_path / name
    write(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with contextlib.suppress(ImageError):
            open_image(path, max_pixels=max_pixels).close()
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_decoded_single_frame_file_is_closed(tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    _write_plain(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        open_image(path)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_raised_max_pixels_is_honoured(
    tmp_path: Path, chelsea: U8, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PIL's threshold is lowered so that a small photo stands in for a 200-megapixel one.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)  # PIL refuses over 100,000 pixels
    path = tmp_path / "cat.png"
    Image.fromarray(chelsea).save(path)  # 135,300 pixels
    assert _rgb(path, max_pixels=200_000).shape == chelsea.shape


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.jpg"
    assert "not found" in _image_error(path).reason


def test_directory(tmp_path: Path) -> None:
    path = tmp_path / "folder.jpg"
    path.mkdir()
    assert "directory" in _image_error(path).reason


def test_string_path_is_accepted(tmp_path: Path, chelsea: U8) -> None:
    path = tmp_path / "cat.png"
    Image.fromarray(chelsea).save(path)
    assert np.array_equal(np.asarray(open_image(str(path))), chelsea)
    with pytest.raises(ImageError) as info:
        open_image(str(tmp_path / "missing.png"))
    assert info.value.path == str(tmp_path / "missing.png")


def test_in_memory_png_bytes_are_lossless(chelsea: U8) -> None:
    buffer = io.BytesIO()
    Image.fromarray(chelsea).save(buffer, format="PNG")
    assert np.array_equal(_rgb(buffer.getvalue()), chelsea)
