"""The index directory: manifest, lock, segment files, appends, garbage collection, compaction."""

from __future__ import annotations

import gc
import json
import shutil
import sqlite3
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from lookalike.catalog_records import ImageEntry, NewImage
from lookalike.embedders.base import EmbedderSpec
from lookalike.errors import (
    DamagedSegmentError,
    IndexFormatError,
    IndexLockedError,
    InvalidInputError,
    NotAnIndexError,
)
from lookalike.layout import IndexLayout
from lookalike.manifest import Manifest
from lookalike.store import IndexStore

DIM = 8
MANIFEST, CATALOG, SEGMENTS = IndexLayout.MANIFEST, IndexLayout.CATALOG, IndexLayout.SEGMENTS
F32 = npt.NDArray[np.float32]

MANIFEST_IN = Manifest(
    embedder=EmbedderSpec("test"), weights_digest="0" * 64, dim=DIM, metric="cosine"
)


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    return tmp_path / "photos.idx"


@pytest.fixture
def store(index_dir: Path) -> Iterator[IndexStore]:
    opened = IndexStore.create(index_dir, MANIFEST_IN)
    yield opened
    opened.close()


def _vectors(seed: int, n: int) -> F32:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _commit(store: IndexStore, vectors: F32, prefix: str) -> tuple[str, list[int]]:
    """Write a segment and commit one catalog row per vector; (segment file, image ids)."""
    name = store.write_segment(vectors)
    with store.catalog.transaction():
        segment = store.catalog.add_segment(name, len(vectors))
        ids = store.catalog.insert(
            [
                NewImage(
                    path=f"/photos/{prefix}{row}.jpg",
                    size=1000 + row,
                    mtime_ns=row,
                    hash=f"{prefix}{row:030d}",
                    label=None,
                    segment=segment,
                    row=row,
                )
                for row in range(len(vectors))
            ]
        )
    return name, ids


def _segment_files(directory: Path) -> set[str]:
    return {p.name for p in (directory / SEGMENTS).iterdir()}


def _listing(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


# -- creation and the manifest ----------------------------------------------------------------


def test_create_writes_the_manifest(store: IndexStore, index_dir: Path) -> None:
    data = json.loads((index_dir / MANIFEST).read_text(encoding="utf-8"))
    assert data["format"] == "lookalike-index"
    assert data["format_version"] == 1
    assert data["metric"] == "cosine"
    assert data["dim"] == DIM
    assert data["embedder"] == {"name": "test", "params": {}}
    assert data["weights_digest"] == "0" * 64
    assert data["index_type"] == "auto"
    assert data["created"]  # stamped at creation
    assert (index_dir / CATALOG).is_file()
    assert (index_dir / SEGMENTS).is_dir()
    assert _segment_files(index_dir) == set()
    assert not list(index_dir.glob(".*.tmp"))  # written atomically: no temporary left
    assert store.writable
    assert store.catalog.count() == 0
    assert store.manifest.created == data["created"]


def test_manifest_round_trips(store: IndexStore, index_dir: Path) -> None:
    store.close()
    reopened = IndexStore.open(index_dir)
    try:
        assert not reopened.writable
        assert reopened.manifest == store.manifest
        assert reopened.manifest.embedder == EmbedderSpec("test")
        assert reopened.manifest.embedder.key() == EmbedderSpec("test").key()
    finally:
        reopened.close()


def test_creation_interrupted_before_the_manifest_is_not_an_index(index_dir: Path) -> None:
    index_dir.mkdir()
    (index_dir / CATALOG).write_bytes(b"half-written")
    (index_dir / SEGMENTS).mkdir()
    (index_dir / SEGMENTS / "seg-stale.npy").write_bytes(b"junk")
    with pytest.raises(NotAnIndexError):
        IndexStore.open(index_dir)
    # Creating again over the leftovers works and clears them.
    store = IndexStore.create(index_dir, MANIFEST_IN)
    try:
        assert store.catalog.count() == 0
        assert _segment_files(index_dir) == set()
    finally:
        store.close()


def test_create_twice_is_refused(store: IndexStore, index_dir: Path) -> None:
    store.close()
    with pytest.raises(InvalidInputError, match="already exists"):
        IndexStore.create(index_dir, MANIFEST_IN)


def test_create_in_a_foreign_folder_touches_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "holiday"
    (folder / "day1").mkdir(parents=True)
    (folder / "beach.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "day1" / "notes.txt").write_text("sunny", encoding="utf-8")
    before = _listing(folder)
    with pytest.raises(InvalidInputError, match="not empty"):
        IndexStore.create(folder, MANIFEST_IN)
    assert _listing(folder) == before
    assert sorted(p.name for p in folder.iterdir()) == ["beach.jpg", "day1"]


def test_create_on_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "index"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(InvalidInputError):
        IndexStore.create(path, MANIFEST_IN)
    assert path.read_text(encoding="utf-8") == "x"


# -- opening what is not (or no longer) an index ----------------------------------------------


def test_open_missing_or_empty_or_foreign_folder(tmp_path: Path) -> None:
    with pytest.raises(NotAnIndexError):
        IndexStore.open(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NotAnIndexError):
        IndexStore.open(empty)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "a.jpg").write_bytes(b"abc")
    (foreign / "catalog.txt").write_text("nope", encoding="utf-8")
    with pytest.raises(NotAnIndexError):
        IndexStore.open(foreign, writable=True)
    assert sorted(p.name for p in foreign.iterdir()) == ["a.jpg", "catalog.txt"]
    a_file = tmp_path / "file"
    a_file.write_bytes(b"")
    with pytest.raises(NotAnIndexError):
        IndexStore.open(a_file)


def test_manifest_of_another_program_is_not_an_index(tmp_path: Path) -> None:
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / MANIFEST).write_text('{"name": "some web app", "version": 3}', encoding="utf-8")
    with pytest.raises(NotAnIndexError):
        IndexStore.open(folder)


