"""Every change to an index goes through an IndexWriter: folders and files indexed, vectors
added, images removed, metadata attached, and the derived data (the HNSW graph, the neighbour
statistic of the hubness correction) kept in step."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from lookalike.catalog_records import ImageEntry, ImageRecord
from lookalike.collection import Collection
from lookalike.embedders.base import Embedder, l2_normalise
from lookalike.errors import InvalidInputError, UnknownImageError
from lookalike.index_options import IndexOptions, IndexProgress, IndexReport, ProgressCallback
from lookalike.indexes.graph_folder import GraphFolder
from lookalike.indexes.hnsw import GraphInfo
from lookalike.indexes.registry import resolve_index_type
from lookalike.indexing import sync_files, sync_folder
from lookalike.metadata import MetadataTable
from lookalike.query.reranking import default_rerankers
from lookalike.rerank_settings import RerankOverride, RerankSettings
from lookalike.store import IndexStore

if TYPE_CHECKING:
    from lookalike.feeds.feed_file import Feed
    from lookalike.feeds.feed_report import FeedReport
    from lookalike.feeds.fetching import FetchOptions


Vectors = npt.NDArray[np.float32]


class IndexWriter:
    """Writes one index directory. ``embedder`` gives the index's model (built on first use);
    ``collection`` and ``graphs`` are the read views that graph upkeep works from."""

    def __init__(
        self,
        store: IndexStore,
        embedder: Callable[[], Embedder],
        collection: Collection,
        graphs: GraphFolder,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._collection = collection
        self._graphs = graphs

    @classmethod
    def open(cls, directory: Path, embedder: Callable[[], Embedder]) -> IndexWriter:
        """Open ``directory`` for writing (taking its lock until :meth:`close`)."""
        store = IndexStore.open(directory, writable=True)
        graphs = GraphFolder(store)
        return cls(store, embedder, Collection(store, graphs), graphs)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def collection(self) -> Collection:
        return self._collection

    def index_folder(
        self,
        folder: Path | str,
        *,
        options: IndexOptions | None = None,
        progress: ProgressCallback | None = None,
    ) -> IndexReport:
        """Bring the index up to date with ``folder`` (see ``lookalike.indexing.sync_folder``)."""
        options = options or IndexOptions()
        self._set_index_type(options)
        self._set_reranking(options)
        report = sync_folder(
            self._store, self._embedder, Path(folder), options=options, progress=progress
        )
        self._keep_graph(options, progress)
        self.keep_neighbours()
        return report

    def index_files(
        self,
        paths: Sequence[Path | str],
        *,
        options: IndexOptions | None = None,
        progress: ProgressCallback | None = None,
        root: Path | str | None = None,
        sync_graph: bool = True,
    ) -> IndexReport:
        """Index these image files (see ``lookalike.indexing.sync_files``); with ``root``,
        they get the labels indexing that folder gives them. ``sync_graph=False`` leaves the
        saved HNSW graph behind (readers add later commits to it in memory; the next sync
        catches up): for small, frequent batches, where saving a large graph would cost more
        than the batch."""
        options = options or IndexOptions()
        self._set_index_type(options)
        self._set_reranking(options)
        base = Path(root) if root is not None else None
        report = sync_files(
            self._store, self._embedder, paths, options=options, progress=progress, root=base
        )
        if sync_graph:
            self._keep_graph(options, progress)
        self.keep_neighbours()
        return report

    def index_feed(
        self,
        feed: Feed,
        *,
        options: IndexOptions | None = None,
        fetch: FetchOptions | None = None,
        retry_failed: bool = False,
        progress: ProgressCallback | None = None,
    ) -> FeedReport:
        """Bring the index up to date with a product feed (see ``lookalike.feeds.feed_sync``):
        images are downloaded into the index's download cache while earlier ones are embedded;
        images that failed in the last run are tried again only with ``retry_failed``."""
        from lookalike.feeds.feed_sync import sync_feed
        from lookalike.feeds.fetching import FetchOptions

        options = options or IndexOptions()
        self._set_index_type(options)
        self._set_reranking(options)
        report = sync_feed(
            self._store,
            self._embedder,
            feed,
            options=options,
            fetch=fetch or FetchOptions(),
            retry_failed=retry_failed,
            progress=progress,
        )
        self._keep_graph(options, progress)
        self.keep_neighbours()
        return report

    def _set_index_type(self, options: IndexOptions) -> None:
        if options.index_type is not None:
            resolve_index_type(options.index_type)
            if options.index_type != self._store.manifest.index_type:
                self._store.set_index_type(options.index_type)

    def _set_reranking(self, options: IndexOptions) -> None:
        self.set_reranking(RerankOverride(expansion=options.expansion, hubness=options.hubness))

    def set_reranking(self, override: RerankOverride) -> RerankSettings:
        """Record which re-ranking stages the index's searches use (None in ``override``:
        keep the present setting); switching hubness on computes the neighbour statistic."""
        manifest = self._store.manifest
        settings = override.apply(manifest.reranking)
        if settings != manifest.reranking:
            default_rerankers(replace(manifest, reranking=settings))  # refused unless cosine
            self._store.set_reranking(settings)
            self.keep_neighbours()
        return settings

    def keep_neighbours(self) -> bool:
        """Bring the saved neighbour statistic up to date where the index's queries use the
        hubness correction (after every commit; see indexes/neighbour_file.py); whether they
        do."""
        settings = self._store.manifest.reranking
        if not settings.hubness:
            return False
        snapshot = self._collection.snapshot()
        self._collection.neighbours.sync(
            snapshot.table.ids, self._collection.vector_index, settings.hubness_k
        )
        return True

    def _keep_graph(self, options: IndexOptions, progress: ProgressCallback | None) -> None:
        if not self.wants_graph():
            return
        if progress is not None:
            progress(IndexProgress("ann", 0, 1))
        self.sync_ann(pca_dim=options.pca_dim, whiten=options.whiten, rerank=options.rerank)
        if progress is not None:
            progress(IndexProgress("ann", 1, 1))

    def wants_graph(self) -> bool:
        """Whether the index's type asks for an HNSW graph at its present size."""
        kind = resolve_index_type(self._store.manifest.index_type)
        return kind.wants_graph(self._collection.count())

    def sync_ann(
        self,
        *,
        pca_dim: int | None = None,
        whiten: bool | None = None,
        rerank: int | None = None,
    ) -> GraphInfo:
        """Bring the HNSW graph up to date with the catalog and measure its recall@10."""
        return self._graphs.sync(pca_dim=pca_dim, whiten=whiten, rerank=rerank)

    def add_vectors(
        self,
        paths: Sequence[str],
        vectors: npt.NDArray[np.float32],
        *,
        labels: Sequence[str | None] | None = None,
    ) -> list[int]:
        """Add precomputed vectors under the given path names (e.g. from a distributed job)."""
        manifest = self._store.manifest
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(paths), manifest.dim):
            raise InvalidInputError(
                f"vectors must have shape ({len(paths)}, {manifest.dim}), got {vectors.shape}"
            )
        if manifest.metric == "cosine":
            with np.errstate(invalid="ignore"):  # non-finite rows are refused by the store
                vectors = l2_normalise(vectors)
        tags = list(labels) if labels is not None else [None] * len(paths)
        ids = self._store.append(
            vectors,
            [ImageEntry(str(p), 0, 0, "", tag) for p, tag in zip(paths, tags, strict=True)],
        )
        self.keep_neighbours()
        return ids

    def remove(self, paths: Sequence[Path | str]) -> int:
        """Remove images (or every image under a folder). Unknown paths remove nothing and raise."""
        catalog = self._store.catalog
        ids: set[int] = set()
        unknown = []
        for raw in paths:
            path = str(Path(raw).expanduser().resolve())
            record = catalog.by_path(path) or catalog.by_path(str(raw))
            found = {record.id} if record else {r.id for r in catalog.under(path).values()}
            if not found:
                unknown.append(str(raw))
            ids |= found
        if unknown:
            raise InvalidInputError(
                f"not in the index: {', '.join(unknown)}; nothing was removed "
                "(see `lookalike info` for what is indexed)"
            )
        with catalog.transaction():
            catalog.delete(ids)
        self.keep_neighbours()
        return len(ids)

    def dismiss_pair(self, first_id: int, second_id: int) -> bool:
        """Record that two indexed images are not duplicates: later duplicate scans leave
        their pair out. Stored by content, so it survives renames and re-indexing; whether
        the pair is new."""
        catalog = self._store.catalog
        records = []
        for image_id in (first_id, second_id):
            record = catalog.get(int(image_id))
            if record is None:
                raise UnknownImageError(f"image id {image_id} is not in the index")
            if not record.hash:
                raise InvalidInputError(
                    f"{record.path} (id {image_id}) has no content hash (it was added as a "
                    "vector): only indexed files can be marked as not duplicates"
                )
            records.append(record)
        one, other = records
        if one.hash == other.hash:
            raise InvalidInputError(
                f"{one.path} and {other.path} have the same content (identical bytes): they are "
                "duplicates by definition and cannot be marked as not duplicates"
            )
        low, high = sorted((one.hash, other.hash))
        created = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        with catalog.transaction():
            return catalog.add_not_duplicate(low, high, created)

    def set_metadata(self, table: MetadataTable) -> tuple[int, list[str]]:
        """Attach metadata rows to indexed images by path; returns (matched, unmatched paths)."""
        catalog = self._store.catalog
        matched: list[tuple[int, dict[str, object]]] = []
        unmatched = []
        for path, fields in table.rows.items():
            record = catalog.by_path(path)
            if record is None:
                unmatched.append(path)
            else:
                matched.append((record.id, fields))
        with catalog.transaction():
            catalog.set_metadata(matched)
        return len(matched), unmatched

    def move_image(self, old_path: str, new_path: str) -> bool:
        """Point the image indexed at ``old_path`` at ``new_path`` (its file was moved there),
        keeping its vector, label and metadata; False when ``old_path`` is not indexed."""
        catalog = self._store.catalog
        record = catalog.by_path(old_path)
        if record is None:
            return False
        stat = Path(new_path).stat()
        with catalog.transaction():
            catalog.move(
                record.id,
                path=new_path,
                size=stat.st_size,
                mtime_ns=stat.st_mtime_ns,
                label=record.label,
            )
        return True

    def refingerprint(self, path: str, content_hash: str) -> bool:
        """Record that the file indexed at ``path`` now holds other bytes (``content_hash``;
        size and mtime read from the file), keeping its vector; False when it is not indexed."""
        catalog = self._store.catalog
        record = catalog.by_path(path)
        if record is None:
            return False
        stat = Path(path).stat()
        with catalog.transaction():
            catalog.refingerprint(
                record.id, size=stat.st_size, mtime_ns=stat.st_mtime_ns, content_hash=content_hash
            )
        return True

    def forget(self, path: str) -> tuple[ImageRecord, dict[str, object], Vectors] | None:
        """The record, metadata and vector of the image indexed at ``path`` (None when it is
        not indexed), for a caller about to remove it that may put it back (``restore``)."""
        record = self._store.catalog.by_path(path)
        if record is None:
            return None
        metadata = self._store.catalog.metadata([record.id]).get(record.id, {})
        return record, metadata, self._store.vectors_for([record.id])[0]

    def restore(
        self, entries: Sequence[tuple[ImageEntry, dict[str, object]]], vectors: Vectors
    ) -> list[int]:
        """Index files again with the vectors they had (no embedding) and their metadata, in
        one transaction; returns their new ids (ids are never reused)."""
        if not entries:
            return []
        catalog = self._store.catalog
        with catalog.transaction():
            ids = self._store.append(np.asarray(vectors, dtype=np.float32), [e for e, _ in entries])
            catalog.set_metadata(
                (i, fields) for i, (_, fields) in zip(ids, entries, strict=True) if fields
            )
        self.keep_neighbours()
        return ids

    def batch(self) -> AbstractContextManager[None]:
        """Group the changes made in the block into one commit of the catalog (e.g. the
        index following a batch of file moves)."""
        return self._store.catalog.transaction()

    def holds(self, path: str) -> bool:
        """Whether an image is indexed at exactly ``path``."""
        return self._store.catalog.by_path(path) is not None

    def remove_path(self, path: str) -> bool:
        """Remove the image indexed at exactly ``path``; False when it is not indexed."""
        catalog = self._store.catalog
        record = catalog.by_path(path)
        if record is None:
            return False
        with catalog.transaction():
            catalog.delete([record.id])
        return True


__all__ = ["IndexWriter"]
