"""Huge pages for the graph: a loaded HNSW graph's memory moves onto 2 MiB pages (Linux with
transparent huge pages on request), and not when switched off; the answers do not change."""

from __future__ import annotations

import json
import mmap
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lookalike import huge_pages
from lookalike.indexes.hnsw import HnswIndex, HnswParams

_THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")
_MODE = _THP.read_text() if _THP.exists() else ""

needs_madvise_thp = pytest.mark.skipif(
    "[madvise]" not in _MODE,
    reason="needs Linux transparent huge pages in madvise mode (as on our machines)",
)


@pytest.fixture(scope="module")
def saved_graph(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A graph of 9,000 1024-d vectors (37 MB in hnswlib: above glibc's largest threshold for
    giving a block its own mapping, as every big graph is) saved to disk, and queries."""
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((9_000, 1024)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(9_000, dtype=np.int64)
    params = HnswParams(m=4, ef_construction=16, ef_search=32)
    graph = HnswIndex.build(ids, vectors, metric="cosine", params=params)
    folder = tmp_path_factory.mktemp("graph") / "ann"
    graph.save(folder, recall=1.0, queries=0, dim=1024)
    return folder, vectors[:50]


def test_new_mappings_are_found_and_old_ones_left_alone() -> None:
    before = huge_pages.anonymous_regions()
    # A new private anonymous mapping, as a big malloc makes.
    block = mmap.mmap(-1, 64 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    low = np.frombuffer(block, dtype=np.uint8).ctypes.data
    high = low + len(block)
    new = huge_pages.anonymous_regions() - before
    assert any(start <= low and high <= end for start, end in new)
    assert not any(start < high and end > low for start, end in before)


#: A reader process: opens the graph, reports its memory on huge pages and its answers.
_READER = """
import json, sys
from pathlib import Path
import numpy as np
from lookalike import huge_pages
from lookalike.indexes.hnsw import HnswIndex
before = huge_pages.anonymous_regions()
graph, _ = HnswIndex.load(Path(sys.argv[1]), metric="cosine")
new = sorted(huge_pages.anonymous_regions() - before)
queries = np.load(sys.argv[2])
print(json.dumps({
    "regions": len(new),
    "on_huge": sum(huge_pages.huge_bytes(start, end) for start, end in new),
    "ids": graph.search(queries, 10)[1].tolist(),
}))
"""


def _read(folder: Path, queries: Path, switch: str) -> dict[str, Any]:
    """What a fresh reader process (as users open an index) reports with the switch set:
    in a long-running process glibc may place the graph in a big free block of its heap,
    which is not a new mapping (the graph then stays on small pages)."""
    env = {**os.environ, "LOOKALIKE_HUGE_PAGES": switch}
    done = subprocess.run(
        [sys.executable, "-c", _READER, str(folder), str(queries)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@needs_madvise_thp
def test_a_loaded_graph_sits_on_huge_pages_unless_switched_off(
    saved_graph: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    folder, queries = saved_graph
    np.save(tmp_path / "queries.npy", queries)
    plain = _read(folder, tmp_path / "queries.npy", "0")
    huge = _read(folder, tmp_path / "queries.npy", "1")
    assert plain["regions"] >= 1 and huge["regions"] >= 1  # the graph's memory was found
    assert plain["on_huge"] == 0
    # At least one huge page: how many the kernel finds free at once depends on how
    # fragmented the machine's memory is (a full page cache leaves few).
    assert huge["on_huge"] >= huge_pages.HUGE_PAGE
    assert plain["ids"] == huge["ids"]  # the same answers


def test_advise_skips_a_range_without_a_whole_huge_page() -> None:
    page = huge_pages.HUGE_PAGE
    assert huge_pages.advise(page + 4096, 2 * page + 4096, collapse=False) == 0