def _rewrite_manifest(index_dir: Path, **changes: object) -> None:
    path = index_dir / MANIFEST
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(json.dumps(data), encoding="utf-8")


def test_newer_format_is_refused(store: IndexStore, index_dir: Path) -> None:
    store.close()
    _rewrite_manifest(index_dir, format_version=99)
    with pytest.raises(IndexFormatError, match="newer"):
        IndexStore.open(index_dir)


def test_garbage_manifest_is_a_format_error(store: IndexStore, index_dir: Path) -> None:
    store.close()
    (index_dir / MANIFEST).write_bytes(b'{"format": "lookalike-index", \x00\xff garbage')
    with pytest.raises(IndexFormatError):
        IndexStore.open(index_dir)


@pytest.mark.parametrize(
    "changes",
    [{"metric": "manhattan"}, {"dim": "eight"}, {"embedder": "test"}, {"format_version": "1"}],
    ids=["metric", "dim", "embedder", "version"],
)
def test_malformed_manifest_fields(
    store: IndexStore, index_dir: Path, changes: dict[str, object]
) -> None:
    store.close()
    _rewrite_manifest(index_dir, **changes)
    with pytest.raises(IndexFormatError):
        IndexStore.open(index_dir)


def test_missing_catalog_is_a_format_error(store: IndexStore, index_dir: Path) -> None:
    store.close()
    (index_dir / CATALOG).unlink()
    with pytest.raises(IndexFormatError, match="catalog"):
        IndexStore.open(index_dir)


# -- the writer's lock ------------------------------------------------------------------------


def test_second_writer_is_locked_out_readers_are_not(store: IndexStore, index_dir: Path) -> None:
    with pytest.raises(IndexLockedError):
        IndexStore.open(index_dir, writable=True)
    reader = IndexStore.open(index_dir)
    try:
        assert reader.catalog.count() == 0
        with pytest.raises(InvalidInputError, match="read-only"):
            reader.write_segment(_vectors(0, 2))
    finally:
        reader.close()
    store.close()
    writer = IndexStore.open(index_dir, writable=True)  # the lock went with the first writer
    writer.close()


# -- segments ---------------------------------------------------------------------------------


