"""Decoding in worker processes: results come back in submission order, bad files come back as
reasons in their place, and ``workers=0`` gives the same answers in the calling thread."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from lookalike.decoding import WorkerPool, decode_chunk
from lookalike.embedders.base import InputSpec
from lookalike.imaging import load_prepared

SPEC = InputSpec(size=32, crop_fraction=1.0)
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "moon")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seven real photos and three bad files, mixed."""
    root = tmp_path_factory.mktemp("decoding")
    for name in PHOTOS:
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(root / f"{name}.jpg")
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.png").write_text("not an image\n")
    good = (root / "coffee.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(good[: len(good) // 4])
    return root


def _paths(folder: Path) -> list[str]:
    names = [*PHOTOS[:3], "empty", *PHOTOS[3:5], "notes", "truncated", *PHOTOS[5:]]
    suffix = {"notes": ".png"}
    return [str(folder / f"{name}{suffix.get(name, '.jpg')}") for name in names]


def _squares_after_a_shuffled_wait(chunk: Sequence[int]) -> list[int]:
    """Later chunks tend to finish first, so ordering is really tested."""
    time.sleep(0.002 * (10 - chunk[0] % 10))
    return [x * x for x in chunk]


@pytest.mark.parametrize("workers", [0, 2])
def test_map_chunks_keeps_submission_order(workers: int) -> None:
    with WorkerPool(workers, chunk_size=3) as pool:
        assert pool.workers == workers
        out = list(pool.map_chunks(_squares_after_a_shuffled_wait, range(40)))
    assert out == [x * x for x in range(40)]


@pytest.mark.parametrize("workers", [0, 2])
def test_decode_gives_pixels_or_reasons_in_order(folder: Path, workers: int) -> None:
    paths = _paths(folder)
    with WorkerPool(workers, chunk_size=2) as pool:
        decoded = list(pool.decode(paths, SPEC))
    assert len(decoded) == len(paths)
    for path, result in zip(paths, decoded, strict=True):
        name = Path(path).stem
        if name in PHOTOS:
            assert result.error is None and result.pixels is not None, path
            assert result.pixels.shape == (32, 32, 3) and result.pixels.dtype == np.uint8
            np.testing.assert_array_equal(result.pixels, load_prepared(path, SPEC))
        else:
            assert result.pixels is None and result.error, path
    reasons = {Path(p).stem: d.error for p, d in zip(paths, decoded, strict=True) if d.error}
    assert set(reasons) == {"empty", "notes", "truncated"}
    assert "empty file" in str(reasons["empty"])
    assert "not an image" in str(reasons["notes"])
    assert "cannot decode" in str(reasons["truncated"])


def test_workers_and_the_calling_thread_agree(folder: Path) -> None:
    paths = _paths(folder)
    with WorkerPool(0) as inline, WorkerPool(2, chunk_size=1) as pool:
        here = list(inline.decode(paths, SPEC, max_pixels=10**7))
        there = list(pool.decode(paths, SPEC, max_pixels=10**7))
    assert [d.error for d in here] == [d.error for d in there]
    for a, b in zip(here, there, strict=True):
        if a.pixels is not None:
            np.testing.assert_array_equal(a.pixels, b.pixels)
    assert [d.error for d in decode_chunk(paths, SPEC, 10**7)] == [d.error for d in here]
    assert sum(d.pixels is not None for d in here) == len(PHOTOS)


def test_max_pixels_is_passed_to_the_workers(folder: Path) -> None:
    path = str(folder / "astronaut.jpg")  # 512 x 512
    with WorkerPool(1) as pool:
        (small,) = list(pool.decode([path], SPEC, max_pixels=100_000))
        (fine,) = list(pool.decode([path], SPEC, max_pixels=512 * 512))
    assert small.pixels is None and "over the limit" in str(small.error)
    assert fine.pixels is not None and fine.error is None


@pytest.mark.parametrize("workers", [0, 2])
def test_hash_is_the_content_hash_and_none_for_unreadable_files(folder: Path, workers: int) -> None:
    paths = [str(folder / "coffee.jpg"), str(folder / "missing.jpg"), str(folder / "moon.jpg")]
    with WorkerPool(workers, chunk_size=1) as pool:
        hashes = list(pool.hash(paths))
    expected = [
        hashlib.blake2b((folder / name).read_bytes(), digest_size=16).hexdigest()
        for name in ("coffee.jpg", "moon.jpg")
    ]
    assert hashes == [expected[0], None, expected[1]]


def test_a_closed_pool_can_be_closed_again() -> None:
    pool = WorkerPool(1)
    assert list(pool.map_chunks(_squares_after_a_shuffled_wait, [3])) == [9]
    pool.close()
    pool.close()
