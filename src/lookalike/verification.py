"""Checking an index directory against what was committed, and repairing what can be repaired.

:func:`verify` opens the index read-only (it works on a read-only mount) and checks, in order:
the manifest; the catalog (SQLite's ``integrity_check``, then that every image points at a
listed segment and at a row that segment has); every segment file (present, of the index's
vector dtype and dimension, int8 ranges present where it needs them, the row count the
catalog recorded, and its checksum, or for segments written before checksums existed, finite
values); the HNSW graph (its files' checksums, and
that it holds no image the catalog lacks). Each problem is reported with its file and its fix.

:func:`repair` drops the graph when it is damaged or when vectors had to be replaced (derived
data: the next ``lookalike index`` or ``sync_ann`` rebuilds it), embeds again the images whose
vectors are lost or damaged and whose files are still there, removes those whose files are
gone (nothing is left to search them by), and says what it did.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lookalike.catalog_records import ImageRecord
from lookalike.embedders import create_embedder
from lookalike.embedders.base import Embedder
from lookalike.errors import EmbedderMismatchError, IndexFormatError, LookalikeError
from lookalike.index_options import IndexOptions, ProgressCallback
from lookalike.indexes.base import IdArray
from lookalike.indexes.hnsw import HnswIndex, read_pointer
from lookalike.indexing import reembed
from lookalike.layout import IndexLayout
from lookalike.manifest import Manifest
from lookalike.store import IndexStore, check_is_index


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an index: the part (manifest, catalog, segment, graph), the file,
    what is wrong, and how to fix it."""

    part: str
    path: str
    message: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify` found. ``clean``: nothing is damaged."""

    directory: str
    problems: tuple[Problem, ...]
    images: int = 0
    segments: int = 0
    #: Segments written before checksums were recorded: checked for finite values only.
    unchecked_segments: int = 0
    #: 'none' (no graph saved), 'checked', 'unchecked' (saved before checksums) or 'damaged'.
    graph: str = "none"
    #: Ids the saved graph holds that were removed since (not damage: readers skip them).
    stale_graph_ids: int = 0
    #: Images whose vector is lost or damaged (repair embeds them again).
    lost_images: int = 0
    seconds: float = 0.0
    damaged_segments: tuple[int, ...] = field(default=(), repr=False)
    lost_ids: tuple[int, ...] = field(default=(), repr=False)

    @property
    def clean(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, object]:
        return {
            "directory": self.directory,
            "clean": self.clean,
            "images": self.images,
            "segments": self.segments,
            "unchecked_segments": self.unchecked_segments,
            "graph": self.graph,
            "stale_graph_ids": self.stale_graph_ids,
            "lost_images": self.lost_images,
            "seconds": round(self.seconds, 3),
            "problems": [p.to_json() for p in self.problems],
        }


@dataclass(frozen=True)
class RepairReport:
    """What :func:`repair` did, with the verification before and after."""

    before: VerifyReport
    after: VerifyReport
    graph_dropped: bool
    reembedded: int
    removed: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "graph_dropped": self.graph_dropped,
            "reembedded": self.reembedded,
            "removed": list(self.removed),
            "before": self.before.to_json(),
            "after": self.after.to_json(),
        }


def verify(directory: Path) -> VerifyReport:
    """Check an index without changing it (see the module docstring)."""
    started = time.perf_counter()
    check_is_index(directory)
    layout = IndexLayout(directory)
    try:
        Manifest.read(layout.manifest)
        store = IndexStore.open(directory)
    except LookalikeError as exc:
        part = "manifest" if "manifest" in str(exc) else "catalog"
        where = layout.manifest if part == "manifest" else layout.catalog
        problem = Problem(part, str(where), str(exc), _UNRECOVERABLE)
        return VerifyReport(str(directory), (problem,), seconds=time.perf_counter() - started)
    try:
        return inspect(store, started=started)
    except IndexFormatError as exc:  # pages SQLite's integrity_check did not reach
        problem = Problem("catalog", str(layout.catalog), str(exc), _UNRECOVERABLE)
        return VerifyReport(str(directory), (problem,), seconds=time.perf_counter() - started)
    finally:
        store.close()


_UNRECOVERABLE = (
    "restore the index from a backup, or build it again with `lookalike index PHOTOS --index "
    "NEW_DIR` into a new folder"
)