def test_committed_vectors_load_by_id(store: IndexStore) -> None:
    first, second = _vectors(1, 5), _vectors(2, 3)
    _, ids1 = _commit(store, first, "a")
    _, ids2 = _commit(store, second, "b")
    ids, vectors = store.load_vectors()
    assert ids.tolist() == ids1 + ids2
    assert ids.dtype == np.int64
    assert vectors.dtype == np.float32
    assert np.array_equal(vectors, np.vstack([first, second]))


def test_uncommitted_segments_are_collected_by_the_next_writer(
    store: IndexStore, index_dir: Path
) -> None:
    committed, _ = _commit(store, _vectors(1, 4), "a")
    orphan = store.write_segment(_vectors(2, 4))  # written, never referred to by the catalog
    rolled_back = store.write_segment(_vectors(3, 4))
    with pytest.raises(RuntimeError), store.catalog.transaction():
        store.catalog.add_segment(rolled_back, 4)
        raise RuntimeError("crash before commit")
    (index_dir / SEGMENTS / "seg-partial.tmp").write_bytes(b"half a file")
    (index_dir / f".{MANIFEST}.deadbeef.tmp").write_bytes(b"{")
    assert _segment_files(index_dir) == {committed, orphan, rolled_back, "seg-partial.tmp"}
    store.close()

    reader = IndexStore.open(index_dir)  # readers never delete anything
    reader.close()
    assert orphan in _segment_files(index_dir)

    writer = IndexStore.open(index_dir, writable=True)
    try:
        assert _segment_files(index_dir) == {committed}
        assert not list(index_dir.glob(".*.tmp"))
        ids, vectors = writer.load_vectors()
        assert np.array_equal(vectors, _vectors(1, 4))
        assert len(ids) == 4
    finally:
        writer.close()


def test_an_upload_interrupted_while_written_is_collected_by_the_next_writer(
    store: IndexStore, index_dir: Path
) -> None:
    """`serve --allow-writes` writes an upload durably into uploads/ before indexing it: a
    kill during that write leaves a hidden temporary there, which the next writer deletes
    (the files of uploads, even unindexed ones, are left alone)."""
    uploads = IndexLayout(index_dir).uploads
    uploads.mkdir()
    (uploads / "0123abcd.jpg").write_bytes(b"a whole upload")
    (uploads / ".4567cdef.jpg.deadbeef.tmp").write_bytes(b"half an upload")
    store.close()

    IndexStore.open(index_dir).close()  # readers never delete anything
    assert len(list(uploads.iterdir())) == 2
    IndexStore.open(index_dir, writable=True).close()
    assert [p.name for p in uploads.iterdir()] == ["0123abcd.jpg"]


def test_compaction_keeps_vectors_and_leaves_one_segment(
    store: IndexStore, index_dir: Path
) -> None:
    for seed in range(4):
        _commit(store, _vectors(seed, 6), f"s{seed}-")
    ids, vectors = store.load_vectors()
    drop = ids[::3]
    with store.catalog.transaction():
        store.catalog.delete(drop.tolist())
    keep = ~np.isin(ids, drop)
    expected = dict(zip(ids[keep].tolist(), vectors[keep], strict=True))
    assert len(_segment_files(index_dir)) == 4
    assert store.needs_compaction()  # 16 live of 24 written

    store.compact()

    assert len(_segment_files(index_dir)) == 1
    assert len(store.catalog.segments()) == 1
    ids_after, vectors_after = store.load_vectors()
    assert ids_after.tolist() == sorted(expected)
    for image_id, vector in zip(ids_after.tolist(), vectors_after, strict=True):
        assert np.array_equal(vector, expected[image_id])
    assert not store.needs_compaction()
    # Paths and fingerprints are untouched by the move.
    assert store.catalog.count() == len(expected)
    record = store.catalog.get(int(ids_after[0]))
    assert record is not None
    assert record.path.startswith("/photos/s0-")

    store.close()
    reopened = IndexStore.open(index_dir)
    try:
        ids_again, vectors_again = reopened.load_vectors()
        assert np.array_equal(ids_again, ids_after)
        assert np.array_equal(vectors_again, vectors_after)
    finally:
        reopened.close()


