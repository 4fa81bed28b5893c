"""The catalog schema: its tables, its version, and the forward migrations that bring an older
catalog up to date when a writer opens it."""

from __future__ import annotations

import sqlite3

from lookalike.catalog_connection import CatalogConnection, translate
from lookalike.errors import IndexFormatError

SCHEMA_VERSION = 4

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY,
    file TEXT NOT NULL UNIQUE,
    rows INTEGER NOT NULL,
    checksum TEXT
);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT NOT NULL,
    label TEXT,
    segment INTEGER NOT NULL REFERENCES segments(id),
    row INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS images_hash ON images(hash);
CREATE INDEX IF NOT EXISTS images_segment ON images(segment);
CREATE TABLE IF NOT EXISTS metadata (image_id INTEGER PRIMARY KEY, fields TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS perceptual_hashes (hash TEXT PRIMARY KEY, phash INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS not_duplicates (
    hash_a TEXT NOT NULL,
    hash_b TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (hash_a, hash_b)
);
"""

#: Forward migrations: MIGRATIONS[v] brings a catalog from schema v to v + 1.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE IF NOT EXISTS metadata (image_id INTEGER PRIMARY KEY, fields TEXT NOT NULL)",
    ),
    # The checksum of each segment file, recorded at commit; NULL for segments written before
    # (unchecked: `lookalike verify` says so).
    2: ("ALTER TABLE segments ADD COLUMN checksum TEXT",),
    # Duplicate finding: each file content's 64-bit perceptual hash (signed, as SQLite stores
    # integers), and the pairs of contents a user said are not duplicates (hash_a < hash_b).
    # Both are keyed by content hash, so they survive renames and re-indexing.
    3: (
        "CREATE TABLE IF NOT EXISTS perceptual_hashes "
        "(hash TEXT PRIMARY KEY, phash INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS not_duplicates (hash_a TEXT NOT NULL, hash_b TEXT NOT NULL, "
        "created TEXT NOT NULL, PRIMARY KEY (hash_a, hash_b))",
    ),
}


def create(db: CatalogConnection) -> None:
    """Create the tables of a new catalog, at the current schema version."""
    with db.transaction():
        for statement in filter(str.strip, SCHEMA.split(";")):
            db.execute(statement)
        db.execute(
            "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")


def check(db: CatalogConnection) -> int:
    """The schema version of an open catalog, after migrating it to the current one if the
    connection may write. Refuses a file that is no catalog, or one newer than this code."""
    try:
        rows = db.execute_untranslated("SELECT value FROM meta WHERE key='schema_version'")
    except sqlite3.DatabaseError as exc:
        translated = translate(exc, db.path)
        if not isinstance(translated, IndexFormatError):
            raise translated from exc
        raise IndexFormatError(
            f"{db.path}: not a readable catalog ({exc}); the index is damaged: restore "
            "it from a backup, or rebuild it with `lookalike index` into a new folder"
        ) from exc
    if not rows:
        raise IndexFormatError(f"{db.path}: catalog has no schema version; it is damaged")
    version = int(rows[0][0])
    if version > SCHEMA_VERSION:
        raise IndexFormatError(
            f"{db.path}: catalog schema {version} is newer than this lookalike "
            f"understands ({SCHEMA_VERSION}); upgrade lookalike"
        )
    if version < SCHEMA_VERSION and not db.read_only:
        with db.transaction():
            for step in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[step]:
                    db.execute(statement)
            db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
        return SCHEMA_VERSION
    return version
