"""The copy-detection benchmark builder: each edit, and the files make_copy_set writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.evaluation.copies import EDIT_NAMES, EDITS, make_copy_set, skimage_originals

EXPECTED_EDITS = (
    "crop60",
    "hflip",
    "jpeg15",
    "rotate15",
    "colour",
    "downscale4",
    "border_text",
    "grey",
    "combo",
)


@pytest.fixture(scope="module")
def photos() -> list[tuple[str, Image.Image]]:
    from skimage import data

    chelsea = np.asarray(data.chelsea())  # type: ignore[no-untyped-call]
    coffee = np.asarray(data.coffee())  # type: ignore[no-untyped-call]
    return [
        ("chelsea", Image.fromarray(chelsea)),
        ("coffee", Image.fromarray(coffee).resize((300, 200))),
    ]


def _edit(name: str, image: Image.Image, seed: int = 0) -> Image.Image:
    edit = EDITS[EDIT_NAMES.index(name)]
    return edit.apply(image, np.random.default_rng(seed))


def test_registry_has_the_documented_edits() -> None:
    assert EDIT_NAMES == EXPECTED_EDITS
    assert all(edit.description for edit in EDITS)


@pytest.mark.parametrize("name", EXPECTED_EDITS)
def test_every_edit_returns_rgb_of_plausible_size_and_is_deterministic(
    name: str, photos: list[tuple[str, Image.Image]]
) -> None:
    for _, image in photos:
        out = _edit(name, image)
        assert out.mode == "RGB"
        assert 0.05 * image.width <= out.width <= 1.25 * image.width
        assert 0.05 * image.height <= out.height <= 1.25 * image.height
        assert np.array_equal(np.asarray(out), np.asarray(_edit(name, image)))


def test_crop60_keeps_sixty_percent_of_the_area(photos: list[tuple[str, Image.Image]]) -> None:
    for _, image in photos:
        for seed in range(5):
            out = _edit("crop60", image, seed)
            ratio = (out.width * out.height) / (image.width * image.height)
            assert ratio == pytest.approx(0.60, abs=0.02)


def test_crop60_offset_depends_on_the_rng(photos: list[tuple[str, Image.Image]]) -> None:
    image = photos[0][1]
    crops = {_edit("crop60", image, seed).tobytes() for seed in range(5)}
    assert len(crops) > 1


def test_downscale4_quarters_each_side(photos: list[tuple[str, Image.Image]]) -> None:
    for _, image in photos:
        out = _edit("downscale4", image)
        assert abs(out.width - image.width / 4) <= 1
        assert abs(out.height - image.height / 4) <= 1


def test_hflip_is_a_mirror(photos: list[tuple[str, Image.Image]]) -> None:
    for _, image in photos:
        out = _edit("hflip", image)
        assert np.array_equal(np.asarray(out), np.fliplr(np.asarray(image)))


def test_grey_has_equal_channels(photos: list[tuple[str, Image.Image]]) -> None:
    for _, image in photos:
        pixels = np.asarray(_edit("grey", image))
        assert np.array_equal(pixels[..., 0], pixels[..., 1])
        assert np.array_equal(pixels[..., 1], pixels[..., 2])


def test_jpeg15_degrades_but_keeps_the_size(photos: list[tuple[str, Image.Image]]) -> None:
    for _, image in photos:
        out = _edit("jpeg15", image)
        assert out.size == image.size
        diff = np.abs(np.asarray(out, dtype=np.int16) - np.asarray(image, dtype=np.int16))
        assert diff.mean() > 1.0


def test_border_text_adds_a_border(photos: list[tuple[str, Image.Image]]) -> None:
    image = photos[0][1]
    out = _edit("border_text", image)
    assert out.width == pytest.approx(image.width * 1.16, abs=2)
    assert out.height == pytest.approx(image.height * 1.16, abs=2)
    corner = np.asarray(out)[:3, :3].reshape(-1, 3)
    assert (corner == corner[0]).all()  # solid border


def test_colour_changes_the_pixels(photos: list[tuple[str, Image.Image]]) -> None:
    image = photos[0][1]
    out = _edit("colour", image)
    assert out.size == image.size
    assert not np.array_equal(np.asarray(out), np.asarray(image))


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.jpg"))}


def test_make_copy_set_writes_every_pair(
    photos: list[tuple[str, Image.Image]], tmp_path: Path
) -> None:
    copy_set = make_copy_set(photos, tmp_path / "set", seed=0)
    root = tmp_path / "set"
    assert copy_set.root == root
    assert copy_set.originals == tuple(root / "originals" / f"{n}.jpg" for n, _ in photos)
    copies = sorted(p.name for p in (root / "copies").iterdir())
    expected = sorted(f"{n}__{e}.jpg" for n, _ in photos for e in EXPECTED_EDITS)
    assert copies == expected
    assert len(copy_set.copies) == len(photos) * len(EXPECTED_EDITS)
    for pair in copy_set.copies:
        name = pair.original.stem
        assert pair.copy.name == f"{name}__{pair.edit}.jpg"
        assert pair.copy.is_file()
        assert pair.original in copy_set.originals
        with Image.open(pair.copy) as copy:
            assert copy.format == "JPEG"
            assert copy.mode == "RGB"


def test_make_copy_set_is_reproducible(
    photos: list[tuple[str, Image.Image]], tmp_path: Path
) -> None:
    first = _tree(make_copy_set(photos, tmp_path / "a", seed=3).root)
    second = _tree(make_copy_set(photos, tmp_path / "b", seed=3).root)
    other = _tree(make_copy_set(photos, tmp_path / "c", seed=4).root)
    assert first == second
    assert first.keys() == other.keys()
    assert first != other
    assert first["copies/chelsea__crop60.jpg"] != other["copies/chelsea__crop60.jpg"]
    assert first["copies/chelsea__hflip.jpg"] == other["copies/chelsea__hflip.jpg"]


def test_copies_do_not_depend_on_the_edit_subset(
    photos: list[tuple[str, Image.Image]], tmp_path: Path
) -> None:
    full = _tree(make_copy_set(photos, tmp_path / "full", seed=1).root)
    subset = _tree(make_copy_set(photos, tmp_path / "sub", seed=1, edits=["combo"]).root)
    assert sorted(subset) == sorted(
        [f"originals/{n}.jpg" for n, _ in photos] + [f"copies/{n}__combo.jpg" for n, _ in photos]
    )
    assert all(full[key] == value for key, value in subset.items())


def test_unknown_edit_is_named(photos: list[tuple[str, Image.Image]], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="blur9") as raised:
        make_copy_set(photos, tmp_path, edits=["hflip", "blur9"])
    assert "crop60" in str(raised.value)  # the valid edits are listed
    assert not (tmp_path / "copies").exists()


@pytest.mark.parametrize("bad", ["a/b", "a__b", "", ".."])
def test_bad_original_names_are_refused(
    bad: str, photos: list[tuple[str, Image.Image]], tmp_path: Path
) -> None:
    with pytest.raises(ValueError):
        make_copy_set([(bad, photos[0][1])], tmp_path)


def test_skimage_originals_are_rgb_photos() -> None:
    originals = skimage_originals()
    names = [name for name, _ in originals]
    assert {"astronaut", "chelsea", "coffee", "motorcycle_left"} <= set(names)
    assert len(names) == len(set(names))
    for _, image in originals:
        assert image.mode == "RGB"
        assert min(image.size) >= 256