def test_many_segments_need_compaction(store: IndexStore) -> None:
    for seed in range(9):
        _commit(store, _vectors(seed, 1), f"x{seed}-")
    assert store.needs_compaction()


def test_write_segment_wrong_dim_is_refused(store: IndexStore, index_dir: Path) -> None:
    with pytest.raises(InvalidInputError, match=f"\\(n, {DIM}\\)"):
        store.write_segment(_vectors(0, 3)[:, :5])
    with pytest.raises(InvalidInputError):
        store.write_segment(np.zeros(DIM, dtype=np.float32))
    assert _segment_files(index_dir) == set()


def test_segment_written_as_float32(store: IndexStore, index_dir: Path) -> None:
    name = store.write_segment(_vectors(0, 3).astype(np.float64))
    data = np.load(index_dir / SEGMENTS / name)
    assert data.dtype == np.float32
    assert data.shape == (3, DIM)


def test_damaged_segment_is_a_format_error(store: IndexStore, index_dir: Path) -> None:
    name, _ = _commit(store, _vectors(0, 3), "a")
    np.save(index_dir / SEGMENTS / name, np.zeros((3, DIM + 1), dtype=np.float32))
    with pytest.raises(IndexFormatError, match="damaged"):
        store.load_vectors()


def _failure_of(action: Callable[[], object]) -> tuple[type[BaseException] | None, list[str]]:
    """Run ``action``; the type of what it raised, and the ResourceWarnings of what it leaked.

    The exception is not kept (its traceback would keep leaked objects alive), and the garbage
    is collected here, so that a leak cannot surface as a warning in some later test.
    """
    raised: type[BaseException] | None = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        try:
            action()
        except Exception as exc:
            raised = type(exc)
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    return raised, leaks


def test_missing_committed_segment_is_a_format_error(store: IndexStore, index_dir: Path) -> None:
    name, _ = _commit(store, _vectors(0, 3), "a")
    (index_dir / SEGMENTS / name).unlink()
    raised, _ = _failure_of(store.load_vectors)
    assert raised is DamagedSegmentError
    assert issubclass(raised, IndexFormatError)


def test_failed_writable_open_is_a_format_error_and_leaks_nothing(
    store: IndexStore, index_dir: Path
) -> None:
    store.close()
    shutil.rmtree(index_dir / SEGMENTS)
    raised, leaks = _failure_of(lambda: IndexStore.open(index_dir, writable=True))
    assert raised is IndexFormatError
    assert leaks == []


# -- append: a segment and its catalog rows in one commit ---------------------------------------


def _entries(prefix: str, n: int) -> list[ImageEntry]:
    return [
        ImageEntry(f"/photos/{prefix}{i}.jpg", 100 + i, i, f"{prefix}{i:030d}", "cats")
        for i in range(n)
    ]


def test_append_returns_ids_whose_vectors_and_rows_read_back(store: IndexStore) -> None:
    first, second = _vectors(1, 3), _vectors(2, 2)
    ids1 = store.append(first, _entries("a", 3))
    ids2 = store.append(second, _entries("b", 2))
    assert len(set(ids1 + ids2)) == 5
    assert np.array_equal(store.vectors_for(ids2 + ids1), np.vstack([second, first]))
    record = store.catalog.get(ids2[1])
    assert record is not None
    assert (record.path, record.size, record.mtime_ns, record.hash, record.label) == (
        "/photos/b1.jpg",
        101,
        1,
        f"b{1:030d}",
        "cats",
    )
    assert record.row == 1
    assert len(store.catalog.segments()) == 2


def test_append_commits_with_the_callers_transaction(store: IndexStore) -> None:
    (old,) = store.append(_vectors(1, 1), _entries("old", 1))
    with store.catalog.transaction():
        store.catalog.delete([old])  # the same path is free again only inside this transaction
        (new,) = store.append(_vectors(2, 1), _entries("old", 1))
        store.catalog.set_metadata([(new, {"colour": "red"})])
    record = store.catalog.by_path("/photos/old0.jpg")
    assert store.catalog.count() == 1 and record is not None and record.id == new
    assert store.catalog.metadata() == {new: {"colour": "red"}}
    assert np.array_equal(store.vectors_for([new]), _vectors(2, 1))


