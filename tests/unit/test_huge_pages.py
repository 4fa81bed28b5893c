"""Huge pages for the graph: a loaded HNSW graph's memory moves onto 2 MiB pages (Linux with
transparent huge pages on request), and not when switched off; the answers do not change."""

from __future__ import annotations

from pathlib import Path

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
    block = np.ones(64 << 20, dtype=np.uint8)  # above glibc's threshold: its own mapping
    low, high = block.ctypes.data, block.ctypes.data + block.nbytes
    new = huge_pages.anonymous_regions() - before
    # NumPy asks for huge pages for its big arrays itself, which splits the mapping: the
    # block is all the new mappings that overlap it, and none of the old ones.
    covered = sum(max(0, min(end, high) - max(start, low)) for start, end in new)
    assert covered >= block.nbytes - huge_pages.HUGE_PAGE
    assert not any(start < high and end > low for start, end in before)


def _load(folder: Path) -> tuple[HnswIndex, int]:
    """The graph in ``folder``, and the bytes of its new memory on huge pages."""
    before = huge_pages.anonymous_regions()
    loaded = HnswIndex.load(folder, metric="cosine")
    assert loaded is not None
    new = sorted(huge_pages.anonymous_regions() - before)
    assert new, "hnswlib's graph memory was not found among the new mappings"
    return loaded[0], sum(huge_pages.huge_bytes(start, end) for start, end in new)


@needs_madvise_thp
def test_a_loaded_graph_sits_on_huge_pages_unless_switched_off(
    saved_graph: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, queries = saved_graph
    monkeypatch.setenv("LOOKALIKE_HUGE_PAGES", "0")
    plain, on_huge = _load(folder)
    assert on_huge == 0
    monkeypatch.setenv("LOOKALIKE_HUGE_PAGES", "1")
    huge, on_huge = _load(folder)
    # At least one huge page: how many the kernel finds free at once depends on how
    # fragmented the machine's memory is (a full page cache leaves few).
    assert on_huge >= huge_pages.HUGE_PAGE
    for one, other in zip(plain.search(queries, 10), huge.search(queries, 10), strict=True):
        np.testing.assert_array_equal(one, other)


def test_advise_skips_a_range_without_a_whole_huge_page() -> None:
    page = huge_pages.HUGE_PAGE
    assert huge_pages.advise(page + 4096, 2 * page + 4096, collapse=False) == 0