def inspect(store: IndexStore, *, started: float | None = None) -> VerifyReport:
    """Check an open index (read-only or writable) without changing it."""
    started = time.perf_counter() if started is None else started
    directory = store.directory
    layout = store.layout
    catalog = store.catalog
    problems: list[Problem] = []
    repair_hint = f"run `lookalike verify --index {directory} --repair`"
    try:
        broken_pages = catalog.integrity_problems()
    except LookalikeError as exc:
        broken_pages = [str(exc)]
    if broken_pages:
        problems.append(
            Problem("catalog", str(layout.catalog), "; ".join(broken_pages[:5]), _UNRECOVERABLE)
        )
        return _report(store, problems, started)
    where = catalog.vector_locations()
    lost: set[int] = set()
    unknown = ~np.isin(where.segments, np.array(sorted(where.files), dtype=np.int64))
    if unknown.any():
        lost |= set(where.ids[unknown].tolist())
        problems.append(
            Problem(
                "catalog",
                str(layout.catalog),
                f"{int(unknown.sum())} images point at segments the catalog does not list "
                f"(e.g. image {int(where.ids[unknown][0])} at segment "
                f"{int(where.segments[unknown][0])})",
                f"{repair_hint} (embeds them again from their files)",
            )
        )
    limits = np.array(
        [where.files[int(s)].rows if int(s) in where.files else 1 << 62 for s in where.segments],
        dtype=np.int64,
    )
    outside = (where.rows < 0) | (where.rows >= limits)
    if outside.any():
        lost |= set(where.ids[outside].tolist())
        problems.append(
            Problem(
                "catalog",
                str(layout.catalog),
                f"{int(outside.sum())} images point at rows their segment does not have "
                f"(e.g. image {int(where.ids[outside][0])} at row {int(where.rows[outside][0])})",
                f"{repair_hint} (embeds them again from their files)",
            )
        )
    damaged: list[int] = []
    for segment in sorted(where.files.values(), key=lambda s: s.id):
        problem = store.segment_file_problem(segment)
        if problem is None:
            continue
        damaged.append(segment.id)
        users = where.ids[where.segments == segment.id]
        lost |= set(users.tolist())
        problems.append(
            Problem(
                "segment",
                str(layout.segment(segment.file)),
                f"{problem} ({len(users)} images' vectors are there)",
                f"{repair_hint} (embeds those images again from their files), or "
                "`lookalike index` on their folder",
            )
        )
    graph_state, stale, graph_problems = _check_graph(store, where.ids)
    problems += graph_problems
    return _report(
        store,
        problems,
        started,
        images=len(where.ids),
        segments=len(where.files),
        unchecked=sum(1 for s in where.files.values() if s.checksum is None),
        graph=graph_state,
        stale=stale,
        damaged=tuple(damaged),
        lost=tuple(sorted(lost)),
    )


def _report(
    store: IndexStore,
    problems: list[Problem],
    started: float,
    *,
    images: int = 0,
    segments: int = 0,
    unchecked: int = 0,
    graph: str = "none",
    stale: int = 0,
    damaged: tuple[int, ...] = (),
    lost: tuple[int, ...] = (),
) -> VerifyReport:
    return VerifyReport(
        str(store.directory),
        tuple(problems),
        images=images,
        segments=segments,
        unchecked_segments=unchecked,
        graph=graph,
        stale_graph_ids=stale,
        lost_images=len(lost),
        seconds=time.perf_counter() - started,
        damaged_segments=damaged,
        lost_ids=lost,
    )


