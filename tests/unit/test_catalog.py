"""The SQLite catalog on a real file: records, lookups, moves, deletes, metadata, the commit
counter, segments, and forward migrations of older schemas."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lookalike.catalog import Catalog
from lookalike.catalog_records import ImageRecord, NewImage
from lookalike.catalog_schema import SCHEMA_VERSION
from lookalike.errors import IndexFormatError


def _image(
    path: str, *, segment: int, row: int, hash_: str = "", label: str | None = None
) -> NewImage:
    return NewImage(
        path=path,
        size=1000 + row,
        mtime_ns=10**9 * (row + 1),
        hash=hash_ or f"hash-{path}",
        label=label,
        segment=segment,
        row=row,
    )


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    return tmp_path / "catalog.sqlite"


@pytest.fixture
def catalog(catalog_file: Path) -> Iterator[Catalog]:
    opened = Catalog(catalog_file, create=True)
    yield opened
    opened.close()


@pytest.fixture
def filled(catalog: Catalog) -> tuple[Catalog, list[int]]:
    """Five images in two segments, under /photos/cats and /photos/dogs."""
    with catalog.transaction():
        first = catalog.add_segment("seg-a.npy", 3)
        second = catalog.add_segment("seg-b.npy", 2)
        ids = catalog.insert(
            [
                _image("/photos/cats/a.jpg", segment=first, row=0, label="cats"),
                _image("/photos/cats/b.jpg", segment=first, row=1, label="cats", hash_="same"),
                _image("/photos/cats/sub/c.jpg", segment=first, row=2, label="cats"),
                _image("/photos/dogs/d.jpg", segment=second, row=0, label="dogs", hash_="same"),
                _image("/photos/dogsled.jpg", segment=second, row=1),
            ]
        )
    return catalog, ids


def test_a_new_catalog_is_empty_and_its_set_up_is_one_commit(
    catalog: Catalog, catalog_file: Path
) -> None:
    assert catalog_file.is_file()
    assert catalog.count() == 0 and catalog.generation() == 1
    assert catalog.segments() == {} and catalog.paths() == [] and catalog.metadata() == {}
    ids, segments, rows = catalog.locations()
    assert ids.shape == segments.shape == rows.shape == (0,)


def test_insert_then_get_by_id_and_by_path(filled: tuple[Catalog, list[int]]) -> None:
    catalog, ids = filled
    assert len(ids) == 5 and len(set(ids)) == 5 and catalog.count() == 5
    first = next(s for s, (name, _) in catalog.segments().items() if name == "seg-a.npy")
    assert catalog.get(ids[2]) == ImageRecord(
        id=ids[2],
        path="/photos/cats/sub/c.jpg",
        size=1002,
        mtime_ns=3 * 10**9,
        hash="hash-/photos/cats/sub/c.jpg",
        label="cats",
        segment=first,
        row=2,
    )
    assert catalog.by_path("/photos/dogs/d.jpg") == catalog.get(ids[3])
    unlabelled = catalog.by_path("/photos/dogsled.jpg")
    assert unlabelled is not None and unlabelled.id == ids[4] and unlabelled.label is None
    assert catalog.get(max(ids) + 1) is None
    assert catalog.by_path("/photos/nowhere.jpg") is None
    assert catalog.paths() == [
        "/photos/cats/a.jpg",
        "/photos/cats/b.jpg",
        "/photos/cats/sub/c.jpg",
        "/photos/dogs/d.jpg",
        "/photos/dogsled.jpg",
    ]
    assert [r.id for r in catalog.all_records()] == sorted(ids)
    found = catalog.by_ids([ids[0], ids[3], 999_999])
    assert set(found) == {ids[0], ids[3]} and found[ids[3]].path == "/photos/dogs/d.jpg"


def test_by_ids_reads_more_ids_than_one_query_holds(catalog: Catalog) -> None:
    with catalog.transaction():
        segment = catalog.add_segment("big.npy", 1200)
        ids = catalog.insert(
            [_image(f"/p/{i:04d}.jpg", segment=segment, row=i) for i in range(1200)]
        )
    found = catalog.by_ids(ids[::-1])
    assert len(found) == 1200 and found[ids[1100]].path == "/p/1100.jpg"


def test_under_is_a_folder_prefix_not_a_string_prefix(filled: tuple[Catalog, list[int]]) -> None:
    catalog, _ = filled
    assert set(catalog.under("/photos/cats")) == {
        "/photos/cats/a.jpg",
        "/photos/cats/b.jpg",
        "/photos/cats/sub/c.jpg",
    }
    assert set(catalog.under("/photos/cats/")) == set(catalog.under("/photos/cats"))
    # "/photos/dogsled.jpg" starts with "/photos/dogs" but is not inside that folder.
    assert set(catalog.under("/photos/dogs")) == {"/photos/dogs/d.jpg"}
    assert len(catalog.under("/photos")) == 5
    assert catalog.under("/elsewhere") == {}


def test_by_hash_finds_every_file_with_that_content(filled: tuple[Catalog, list[int]]) -> None:
    catalog, ids = filled
    assert sorted(r.id for r in catalog.by_hash("same")) == [ids[1], ids[3]]
    assert catalog.by_hash("no-such-hash") == []


def test_locations_and_segments(filled: tuple[Catalog, list[int]]) -> None:
    catalog, ids = filled
    segments = catalog.segments()
    assert sorted(segments.values()) == [("seg-a.npy", 3), ("seg-b.npy", 2)]
    by_file = {name: sid for sid, (name, _) in segments.items()}
    found_ids, found_segments, rows = catalog.locations()
    assert found_ids.dtype == np.int64 and found_ids.tolist() == sorted(ids)
    a, b = by_file["seg-a.npy"], by_file["seg-b.npy"]
    assert found_segments.tolist() == [a, a, a, b, b]
    assert rows.tolist() == [0, 1, 2, 0, 1]


def test_move_changes_the_file_facts_but_keeps_id_hash_and_vector(
    filled: tuple[Catalog, list[int]],
) -> None:
    catalog, ids = filled
    before = catalog.get(ids[0])
    assert before is not None
    with catalog.transaction():
        catalog.move(ids[0], path="/photos/pets/a.jpg", size=77, mtime_ns=5, label="pets")
    after = catalog.get(ids[0])
    assert after == ImageRecord(
        ids[0], "/photos/pets/a.jpg", 77, 5, before.hash, "pets", before.segment, before.row
    )
    assert catalog.by_path("/photos/cats/a.jpg") is None
    assert "/photos/pets/a.jpg" not in catalog.under("/photos/cats")


def test_relocate_points_images_at_new_rows(filled: tuple[Catalog, list[int]]) -> None:
    catalog, ids = filled
    with catalog.transaction():
        merged = catalog.add_segment("merged.npy", 5)
        catalog.relocate([(image_id, merged, 4 - n) for n, image_id in enumerate(ids)])
        catalog.drop_segments([s for s in catalog.segments() if s != merged])
    assert catalog.segments() == {merged: ("merged.npy", 5)}
    _, segments, rows = catalog.locations()
    assert segments.tolist() == [merged] * 5 and rows.tolist() == [4, 3, 2, 1, 0]


def test_metadata_is_stored_read_back_and_deleted_with_the_image(
    filled: tuple[Catalog, list[int]],
) -> None:
    catalog, ids = filled
    with catalog.transaction():
        catalog.set_metadata([(ids[0], {"price": 12.5, "title": "a cat"}), (ids[3], {"price": 3})])
    assert catalog.metadata() == {
        ids[0]: {"price": 12.5, "title": "a cat"},
        ids[3]: {"price": 3},
    }
    assert catalog.metadata([ids[3], ids[4]]) == {ids[3]: {"price": 3}}
    with catalog.transaction():
        catalog.set_metadata([(ids[3], {"price": 4, "stock": True})])  # replaces, not merges
        catalog.delete([ids[0], ids[1]])
    assert catalog.metadata() == {ids[3]: {"price": 4, "stock": True}}
    assert catalog.count() == 3 and catalog.get(ids[0]) is None
    assert catalog.by_hash("same") == [catalog.get(ids[3])]


def test_found_reads_records_and_metadata_in_one_query(filled: tuple[Catalog, list[int]]) -> None:
    catalog, ids = filled
    with catalog.transaction():
        catalog.set_metadata([(ids[1], {"price": 7})])
    wanted = [ids[0], ids[1], ids[2], 10_000]  # an id the catalog does not hold is left out
    records, metadata = catalog.found(wanted)
    assert records == catalog.by_ids(wanted) and len(records) == 3
    assert metadata == catalog.metadata(wanted) == {ids[1]: {"price": 7}}


def test_generation_counts_commits_and_a_failed_transaction_changes_nothing(
    filled: tuple[Catalog, list[int]],
) -> None:
    catalog, ids = filled
    start = catalog.generation()
    assert start == 2  # the schema set-up and the fixture's insert
    with catalog.transaction():
        catalog.delete([ids[4]])
    assert catalog.generation() == start + 1
    with pytest.raises(RuntimeError, match="boom"), catalog.transaction():
        catalog.delete([ids[0]])
        raise RuntimeError("boom")
    assert catalog.generation() == start + 1
    assert catalog.get(ids[0]) is not None and catalog.count() == 4


def test_a_second_connection_sees_committed_changes(
    filled: tuple[Catalog, list[int]], catalog_file: Path
) -> None:
    catalog, ids = filled
    reader = Catalog(catalog_file)
    try:
        assert reader.count() == 5 and reader.generation() == catalog.generation()
        with catalog.transaction():
            catalog.delete([ids[1]])
        assert reader.count() == 4 and reader.generation() == catalog.generation()
    finally:
        reader.close()


def test_paths_are_unique(filled: tuple[Catalog, list[int]]) -> None:
    catalog, _ = filled
    segment = next(iter(catalog.segments()))
    with pytest.raises(sqlite3.IntegrityError), catalog.transaction():
        catalog.insert([_image("/photos/cats/a.jpg", segment=segment, row=9)])
    assert catalog.count() == 5


def test_a_schema_1_catalog_is_migrated_forward(catalog_file: Path) -> None:
    Catalog(catalog_file, create=True).close()
    # Make it what version 1 wrote: no metadata table, no segment checksums.
    db = sqlite3.connect(catalog_file)
    db.execute("DROP TABLE metadata")
    db.execute("ALTER TABLE segments DROP COLUMN checksum")
    db.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    db.commit()
    db.close()

    catalog = Catalog(catalog_file)
    try:
        assert _stored_schema_version(catalog_file) == SCHEMA_VERSION == 4
        with catalog.transaction():
            segment = catalog.add_segment("s.npy", 1)
            (image_id,) = catalog.insert([_image("/p/x.jpg", segment=segment, row=0)])
            catalog.set_metadata([(image_id, {"k": "v"})])
        assert catalog.metadata() == {image_id: {"k": "v"}}
    finally:
        catalog.close()


def _stored_schema_version(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])
    finally:
        db.close()


def test_newer_missing_and_foreign_catalogs_are_refused(tmp_path: Path, catalog_file: Path) -> None:
    Catalog(catalog_file, create=True).close()
    db = sqlite3.connect(catalog_file)
    db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(IndexFormatError, match="newer than this lookalike understands"):
        Catalog(catalog_file)

    with pytest.raises(IndexFormatError, match="catalog missing"):
        Catalog(tmp_path / "absent.sqlite")

    unversioned = tmp_path / "other.sqlite"
    db = sqlite3.connect(unversioned)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.commit()
    db.close()
    with pytest.raises(IndexFormatError, match="no schema version"):
        Catalog(unversioned)


def test_a_file_that_is_not_sqlite_is_refused_as_a_damaged_catalog(tmp_path: Path) -> None:
    junk = tmp_path / "catalog.sqlite"
    junk.write_bytes(b"this is not a database, just text " * 100)
    with pytest.raises(IndexFormatError, match=r"catalog is damaged \(file is not a database\)"):
        Catalog(junk)


def test_ids_are_never_reused_even_after_the_newest_image_is_deleted(
    filled: tuple[Catalog, list[int]], catalog_file: Path
) -> None:
    catalog, ids = filled
    newest = max(ids)
    with catalog.transaction():
        catalog.delete([newest])
    with catalog.transaction():
        segment = catalog.add_segment("seg-c.npy", 1)
        (again,) = catalog.insert([_image("/photos/new.jpg", segment=segment, row=0)])
    assert again == newest + 1
    catalog.close()
    reopened = Catalog(catalog_file)  # the counter is stored, not kept in memory
    try:
        with reopened.transaction():
            reopened.delete([again])
        with reopened.transaction():
            (third,) = reopened.insert([_image("/photos/third.jpg", segment=segment, row=0)])
        assert third == again + 1
    finally:
        reopened.close()


def test_a_pinned_block_reads_the_generation_once_for_its_thread(
    filled: tuple[Catalog, list[int]], catalog_file: Path
) -> None:
    catalog, ids = filled
    writer = Catalog(catalog_file)  # another connection, as another process would commit
    start = catalog.generation()
    seen_elsewhere: list[int] = []
    with catalog.pinned():
        with writer.transaction():
            writer.delete([ids[4]])
        assert catalog.generation() == start  # one state for the whole block
        assert catalog.generation(fresh=True) == start + 1  # unless asked for the present
        with catalog.pinned():  # nested: the outer block's state
            assert catalog.generation() == start
        other = threading.Thread(target=lambda: seen_elsewhere.append(catalog.generation()))
        other.start()
        other.join()
    assert seen_elsewhere == [start + 1]  # another thread is not pinned
    assert catalog.generation() == start + 1  # the next block sees the commit
    writer.close()
