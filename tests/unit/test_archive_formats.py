"""HEIC/HEIF, AVIF and camera RAW through the one decoder: real files made from real photos,
turned upright once (never twice), cut to regions, refused with a reason when damaged or when
their optional library is missing (simulated: the import is made to fail)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from lookalike import image_formats
from lookalike.errors import ImageError, InvalidInputError
from lookalike.image_facts import read_facts
from lookalike.image_formats import Container, container_of
from lookalike.imaging import open_image, shown_size
from lookalike.raw_images import open_raw
from lookalike.region import Box
from lookalike.sources import scan_folder
from tests.archive_files import U8, avif_bytes, correlation, heic_bytes, write_dng

INSTALL = "pip install 'lookalike[archive]'"


@pytest.fixture(scope="module")
def chelsea() -> U8:
    """A 451x300 (w x h) colour photo of a cat: not square, so a quarter turn shows."""
    from skimage import data

    return np.asarray(data.chelsea(), dtype=np.uint8)  # type: ignore[no-untyped-call]


def _upright_check(decoded: Image.Image, upright: U8, *, min_corr: float = 0.95) -> None:
    """``decoded`` shows ``upright`` the right way up: same aspect, and its pixels match the
    photo far better than the photo turned half a turn (what a double turn would give)."""
    pixels = np.asarray(decoded)
    assert (pixels.shape[1] > pixels.shape[0]) == (upright.shape[1] > upright.shape[0])
    assert correlation(pixels, upright) > min_corr
    assert correlation(pixels, upright[::-1, ::-1].copy()) < 0.6


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_heic_comes_out_upright(tmp_path: Path, chelsea: U8, orientation: int) -> None:
    path = tmp_path / "cat.heic"
    path.write_bytes(heic_bytes(chelsea, orientation=orientation))
    assert container_of(path.read_bytes()[:64]) is Container.HEIF
    image = open_image(path)
    assert image.mode == "RGB" and image.size == (451, 300)
    _upright_check(image, chelsea)
    assert shown_size(path) == (451, 300)
    # The same from the file's bytes (an upload has no name to go by).
    _upright_check(open_image(path.read_bytes()), chelsea)


def test_heic_thumbnail_is_decoded_when_big_enough(tmp_path: Path, chelsea: U8) -> None:
    path = tmp_path / "cat.heic"
    path.write_bytes(heic_bytes(chelsea, orientation=6, thumbnails=(160,)))
    small = open_image(path, min_side=64)
    assert small.size == (160, 106)  # the phone's thumbnail, upright like the picture
    _upright_check(small, chelsea)
    assert open_image(path, min_side=120).size == (451, 300)  # the thumbnail is too small
    region = open_image(path, min_side=32, box=Box(200, 40, 420, 260))
    assert correlation(np.asarray(region), chelsea[40:260, 200:420]) > 0.9


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_avif_comes_out_upright(tmp_path: Path, chelsea: U8, orientation: int) -> None:
    path = tmp_path / "cat.avif"
    path.write_bytes(avif_bytes(chelsea, orientation=orientation))
    with Image.open(path) as stored:  # stored turned, tagged with its orientation
        assert stored.getexif()[0x0112] == orientation
    image = open_image(path)
    assert image.size == (451, 300)
    _upright_check(image, chelsea)
    assert shown_size(path) == (451, 300)


def test_heic_and_avif_regions_are_cut_from_the_upright_picture(
    tmp_path: Path, chelsea: U8
) -> None:
    box = Box(200, 40, 420, 260)  # the cat's head, in the upright picture
    expected = chelsea[40:260, 200:420]
    for name, data in (
        ("cat.heic", heic_bytes(chelsea, orientation=6)),
        ("cat.avif", avif_bytes(chelsea, orientation=8)),
    ):
        path = tmp_path / name
        path.write_bytes(data)
        region = open_image(path, box=box)
        assert region.size == (220, 220)
        assert correlation(np.asarray(region), expected) > 0.95, name
        with pytest.raises(InvalidInputError, match="451x300"):
            open_image(path, box=Box(0, 0, 300, 451))


@pytest.mark.parametrize("orientation", [1, 6])
def test_dng_without_preview_is_demosaiced_upright(
    tmp_path: Path, chelsea: U8, orientation: int
) -> None:
    path = write_dng(tmp_path / "cat.dng", chelsea, orientation=orientation)
    picture = open_raw(path, min_side=100, max_pixels=10**8, name=str(path))
    assert picture.source == "demosaic"
    assert picture.full == (450, 300)  # even sides: the mosaic is whole 2x2 cells
    assert picture.image.size == (225, 150)  # half size
    _upright_check(picture.image, chelsea)
    image = open_image(path)
    assert image.mode == "RGB" and image.size == (225, 150)
    assert shown_size(path) == (450, 300)


def test_dng_preview_is_used_when_big_enough(tmp_path: Path, chelsea: U8) -> None:
    path = write_dng(tmp_path / "cat.dng", chelsea, orientation=6, preview_side=200)
    small = open_raw(path, min_side=64, max_pixels=10**8, name="cat.dng")
    # The 200x133 JPEG preview, decoded at half scale: its shorter side still covers 64.
    assert small.source == "preview" and small.image.size == (100, 67)
    _upright_check(small.image, chelsea)
    assert open_image(path, min_side=100).size == (200, 133)
    # The preview's shorter side (133) is under what the consumer needs: demosaic.
    big = open_raw(path, min_side=140, max_pixels=10**8, name="cat.dng")
    assert big.source == "demosaic" and big.image.size == (225, 150)
    _upright_check(big.image, chelsea)
    assert open_image(path).size == (225, 150)  # no min_side: all the detail there is


PREVIEWS: list[dict[str, bool | int]] = [
    {"preview_jpeg": False},  # uncompressed RGB, turned by the RAW's orientation
    {"preview_exif": 3},  # the camera's own EXIF orientation wins over the RAW's
    {"preview_upright": True},  # stored as shown: not turned again
]


@pytest.mark.parametrize("preview", PREVIEWS)
def test_dng_previews_come_out_upright(
    tmp_path: Path, chelsea: U8, preview: dict[str, bool | int]
) -> None:
    path = write_dng(
        tmp_path / "cat.dng",
        chelsea,
        orientation=6,
        preview_side=200,
        preview_jpeg=bool(preview.get("preview_jpeg", True)),
        preview_exif=int(preview["preview_exif"]) if "preview_exif" in preview else None,
        preview_upright=bool(preview.get("preview_upright", False)),
    )
    picture = open_raw(path, min_side=64, max_pixels=10**8, name="cat.dng")
    assert picture.source == "preview"
    _upright_check(picture.image, chelsea)


def test_dng_regions_refer_to_the_full_size(tmp_path: Path, chelsea: U8) -> None:
    path = write_dng(tmp_path / "cat.dng", chelsea, orientation=8)
    region = open_image(path, box=Box(200, 40, 420, 260))
    assert region.size == (110, 110)  # half size, like the whole picture
    assert correlation(np.asarray(region), chelsea[40:260, 200:420]) > 0.9
    with pytest.raises(InvalidInputError, match="450x300"):
        open_image(path, box=Box(0, 0, 460, 300))


def test_raw_is_told_from_its_content(tmp_path: Path, chelsea: U8) -> None:
    data = write_dng(tmp_path / "cat.dng", chelsea, preview_side=128).read_bytes()
    assert container_of(data[:4096]) is Container.RAW  # DNGVersion in the first directory
    _upright_check(open_image(data, min_side=64), chelsea)
    # A plain TIFF is PIL's; a TIFF named like a RAW is LibRaw's.
    tiff = tmp_path / "plain.tif"
    Image.fromarray(chelsea).save(tiff)
    head = tiff.read_bytes()[:4096]
    assert container_of(head, ".tif") is Container.PIL
    assert container_of(head, ".NEF") is Container.RAW
    # A camera's TIFF-based RAW without DNG tags (NEF, PEF, ...): a reduced-resolution first
    # image with the camera's make, the sensor data in a sub-directory.
    nef = tmp_path / "unnamed"
    make = [(271, "s", 0, "Nikon", True)]
    with tifffile.TiffWriter(nef) as tif:
        tif.write(chelsea[:60, :90], subfiletype=1, subifds=1, extratags=make)
        tif.write(np.zeros((300, 450), np.uint16), subfiletype=0)
    assert container_of(nef.read_bytes()[:4096]) is Container.RAW
    scanner = tmp_path / "scan.tif"
    tifffile.imwrite(scanner, chelsea, extratags=make)
    assert container_of(scanner.read_bytes()[:4096]) is Container.PIL


def test_pixel_limit_holds_for_raw(tmp_path: Path, chelsea: U8) -> None:
    path = write_dng(tmp_path / "cat.dng", chelsea)
    with pytest.raises(ImageError, match="over the limit of 100,000"):
        open_image(path, max_pixels=100_000)


def test_damaged_archive_files_are_refused_with_their_name(tmp_path: Path, chelsea: U8) -> None:
    heic = heic_bytes(chelsea)
    dng = write_dng(tmp_path / "whole.dng", chelsea).read_bytes()
    cases = {
        "cut.heic": (heic[: len(heic) // 2], "damaged or truncated HEIC/HEIF"),
        "cut.dng": (dng[: len(dng) // 2], "cannot read this camera RAW file"),
        "noise.cr2": (bytes(range(256)) * 8, "cannot read this camera RAW file"),
        "empty.nef": (b"", "cannot read this camera RAW file"),
    }
    for name, (data, reason) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ImageError, match=reason) as caught:
            open_image(path)
        assert caught.value.path == str(path)
        facts = read_facts(path)
        assert facts.size == len(data) and facts.width is None and facts.format is None


def test_missing_pillow_heif_skips_heic_with_the_install_hint(
    tmp_path: Path, chelsea: U8, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cat.heic"
    path.write_bytes(heic_bytes(chelsea))
    # Simulated: the import fails as it does where pillow-heif is not installed.
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    monkeypatch.setattr(image_formats, "_heif_registered", False)
    with pytest.raises(ImageError, match="HEIC/HEIF needs pillow-heif") as caught:
        open_image(path)
    assert caught.value.path == str(path) and INSTALL in caught.value.reason
    assert read_facts(path).width is None  # facts: unknown, never a crash


def test_missing_rawpy_skips_raw_with_the_install_hint(
    tmp_path: Path, chelsea: U8, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_dng(tmp_path / "cat.dng", chelsea)
    monkeypatch.setitem(sys.modules, "rawpy", None)  # simulated: not installed
    with pytest.raises(ImageError, match="camera RAW needs rawpy") as caught:
        open_image(path)
    assert INSTALL in caught.value.reason
    assert read_facts(path).format is None


def test_facts_of_archive_files(tmp_path: Path, chelsea: U8) -> None:
    heic = tmp_path / "cat.heic"
    heic.write_bytes(heic_bytes(chelsea, orientation=6, taken="2021:05:01 10:00:00"))
    avif = tmp_path / "cat.avif"
    avif.write_bytes(avif_bytes(chelsea, orientation=6))
    dng = write_dng(tmp_path / "cat.dng", chelsea, orientation=6, taken="2019:12:24 18:30:05")
    facts = {p.suffix: read_facts(p) for p in (heic, avif, dng)}
    assert (facts[".heic"].width, facts[".heic"].height, facts[".heic"].format) == (
        451,
        300,
        "heif",
    )
    assert facts[".heic"].taken == "2021-05-01T10:00:00"
    assert (facts[".avif"].width, facts[".avif"].height, facts[".avif"].format) == (
        451,
        300,
        "avif",
    )
    assert (facts[".dng"].width, facts[".dng"].height, facts[".dng"].format) == (450, 300, "dng")
    assert facts[".dng"].taken == "2019-12-24T18:30:05"


def test_folder_scans_find_archive_files(tmp_path: Path) -> None:
    names = ["a.HEIC", "b.heif", "c.avif", "d.dng", "e.CR2", "f.cr3", "g.nef", "h.arw", "i.raf"]
    names += ["j.orf", "k.rw2", "l.pef", "m.srw", "n.jpg", "notes.txt"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    found = sorted(Path(f.path).name for f in scan_folder(tmp_path))
    assert found == sorted(n for n in names if n != "notes.txt")


def test_a_process_that_demosaiced_raw_can_still_fork_decode_workers(
    tmp_path: Path, chelsea: U8
) -> None:
    """rawpy's own OpenMP runtime hangs a forked child once the parent ran a parallel
    region: a process that decoded a RAW itself (a server, `watch`'s small batches) and then
    forks decode workers for a rescan must not hang. Run in a child process with a timeout, so
    a hang fails the test instead of stopping the run."""
    import subprocess
    import textwrap

    dng = write_dng(tmp_path / "shot.dng", chelsea)
    script = textwrap.dedent(
        f"""
        import multiprocessing
        from lookalike.imaging import open_image

        def size(_):
            return open_image({str(dng)!r}, min_side=4000).size

        if __name__ == "__main__":
            print(size(0), flush=True)  # the parent demosaics first
            with multiprocessing.get_context("fork").Pool(2) as pool:
                print(pool.map(size, range(4)), flush=True)
        """
    )
    src = Path(__file__).resolve().parents[2] / "src"
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("(") == 5
