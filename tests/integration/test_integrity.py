"""Integrity: checksums of segments and graphs, refused non-finite vectors, `lookalike verify`
(and --repair), re-indexing of lost vectors, and one-line errors for damaged catalogs."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from lookalike import SearchEngine
from lookalike.checksums import file_checksum
from lookalike.errors import (
    DamagedGraphError,
    DamagedSegmentError,
    IndexFormatError,
    InvalidInputError,
)
from lookalike.indexes.hnsw import HnswIndex, read_pointer
from lookalike.layout import IndexLayout
from lookalike.store import IndexStore
from lookalike.verification import repair, verify
from tests.helpers import json_lines, run_cli, top_path


@pytest.fixture(scope="module")
def built(small_photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The six small photos indexed with the pixels embedder (copy it to change it)."""
    directory = tmp_path_factory.mktemp("integrity") / "photos.idx"
    with SearchEngine.create(directory, embedder="pixels") as engine:
        engine.index_folder(small_photos)
    return directory


@pytest.fixture
def index(built: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "photos.idx"
    shutil.copytree(built, copy)
    return copy


def _segments(index: Path) -> list[Path]:
    return sorted(IndexLayout(index).segments.glob("seg-*.npy"))


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _query(small_photos: Path) -> Path:
    return small_photos / "things" / "coffee.jpg"


# -- checksums recorded at commit ----------------------------------------------------------------


def test_every_committed_segment_records_the_checksum_of_its_file(index: Path) -> None:
    store = IndexStore.open(index)
    try:
        records = list(store.catalog.segment_records().values())
    finally:
        store.close()
    assert records
    for record in records:
        assert record.checksum is not None and record.checksum.startswith("crc32:")
        assert record.checksum == file_checksum(IndexLayout(index).segment(record.file))


def test_vectors_added_through_the_api_get_a_checksum_too(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    with SearchEngine.create(tmp_path / "v.idx", embedder="pixels") as engine:
        dim = engine.manifest.dim
        engine.add_vectors(["a", "b"], rng.standard_normal((2, dim)).astype(np.float32))
    report = verify(tmp_path / "v.idx")
    assert report.clean and report.segments == 1 and report.unchecked_segments == 0


def test_catalog_made_before_checksums_is_migrated_and_reported_unchecked(index: Path) -> None:
    catalog = IndexLayout(index).catalog
    db = sqlite3.connect(catalog)
    db.execute("ALTER TABLE segments DROP COLUMN checksum")
    db.execute("DROP TABLE perceptual_hashes")  # both came with schema 4
    db.execute("DROP TABLE not_duplicates")
    db.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    db.commit()
    db.close()
    before = verify(index)  # read-only: reads schema 2 as it is
    assert before.clean and before.unchecked_segments == before.segments > 0
    IndexStore.open(index, writable=True).close()  # a writer migrates it forward
    db = sqlite3.connect(catalog)
    version = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    checksums = [r[0] for r in db.execute("SELECT checksum FROM segments")]
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.close()
    assert {"perceptual_hashes", "not_duplicates"} <= tables
    assert version == "4" and checksums and all(c is None for c in checksums)
    assert verify(index).unchecked_segments == before.segments


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_vectors_are_refused_at_commit(tmp_path: Path, bad: float) -> None:
    from lookalike.catalog_records import ImageEntry

    SearchEngine.create(tmp_path / "v.idx", embedder="pixels").close()
    store = IndexStore.open(tmp_path / "v.idx", writable=True)
    try:
        vectors = np.ones((3, store.manifest.dim), dtype=np.float32)
        vectors[1, 5] = bad
        entries = [ImageEntry(name, 1, 1, name, None) for name in "abc"]
        with pytest.raises(InvalidInputError, match=r"NaN or infinite.*row 1"):
            store.append(vectors, entries)
        assert store.catalog.count() == 0 and store.catalog.segment_records() == {}
    finally:
        store.close()
    assert list(IndexLayout(tmp_path / "v.idx").segments.iterdir()) == []


def test_nan_vectors_are_refused_through_the_api(tmp_path: Path) -> None:
    with SearchEngine.create(tmp_path / "v.idx", embedder="pixels") as engine:
        vectors = np.ones((2, engine.manifest.dim), dtype=np.float32)
        vectors[0, 0] = np.nan
        with pytest.raises(InvalidInputError, match="NaN or infinite"):
            engine.add_vectors(["a", "b"], vectors)
        assert len(engine) == 0


# -- damaged segments ----------------------------------------------------------------------------


def test_flipped_bits_in_a_segment_stop_search_with_a_typed_error(
    index: Path, small_photos: Path
) -> None:
    (segment,) = _segments(index)
    _flip(segment, segment.stat().st_size - 17)  # a byte of the last vector
    with SearchEngine.open(index) as engine, pytest.raises(DamagedSegmentError, match="checksum"):
        engine.search([_query(small_photos)], k=3)
    result = run_cli("search", _query(small_photos), "--index", index, "--json")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert segment.name in result.stderr and "verify" in result.stderr


def test_verify_names_the_damaged_segment_and_repair_embeds_its_images_again(
    index: Path, small_photos: Path
) -> None:
    (segment,) = _segments(index)
    _flip(segment, 200)
    result = run_cli("verify", "--index", index, "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert not report["clean"] and report["lost_images"] == 6
    (problem,) = report["problems"]
    assert problem["part"] == "segment" and problem["path"].endswith(segment.name)
    assert "--repair" in problem["fix"]

    fixed = run_cli("verify", "--index", index, "--repair")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "6 images embedded again" in fixed.stdout
    assert not segment.exists()  # the damaged file is gone once nothing refers to it
    assert run_cli("verify", "--index", index).returncode == 0
    searched = run_cli("search", _query(small_photos), "--index", index, "--json", "-k", "6")
    assert searched.returncode == 0, searched.stderr
    (answer,) = json_lines(searched.stdout)
    assert top_path(answer).endswith("coffee.jpg")
    assert len(answer["matches"]) == 6  # type: ignore[arg-type]
    assert all(-1.0 - 1e-5 <= m["score"] <= 1.0 + 1e-5 for m in answer["matches"])  # type: ignore[union-attr, index]


def test_repair_removes_images_whose_vectors_and_files_are_both_gone(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    with SearchEngine.create(tmp_path / "v.idx", embedder="pixels") as engine:
        dim = engine.manifest.dim
        engine.add_vectors(["gone-a", "gone-b"], rng.standard_normal((2, dim)).astype(np.float32))
    (segment,) = _segments(tmp_path / "v.idx")
    segment.unlink()
    done = repair(tmp_path / "v.idx")
    assert not done.before.clean and done.after.clean
    assert sorted(done.removed) == ["gone-a", "gone-b"] and done.reembedded == 0
    with SearchEngine.open(tmp_path / "v.idx") as engine:
        assert len(engine) == 0


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_index_embeds_again_images_whose_segment_is_missing_or_damaged(
    index: Path, small_photos: Path, damage: str
) -> None:
    (segment,) = _segments(index)
    if damage == "missing":
        segment.unlink()
    else:
        segment.write_bytes(segment.read_bytes()[:-100])
    with SearchEngine.open(index, writable=True) as engine:
        report = engine.index_folder(small_photos)
        assert (report.updated, report.unchanged, report.added) == (6, 0, 0)
        found = engine.search([_query(small_photos)], k=1)[0].matches[0]
        assert found.path.endswith("coffee.jpg") and found.score == pytest.approx(1.0, abs=1e-5)
    assert verify(index).clean


def test_row_counts_and_locations_are_checked_against_the_catalog(index: Path) -> None:
    db = sqlite3.connect(IndexLayout(index).catalog)
    db.execute("UPDATE images SET row = 99 WHERE id = (SELECT MIN(id) FROM images)")
    db.execute("UPDATE segments SET rows = rows + 1")
    db.commit()
    db.close()
    report = verify(index)
    messages = " ".join(p.message for p in report.problems)
    assert "rows their segment does not have" in messages
    assert "holds 6 rows, the catalog says 7" in messages
    assert report.lost_images == 6


# -- damaged graphs ------------------------------------------------------------------------------


@pytest.fixture
def graph_index(index: Path, small_photos: Path) -> Path:
    with SearchEngine.open(index, writable=True) as engine:
        engine.index_folder(small_photos, options=_hnsw())
        assert engine.search_index_type() == "hnsw"
    return index


def _hnsw() -> object:
    from lookalike.index_options import IndexOptions

    return IndexOptions(index_type="hnsw")


@pytest.mark.parametrize("damage", ["flipped", "truncated", "pointer"])
def test_damaged_graph_is_detected_before_hnswlib_parses_it(
    graph_index: Path, small_photos: Path, damage: str
) -> None:
    folder = IndexLayout(graph_index).graph
    info = read_pointer(folder)
    assert info is not None and set(info.checksums) == {info.file, info.deleted_file}
    graph = folder / info.file
    if damage == "flipped":
        _flip(graph, graph.stat().st_size // 2)
    elif damage == "truncated":
        graph.write_bytes(graph.read_bytes()[:-64])
    else:
        (folder / "ann.json").write_text("{not json")
    with pytest.raises(DamagedGraphError, match="exact search still works"):
        HnswIndex.load(folder, metric="cosine")
    assert issubclass(DamagedGraphError, IndexFormatError)
    # No SIGSEGV: the search falls back to exact search and says so in one line.
    searched = run_cli("search", _query(small_photos), "--index", graph_index, "--json")
    assert searched.returncode == 0, searched.stderr
    assert "Traceback" not in searched.stderr
    warning = [line for line in searched.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "searching exactly meanwhile" in warning[0], searched.stderr
    with SearchEngine.open(graph_index) as engine:
        exact = engine.collection.vector_index()
        query = engine.embed([_query(small_photos)])
        _, ids = exact.search(query, 10)
    found = [m["id"] for m in json.loads(searched.stdout.splitlines()[0])["matches"]]
    assert found == [i for i in ids[0].tolist() if i >= 0]
    checked = run_cli("verify", "--index", graph_index, "--json")
    assert checked.returncode == 1
    report = json.loads(checked.stdout)
    assert report["graph"] == "damaged" and report["lost_images"] == 0
    assert {p["part"] for p in report["problems"]} == {"graph"}


def test_repair_drops_a_damaged_graph_and_the_next_index_rebuilds_it(
    graph_index: Path, small_photos: Path
) -> None:
    folder = IndexLayout(graph_index).graph
    info = read_pointer(folder)
    assert info is not None
    _flip(folder / info.file, 100)
    done = repair(graph_index)
    assert done.graph_dropped and done.reembedded == 0 and done.after.clean
    assert not folder.exists()
    with SearchEngine.open(graph_index, writable=True) as engine:
        engine.index_folder(small_photos)
        assert engine.search_index_type() == "hnsw"
        hit = engine.search([_query(small_photos)], k=1)[0].matches[0]
        assert hit.path.endswith("coffee.jpg")
    assert verify(graph_index).graph == "checked"


def test_graph_sync_rebuilds_a_damaged_graph(graph_index: Path) -> None:
    folder = IndexLayout(graph_index).graph
    info = read_pointer(folder)
    assert info is not None
    _flip(folder / info.file, 100)
    with SearchEngine.open(graph_index, writable=True) as engine:
        rebuilt = engine.sync_ann()
    assert rebuilt.file != info.file and rebuilt.count == 6
    assert verify(graph_index).clean


def test_graph_ids_removed_since_it_was_saved_are_stale_not_damage(
    graph_index: Path, small_photos: Path
) -> None:
    folder = IndexLayout(graph_index).graph
    saved = graph_index.parent / "graph-before"
    shutil.copytree(folder, saved)
    with SearchEngine.open(graph_index, writable=True) as engine:
        gone = engine.remove([small_photos / "things" / "coffee.jpg"])
    assert gone == 1
    shutil.rmtree(folder)
    shutil.copytree(saved, folder)  # the graph as it was: one id the catalog no longer holds
    report = verify(graph_index)
    assert report.clean and report.graph == "checked" and report.images == 5
    assert report.stale_graph_ids == 1


# -- damaged catalogs ----------------------------------------------------------------------------


def test_catalog_with_a_garbage_header_is_one_line_not_a_traceback(
    index: Path, small_photos: Path
) -> None:
    catalog = IndexLayout(index).catalog
    data = bytearray(catalog.read_bytes())
    data[:100] = bytes(range(100))
    catalog.write_bytes(bytes(data))
    for args in (("search", _query(small_photos)), ("info",)):
        result = run_cli(*args, "--index", index)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert "catalog" in result.stderr and "damaged" in result.stderr
    checked = run_cli("verify", "--index", index)
    assert checked.returncode == 1 and "catalog" in checked.stdout


def test_catalog_with_corrupt_pages_is_reported(index: Path, small_photos: Path) -> None:
    catalog = IndexLayout(index).catalog
    data = bytearray(catalog.read_bytes())
    page = 4096
    assert len(data) >= 3 * page
    rng = np.random.default_rng(11)
    for start in range(page, len(data), page):  # every page but the header's
        data[start : start + page] = rng.integers(0, 256, page, dtype=np.uint8).tobytes()
    catalog.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="damaged"), SearchEngine.open(index) as engine:
        engine.search([_query(small_photos)], k=1)
    result = run_cli("search", _query(small_photos), "--index", index)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    checked = run_cli("verify", "--index", index, "--json")
    assert checked.returncode == 1
    assert json.loads(checked.stdout)["problems"][0]["part"] == "catalog"


def test_verify_on_a_sound_index_exits_0(index: Path) -> None:
    result = run_cli("verify", "--index", index)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: no damage found" in result.stdout
