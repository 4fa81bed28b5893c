"""Killing `lookalike index` with SIGKILL at any moment leaves a readable index holding the last
committed state, and running the command again finishes the job with the same result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from lookalike import NotAnIndexError, SearchEngine
from lookalike.evaluation.copies import CopySet
from lookalike.store import IndexStore
from tests import processes
from tests.conftest import FAST_DIM, FAST_EMBEDDER
from tests.helpers import cli_env, committed_images, run_cli

pytestmark = pytest.mark.heavy  # real processes killed mid-write: seconds each


def _segment_tmp_exists(index: Path) -> bool:
    return any((index / "segments").glob("*.tmp")) if (index / "segments").exists() else False


def _kill_when(photos: Path, index: Path, condition: Callable[[], bool], limit: float) -> bool:
    """Start indexing, SIGKILL the process once ``condition`` holds (or after ``limit`` s).
    Returns whether the process was still running when killed."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lookalike",
            "index",
            str(photos),
            "--index",
            str(index),
            "--batch-size",
            "4",
            "--commit-every",
            "8",
            "--workers",
            "1",
            "--embedder",
            FAST_EMBEDDER,
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=cli_env(),
    )
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None and not condition():
        time.sleep(0.002)
    alive = process.poll() is None
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    if sys.platform.startswith("linux"):
        # No sweep of the process group: the decode workers must die with their parent.
        left = processes.wait_gone(processes.with_argument(str(index)), 2.0)
        processes.kill_all(left)
        assert not left, f"{len(left)} processes outlived the killed indexer"
    return alive


def _assert_readable(index: Path, photos: Path, expected_max: int) -> int:
    try:
        engine = SearchEngine.open(index)
    except NotAnIndexError:
        return -1  # killed before the manifest was written: nothing was ever committed
    with engine:
        count = len(engine)
        assert 0 <= count <= expected_max
        paths, vectors = engine.export_vectors()
        assert len(paths) == count and vectors.shape == (count, FAST_DIM)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
        assert all(Path(p).is_file() and Path(p).is_relative_to(photos) for p in paths)
        if count:
            query = np.ascontiguousarray(vectors[:1])
            assert engine.search_vectors(query, k=1)[0][0].path == paths[0]
    return count


def test_sigkill_at_several_points_then_resume(copy_set: CopySet, tmp_path: Path) -> None:
    photos = copy_set.root
    total = len(list(photos.rglob("*.jpg")))
    index = tmp_path / "crashy.idx"
    points: list[tuple[str, Callable[[], bool], float]] = [
        ("while starting", lambda: False, 0.4),
        ("after the first commit", lambda: committed_images(index) >= 8, 60),
        ("while a segment is being written", lambda: _segment_tmp_exists(index), 30),
        ("half way", lambda: committed_images(index) >= total // 2, 60),
        ("at the end (compaction)", lambda: committed_images(index) >= total, 60),
    ]
    seen = []
    for name, condition, limit in points:
        _kill_when(photos, index, condition, limit)
        count = _assert_readable(index, photos, total)
        seen.append((name, count))
    print(f"\ncommitted images after each kill: {seen}")
    # Some kill landed mid-run with part of the work committed: the test exercised a real crash.
    assert any(0 < count < total for _, count in seen), seen

    finished = run_cli("index", photos, "--index", index, "--embedder", FAST_EMBEDDER, "--json")
    assert finished.returncode == 0, finished.stderr
    assert _assert_readable(index, photos, total) == total

    clean = tmp_path / "clean.idx"
    assert run_cli("index", photos, "--index", clean, "--embedder", FAST_EMBEDDER).returncode == 0
    with SearchEngine.open(index) as crashed, SearchEngine.open(clean) as reference:
        crashed_paths, crashed_vectors = crashed.export_vectors()
        clean_paths, clean_vectors = reference.export_vectors()
    order = np.argsort(crashed_paths)
    assert sorted(crashed_paths) == sorted(clean_paths)
    np.testing.assert_allclose(
        crashed_vectors[order], clean_vectors[np.argsort(clean_paths)], atol=1e-5
    )
    # No orphaned vector files are left behind once a writer has run.
    store = IndexStore.open(index)
    try:
        referenced = {name for name, _ in store.catalog.segments().values()}
    finally:
        store.close()
    assert {p.name for p in (index / "segments").iterdir()} == referenced


@pytest.mark.parametrize("damage", ["newer", "garbage"])
def test_damaged_or_newer_index_is_refused_with_exit_2(
    fast_gallery_index: Path, copy_set: CopySet, tmp_path: Path, damage: str
) -> None:
    import json
    import shutil

    index = tmp_path / "copy.idx"
    shutil.copytree(fast_gallery_index, index, ignore=shutil.ignore_patterns("lock"))
    manifest = index / "manifest.json"
    if damage == "newer":
        data = json.loads(manifest.read_text())
        data["format_version"] = 99
        manifest.write_text(json.dumps(data))
    else:
        manifest.write_text("{not json")
    result = run_cli("search", copy_set.originals[0], "--index", index)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert ("newer" if damage == "newer" else "unreadable manifest") in result.stderr