def _check_graph(store: IndexStore, catalog_ids: IdArray) -> tuple[str, int, list[Problem]]:
    """The graph's state ('none', 'checked', 'unchecked', 'damaged'), how many of its ids the
    catalog no longer holds, and its problems."""
    folder = store.layout.graph
    fix = (
        f"run `lookalike verify --index {store.directory} --repair` (drops the graph; the next "
        "`lookalike index` rebuilds it); searches meanwhile can use --index-type exact"
    )
    try:
        info = read_pointer(folder)
    except LookalikeError as exc:
        return "damaged", 0, [Problem("graph", str(folder), str(exc), fix)]
    if info is None:
        return "none", 0, []
    damage = info.damage(folder)
    if damage:
        return "damaged", 0, [Problem("graph", str(folder / info.file), d, fix) for d in damage]
    try:
        loaded = HnswIndex.load(folder, metric=store.manifest.metric)
    except LookalikeError as exc:
        return "damaged", 0, [Problem("graph", str(folder / info.file), str(exc), fix)]
    state = "checked" if info.checksums else "unchecked"
    if loaded is None:  # the pointer went away meanwhile (a writer dropped the graph)
        return "none", 0, []
    # Ids the catalog no longer holds (removed since the graph was saved) are stale, not
    # damage: readers drop them in memory and the next sync marks them deleted.
    # (Sorted arrays, not sets of Python ints: ~60 bytes an id, gigabytes at ten million.)
    stale = len(np.setdiff1d(loaded[0].id_array(), catalog_ids))
    return state, stale, []


def checked_embedder(store: IndexStore, *, threads: int | None = None) -> Embedder:
    """The embedder that built the index, refused if its installed weights differ."""
    manifest = store.manifest
    model = create_embedder(manifest.embedder, threads=threads)
    if model.weights_digest != manifest.weights_digest or model.dim != manifest.dim:
        raise EmbedderMismatchError(
            f"{store.directory}: the installed weights of {manifest.embedder.name} differ from "
            "those that built this index; vectors cannot be re-embedded: rebuild the index"
        )
    return model


def repair(
    directory: Path,
    *,
    embedder: Callable[[IndexStore], Embedder] = checked_embedder,
    options: IndexOptions | None = None,
    progress: ProgressCallback | None = None,
) -> RepairReport:
    """Repair what :func:`verify` finds that can be repaired (see the module docstring). A
    damaged manifest or catalog cannot be: the report's ``after`` still lists it."""
    before = verify(directory)
    damaged_catalog = any(p.part in ("manifest", "catalog") for p in before.problems)
    if before.clean or (damaged_catalog and not before.lost_ids):
        return RepairReport(before, before, False, 0, ())
    store = IndexStore.open(directory, writable=True)
    try:
        from lookalike.indexes.graph_folder import GraphFolder

        found = inspect(store)
        dropped = False
        if found.graph == "damaged" or found.lost_ids:
            dropped = GraphFolder(store).drop()
        removed: list[str] = []
        reembedded = 0
        if found.lost_ids:
            lost = _records(store, found.lost_ids)
            model: list[Embedder] = []

            def make() -> Embedder:
                if not model:
                    model.append(embedder(store))
                return model[0]

            report = reembed(
                store, make, lost, options=options or IndexOptions(), progress=progress
            )
            reembedded = report.embedded
            removed = [s.path for s in report.skipped]
            store.release_segments(set(found.damaged_segments))
        after = inspect(store)
    finally:
        store.close()
    return RepairReport(before, after, dropped, reembedded, tuple(removed))


def _records(store: IndexStore, ids: tuple[int, ...]) -> list[ImageRecord]:
    return sorted(store.catalog.by_ids(list(ids)).values(), key=lambda r: r.id)


__all__ = [
    "Problem",
    "RepairReport",
    "VerifyReport",
    "checked_embedder",
    "inspect",
    "repair",
    "verify",
]