def test_append_rolls_back_with_the_caller_and_leaves_no_orphan_after_gc(
    store: IndexStore, index_dir: Path
) -> None:
    kept = store.append(_vectors(1, 2), _entries("kept", 2))
    generation = store.catalog.generation()
    with pytest.raises(RuntimeError), store.catalog.transaction():
        store.catalog.delete(kept)
        store.append(_vectors(2, 3), _entries("lost", 3))
        raise RuntimeError("crash before the caller commits")
    assert store.catalog.generation() == generation
    assert store.load_vectors()[0].tolist() == sorted(kept)
    assert store.catalog.by_path("/photos/lost0.jpg") is None
    assert len(_segment_files(index_dir)) == 2  # the rolled-back segment is on disk...
    store.collect_garbage()
    assert _segment_files(index_dir) == {name for name, _ in store.catalog.segments().values()}
    assert len(_segment_files(index_dir)) == 1  # ...until the writer collects it


def test_append_that_fails_inside_a_transaction_undoes_only_itself(store: IndexStore) -> None:
    with store.catalog.transaction():
        (first,) = store.append(_vectors(1, 1), _entries("a", 1))
        with pytest.raises(sqlite3.IntegrityError):
            store.append(_vectors(2, 2), _entries("a", 2))  # a0.jpg is taken: no row of it stays
    assert store.catalog.count() == 1
    assert len(store.catalog.segments()) == 1
    assert np.array_equal(store.vectors_for([first]), _vectors(1, 1))


def test_append_refuses_mismatched_or_read_only_input(store: IndexStore, index_dir: Path) -> None:
    with pytest.raises(InvalidInputError, match="3 vectors for 2 images"):
        store.append(_vectors(0, 3), _entries("a", 2))
    assert store.append(np.empty((0, DIM), dtype=np.float32), []) == []
    assert _segment_files(index_dir) == set()
    reader = IndexStore.open(index_dir)
    try:
        with pytest.raises(InvalidInputError, match="read-only"):
            reader.append(_vectors(0, 1), _entries("a", 1))
    finally:
        reader.close()


# -- what interrupted writes leave ----------------------------------------------------------------


def test_writer_deletes_temporaries_of_graph_saves_and_shards_of_killed_runs(
    store: IndexStore, index_dir: Path
) -> None:
    layout = store.layout
    layout.graph.mkdir()
    (layout.graph / "ann.json").write_text("{}", encoding="utf-8")
    (layout.graph / ".hnsw-dead.bin.0123.tmp").write_bytes(b"half a graph")
    run = layout.shard_run("killed")
    run.mkdir(parents=True)
    (run / "shard-0000000000-abc.npy").write_bytes(b"vectors")
    store.close()
    IndexStore.open(index_dir).close()  # readers delete nothing
    assert (layout.graph / ".hnsw-dead.bin.0123.tmp").exists() and run.exists()
    IndexStore.open(index_dir, writable=True).close()
    assert sorted(p.name for p in layout.graph.iterdir()) == ["ann.json"]
    assert not layout.shards.exists()


def test_creation_killed_while_writing_the_manifest_can_be_run_again(index_dir: Path) -> None:
    index_dir.mkdir()
    (index_dir / CATALOG).write_bytes(b"half-written")
    (index_dir / f".{MANIFEST}.0123abcd.tmp").write_bytes(b'{"form')
    store = IndexStore.create(index_dir, MANIFEST_IN)
    try:
        assert store.layout.is_index()
        assert not list(index_dir.glob(".*.tmp"))
    finally:
        store.close()


def test_a_stranger_temporary_is_not_taken_for_an_index_leftover(tmp_path: Path) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / ".notes.txt.1234.tmp").write_text("mine", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="not empty"):
        IndexStore.create(folder, MANIFEST_IN)
    assert (folder / ".notes.txt.1234.tmp").read_text(encoding="utf-8") == "mine"
