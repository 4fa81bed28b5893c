"""Finding image files under a folder, and fingerprinting their content."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from lookalike.errors import InvalidInputError
from lookalike.sources import ImageFile, content_hash, scan_folder


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for relative in [
        "top.jpg",
        "Upper.PNG",
        "b_top.webp",
        "cats/tabby.jpeg",
        "cats/a.gif",
        "cats/kittens/tiny.bmp",
        "cats/kittens/deeper/deepest.tif",
        "dogs/rex.tiff",
        "dogs/scan.pgm",
        "dogs/scan.ppm",
        "dogs/old.jpe",
        "dogs/phone.heic",
        "dogs/shot.DNG",
        # not images by extension
        "readme.txt",
        "cats/list.csv",
        "dogs/layers.xcf",
        "dogs/noext",
        "dogs/archive.jpg.zip",
        # hidden
        ".hidden.jpg",
        "cats/.secret.png",
        ".thumbnails/t1.jpg",
        "dogs/.cache/c.jpg",
    ]:
        _touch(root / relative)
    (root / "empty-folder").mkdir()
    return root


def _relative(files: list[ImageFile], root: Path) -> list[str]:
    return [Path(f.path).relative_to(root.resolve()).as_posix() for f in files]


def test_finds_images_recursively_with_labels(tree: Path) -> None:
    files = list(scan_folder(tree))
    found = dict(zip(_relative(files, tree), [f.label for f in files], strict=True))
    assert found == {
        "top.jpg": None,
        "Upper.PNG": None,
        "b_top.webp": None,
        "cats/tabby.jpeg": "cats",
        "cats/a.gif": "cats",
        "cats/kittens/tiny.bmp": "cats",
        "cats/kittens/deeper/deepest.tif": "cats",
        "dogs/rex.tiff": "dogs",
        "dogs/scan.pgm": "dogs",
        "dogs/scan.ppm": "dogs",
        "dogs/old.jpe": "dogs",
        "dogs/phone.heic": "dogs",
        "dogs/shot.DNG": "dogs",
    }


def test_order_is_sorted_and_stable(tree: Path) -> None:
    order = _relative(list(scan_folder(tree)), tree)
    # Files of a folder sorted by name, before its subfolders, which come sorted by name.
    assert order == [
        "Upper.PNG",
        "b_top.webp",
        "top.jpg",
        "cats/a.gif",
        "cats/tabby.jpeg",
        "cats/kittens/tiny.bmp",
        "cats/kittens/deeper/deepest.tif",
        "dogs/old.jpe",
        "dogs/phone.heic",
        "dogs/rex.tiff",
        "dogs/scan.pgm",
        "dogs/scan.ppm",
        "dogs/shot.DNG",
    ]
    assert _relative(list(scan_folder(tree)), tree) == order


def test_paths_are_absolute_and_facts_match_the_file(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    photo = _touch(tree / "cats" / "big.jpg", data)
    os.utime(photo, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    monkeypatch.chdir(tmp_path)
    files = {f.path: f for f in scan_folder("photos")}  # a relative root
    record = files[str(photo.resolve())]
    assert Path(record.path).is_absolute()
    assert record.size == 3000
    assert record.mtime_ns == 1_600_000_000_123_456_789
    assert record.label == "cats"
    assert all(Path(path).is_absolute() for path in files)


def test_hidden_files_are_included_on_request(tree: Path) -> None:
    found = set(_relative(list(scan_folder(tree, include_hidden=True)), tree))
    hidden = {".hidden.jpg", "cats/.secret.png", ".thumbnails/t1.jpg", "dogs/.cache/c.jpg"}
    assert hidden <= found
    labels = {f.label for f in scan_folder(tree, include_hidden=True)}
    assert ".thumbnails" in labels


def test_extensions_can_be_restricted(tree: Path) -> None:
    found = _relative(list(scan_folder(tree, extensions=frozenset({".png"}))), tree)
    assert found == ["Upper.PNG"]


def test_label_is_the_first_subfolder_under_a_nested_root(tree: Path) -> None:
    files = list(scan_folder(tree / "cats"))
    labels = {Path(f.path).name: f.label for f in files}
    assert labels == {
        "a.gif": None,
        "tabby.jpeg": None,
        "tiny.bmp": "kittens",
        "deepest.tif": "kittens",
    }


def test_folders_named_like_images_are_skipped(tmp_path: Path) -> None:
    _touch(tmp_path / "album.jpg" / "inside.png")
    found = _relative(list(scan_folder(tmp_path)), tmp_path)
    assert found == ["album.jpg/inside.png"]


def test_dangling_link_is_skipped(tmp_path: Path) -> None:
    _touch(tmp_path / "real.jpg")
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    assert _relative(list(scan_folder(tmp_path)), tmp_path) == ["real.jpg"]


def test_empty_folder_yields_nothing(tmp_path: Path) -> None:
    assert list(scan_folder(tmp_path)) == []


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not found"):
        list(scan_folder(tmp_path / "missing"))


def test_file_instead_of_folder_is_refused(tmp_path: Path) -> None:
    photo = _touch(tmp_path / "one.jpg")
    with pytest.raises(InvalidInputError, match="is a file"):
        list(scan_folder(photo))


def test_content_hash_equal_for_equal_bytes(tmp_path: Path) -> None:
    data = np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    first = _touch(tmp_path / "a" / "one.jpg", data)
    second = _touch(tmp_path / "b" / "renamed.png", data)
    assert content_hash(str(first)) == content_hash(str(second))
    assert content_hash(str(first)) == hashlib.blake2b(data, digest_size=16).hexdigest()
    assert len(content_hash(str(first))) == 32


def test_content_hash_differs_for_different_bytes(tmp_path: Path) -> None:
    data = np.random.default_rng(2).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    first = _touch(tmp_path / "one.jpg", data)
    flipped = bytearray(data)
    flipped[-1] ^= 1  # one bit in the last byte
    second = _touch(tmp_path / "two.jpg", bytes(flipped))
    longer = _touch(tmp_path / "three.jpg", data + b"\x00")
    hashes = {content_hash(str(p)) for p in (first, second, longer)}
    assert len(hashes) == 3


def test_content_hash_of_a_file_larger_than_a_chunk(tmp_path: Path) -> None:
    data = np.random.default_rng(3).integers(0, 256, (1 << 20) * 2 + 17, dtype=np.uint8)
    path = _touch(tmp_path / "big.tif", data.tobytes())
    assert content_hash(str(path)) == hashlib.blake2b(data.tobytes(), digest_size=16).hexdigest()
    empty = _touch(tmp_path / "empty.jpg", b"")
    assert content_hash(str(empty)) == hashlib.blake2b(b"", digest_size=16).hexdigest()
