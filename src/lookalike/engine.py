"""SearchEngine: the one object the CLI, the REST API and Python users drive."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import numpy.typing as npt
from PIL import Image

from lookalike import __version__
from lookalike.catalog import ImageRecord, NewImage
from lookalike.embedders import DEFAULT_EMBEDDER, create_embedder, resolve_spec
from lookalike.embedders.base import Embedder, EmbedderSpec, l2_normalise
from lookalike.errors import (
    EmbedderMismatchError,
    InvalidInputError,
    UnknownImageError,
)
from lookalike.filters import SearchFilter, sort_key
from lookalike.grouping import group_duplicates
from lookalike.imaging import load_prepared, prepare
from lookalike.indexes.base import distance_from_score
from lookalike.indexes.exact import ExactIndex
from lookalike.indexes.graph_folder import GraphFolder
from lookalike.indexes.hnsw import GraphInfo, HnswIndex
from lookalike.indexing import (
    IndexOptions,
    IndexProgress,
    IndexReport,
    ProgressCallback,
    sync_folder,
)
from lookalike.matches import Match, SearchResult
from lookalike.metadata import MetadataTable
from lookalike.store import METRICS, IndexStore, Manifest, check_is_index

if TYPE_CHECKING:
    from lookalike.indexes.milvus import MilvusIndex, SyncReport

Query = str | Path | bytes | Image.Image
INDEX_TYPES = ("auto", "exact", "hnsw")
#: From this many images on, an index of type "auto" searches an HNSW graph.
ANN_THRESHOLD = 100_000


@dataclass(frozen=True)
class IndexInfo:
    """What ``lookalike info`` shows."""

    directory: str
    count: int
    embedder: str
    embedder_params: dict[str, object]
    weights_digest: str
    dim: int
    metric: str
    index_type: str
    search_index: str
    ann_recall_at_10: float | None
    ann_params: dict[str, object] | None
    format_version: int
    size_bytes: int
    created: str
    lookalike_version: str

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


class SearchEngine:
    """An index directory plus the embedder that made it.

    Example:
        >>> with SearchEngine.create("photos.idx") as engine:  # doctest: +SKIP
        ...     engine.index_folder("photos/")
        ...     results = engine.search(["query.jpg"], k=5)
    """

    def __init__(self, store: IndexStore, *, threads: int | None = None) -> None:
        self._store = store
        self._threads = threads
        self._embedder: Embedder | None = None
        self._index: ExactIndex | None = None
        self._index_generation = -1
        self._cache: dict[str, object] = {}
        self._graphs = GraphFolder(store)
        self._remote: MilvusIndex | None = None

    # -- opening ----------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: Path | str,
        *,
        embedder: str | EmbedderSpec = DEFAULT_EMBEDDER,
        metric: str = "cosine",
        index_type: str = "auto",
        threads: int | None = None,
    ) -> SearchEngine:
        """Create a new, empty index in ``directory`` (new or empty)."""
        if metric not in METRICS:
            raise InvalidInputError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        _check_index_type(index_type)
        model = create_embedder(resolve_spec(embedder), threads=threads)
        manifest = Manifest(
            embedder=model.spec,
            weights_digest=model.weights_digest,
            dim=model.dim,
            metric=metric,
            index_type=index_type,
            lookalike_version=__version__,
        )
        engine = cls(IndexStore.create(Path(directory), manifest), threads=threads)
        engine._embedder = model
        return engine

    @classmethod
    def open(
        cls,
        directory: Path | str,
        *,
        writable: bool = False,
        embedder: str | EmbedderSpec | None = None,
        metric: str | None = None,
        threads: int | None = None,
    ) -> SearchEngine:
        """Open an existing index. ``embedder`` and ``metric``, when given, must match it."""
        engine = cls(IndexStore.open(Path(directory), writable=writable), threads=threads)
        try:
            engine._check_request(embedder, metric)
        except BaseException:
            engine.close()
            raise
        return engine

    @classmethod
    def open_or_create(
        cls,
        directory: Path | str,
        *,
        embedder: str | EmbedderSpec | None = None,
        metric: str | None = None,
        threads: int | None = None,
    ) -> SearchEngine:
        """Open ``directory`` for writing if it is an index, else create one there."""
        path = Path(directory)
        if (path / "manifest.json").exists():
            return cls.open(path, writable=True, embedder=embedder, metric=metric, threads=threads)
        return cls.create(
            path, embedder=embedder or DEFAULT_EMBEDDER, metric=metric or "cosine", threads=threads
        )

    def _check_request(self, embedder: str | EmbedderSpec | None, metric: str | None) -> None:
        manifest = self._store.manifest
        if metric is not None and metric != manifest.metric:
            raise InvalidInputError(
                f"{self._store.directory}: index uses metric {manifest.metric!r}, not {metric!r}; "
                "the metric is fixed when an index is created: use a new --index folder"
            )
        if embedder is None:
            return
        wanted = resolve_spec(embedder)
        same_name = wanted.name == manifest.embedder.name
        # Model files (onnx, trained folders) are told apart by their path.
        same_file = wanted.name not in ("onnx", "trained") or wanted.params.get(
            "path"
        ) == manifest.embedder.params.get("path")
        if not (same_name and same_file):
            raise EmbedderMismatchError(
                f"{self._store.directory}: index was built with embedder "
                f"{_describe(manifest.embedder)}, not {_describe(wanted)}; vectors of different "
                "models cannot be compared: use a new --index folder for the other embedder"
            )

    def close(self) -> None:
        if self._remote is not None:
            self._remote.close()
        self._store.close()

    def __enter__(self) -> SearchEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- properties -------------------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        return self._store.directory

    @property
    def manifest(self) -> Manifest:
        return self._store.manifest

    def __len__(self) -> int:
        return self._store.catalog.count()

    @property
    def embedder(self) -> Embedder:
        """The index's embedder, built on first use and checked against the recorded weights."""
        if self._embedder is None:
            model = create_embedder(self._store.manifest.embedder, threads=self._threads)
            recorded = self._store.manifest.weights_digest
            if model.weights_digest != recorded or model.dim != self._store.manifest.dim:
                raise EmbedderMismatchError(
                    f"{self._store.directory}: the installed weights of "
                    f"{_describe(model.spec)} (sha256 {model.weights_digest[:12]}…, dim "
                    f"{model.dim}) differ from those that built this index (sha256 "
                    f"{recorded[:12]}…, dim {self._store.manifest.dim}); rebuild the index"
                )
            self._embedder = model
        return self._embedder

    # -- writing ----------------------------------------------------------------------------------

    def index_folder(
        self,
        folder: Path | str,
        *,
        options: IndexOptions | None = None,
        progress: ProgressCallback | None = None,
    ) -> IndexReport:
        """Bring the index up to date with ``folder`` (see ``lookalike.indexing.sync_folder``)."""
        options = options or IndexOptions()
        if options.index_type is not None:
            _check_index_type(options.index_type)
            if options.index_type != self.manifest.index_type:
                self._store.set_index_type(options.index_type)
        report = sync_folder(
            self._store, lambda: self.embedder, Path(folder), options=options, progress=progress
        )
        if self._wants_graph():
            if progress is not None:
                progress(IndexProgress("ann", 0, 1))
            self.sync_ann(pca_dim=options.pca_dim, whiten=options.whiten, rerank=options.rerank)
            if progress is not None:
                progress(IndexProgress("ann", 1, 1))
        return report

    def attach_milvus(
        self, uri: str, *, collection: str | None = None, token: str | None = None
    ) -> SyncReport:
        """Serve searches from a Milvus collection (a cluster at ``http://host:19530``, or
        milvus-lite at a local ``.db`` path): the index's vectors are pushed there (only what
        changed), and searches without filters go to Milvus from then on."""
        from lookalike.indexes.milvus import MilvusIndex

        name = (
            collection
            or "lookalike_"
            + hashlib.sha256(str(self.directory.resolve()).encode()).hexdigest()[:16]
        )
        remote = MilvusIndex(
            uri, name, dim=self.manifest.dim, metric=self.manifest.metric, token=token
        )
        exact = self.vector_index()
        report = remote.sync_from(exact.ids, exact.vectors)
        if self._remote is not None:
            self._remote.close()
        self._remote = remote
        return report

    def search_index_type(self) -> str:
        """The structure searches use now: 'hnsw' where the index wants a graph (chosen, or
        automatic from ANN_THRESHOLD images on) and one has been built, else 'exact'. Vectors
        added through the API get a graph at the next ``index_folder`` or ``sync_ann``."""
        return "hnsw" if self._wants_graph() and self._graphs.exists() else "exact"

    def _wants_graph(self) -> bool:
        chosen = self.manifest.index_type
        return chosen == "hnsw" or (chosen == "auto" and len(self) >= ANN_THRESHOLD)

    def sync_ann(
        self,
        *,
        pca_dim: int | None = None,
        whiten: bool | None = None,
        rerank: int | None = None,
    ) -> GraphInfo:
        """Bring the HNSW graph up to date with the catalog and measure its recall@10.
        ``pca_dim`` (0: none; default: 128 for big collections of >256-d vectors), ``whiten``
        and ``rerank`` set the graph's projection; None keeps what the saved graph has."""
        return self._graphs.sync(self.vector_index(), pca_dim=pca_dim, whiten=whiten, rerank=rerank)

    def add_vectors(
        self,
        paths: Sequence[str],
        vectors: npt.NDArray[np.float32],
        *,
        labels: Sequence[str | None] | None = None,
    ) -> list[int]:
        """Add precomputed vectors under the given path names (e.g. from a distributed job)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(paths), self.manifest.dim):
            raise InvalidInputError(
                f"vectors must have shape ({len(paths)}, {self.manifest.dim}), got {vectors.shape}"
            )
        if self.manifest.metric == "cosine":
            vectors = l2_normalise(vectors)
        tags = list(labels) if labels is not None else [None] * len(paths)
        catalog = self._store.catalog
        with catalog.transaction():
            segment = catalog.add_segment(self._store.write_segment(vectors), len(vectors))
            return catalog.insert(
                [
                    NewImage(str(p), 0, 0, "", tag, segment, row)
                    for row, (p, tag) in enumerate(zip(paths, tags, strict=True))
                ]
            )

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
        return len(ids)

    # -- searching --------------------------------------------------------------------------------

    def embed(self, queries: Sequence[Query]) -> npt.NDArray[np.float32]:
        """Embed query images (paths, file bytes or PIL images) with the index's embedder."""
        model = self.embedder
        spec = model.input_spec
        pixels = [
            prepare(q.convert("RGB"), spec)
            if isinstance(q, Image.Image)
            else load_prepared(q, spec)
            for q in queries
        ]
        if not pixels:
            return np.zeros((0, model.dim), dtype=np.float32)
        return np.concatenate(
            [model.embed(np.stack(pixels[i : i + 32])) for i in range(0, len(pixels), 32)]
        )

    def search(
        self,
        queries: Sequence[Query],
        *,
        k: int = 10,
        where: SearchFilter | None = None,
        sort_by: str | None = None,
    ) -> list[SearchResult]:
        """The k most similar indexed images for each query image, best first.

        ``where`` keeps only images that pass a filter (label, folder, numeric metadata range);
        ``sort_by`` reorders each query's k matches by a numeric metadata field, ascending.
        """
        vectors = self.embed(queries)
        names = [_query_name(q) for q in queries]
        found = self.search_vectors(vectors, k=k, where=where, sort_by=sort_by)
        return [SearchResult(n, m) for n, m in zip(names, found, strict=True)]

    def search_by_id(
        self,
        image_id: int,
        *,
        k: int = 10,
        where: SearchFilter | None = None,
        sort_by: str | None = None,
    ) -> SearchResult:
        """ "More like this": the k images most similar to an indexed one, itself excluded."""
        record = self._store.catalog.get(image_id)
        if record is None:
            raise UnknownImageError(f"image id {image_id} is not in the index")
        vector = self._store.vectors_for([image_id])
        if where is None or where.empty:
            # One extra result stands in for the image itself, so unfiltered searches keep
            # using the fastest structure (HNSW, Milvus) instead of an exact scan.
            found = self.search_vectors(vector, k=k + 1, sort_by=sort_by)[0]
            others = [m for m in found if m.id != image_id][:k]
            matches = tuple(replace(m, rank=r) for r, m in enumerate(others, start=1))
        else:
            matches = self.search_vectors(
                vector, k=k, where=where, sort_by=sort_by, exclude=image_id
            )[0]
        return SearchResult(record.path, matches)

    def search_vectors(
        self,
        vectors: npt.NDArray[np.float32],
        *,
        k: int = 10,
        where: SearchFilter | None = None,
        sort_by: str | None = None,
        exclude: int | None = None,
    ) -> list[tuple[Match, ...]]:
        """Matches for query vectors made by the same embedder (shape (n, dim))."""
        dim = self.manifest.dim
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[None, :]
        if vectors.ndim != 2 or vectors.shape[1] != dim:
            raise EmbedderMismatchError(
                f"query vectors have shape {vectors.shape}, but this index holds {dim}-d vectors "
                f"from {_describe(self.manifest.embedder)}; embed queries with the same model"
            )
        if k < 1:
            raise InvalidInputError(f"k must be at least 1, got {k}")
        filtered = (where is not None and not where.empty) or exclude is not None
        if not filtered and self._remote is not None:
            scores, ids = self._remote.search(vectors, k)
        elif not filtered and self.search_index_type() == "hnsw":
            scores, ids = self.ann_index().search(vectors, k)
        else:  # filters are exact: every candidate is checked
            index = self.vector_index()
            allowed = None
            if where is not None and not where.empty:
                allowed = where.mask(index.ids, self._records(), self._metadata())
            if exclude is not None:
                allowed = np.ones(len(index), bool) if allowed is None else allowed.copy()
                allowed[index.ids == exclude] = False
            scores, ids = index.search(vectors, k, allowed=allowed)
        wanted = np.unique(ids[ids >= 0]).tolist()
        records = self._store.catalog.by_ids(wanted)
        metadata = self._store.catalog.metadata(wanted)
        metric = self.manifest.metric
        results = []
        for row_scores, row_ids in zip(scores, ids, strict=True):
            matches = [
                Match(
                    rank=0,
                    id=image_id,
                    path=records[image_id].path,
                    score=score,
                    distance=distance_from_score(metric, score),
                    label=records[image_id].label,
                    metadata=metadata.get(image_id, {}),
                )
                for score, image_id in zip(row_scores.tolist(), row_ids.tolist(), strict=True)
                if image_id >= 0 and image_id in records
            ]
            if sort_by is not None:
                matches.sort(key=lambda m: sort_key(sort_by, m.metadata))
            results.append(tuple(replace(m, rank=r) for r, m in enumerate(matches, start=1)))
        return results

    def vector_index(self) -> ExactIndex:
        """The in-memory exact index, reloaded when another process has committed changes."""
        self._follow_commits()
        if self._index is None:
            ids, vectors = self._store.load_vectors()
            self._index = ExactIndex(ids, vectors, metric=self.manifest.metric)
        return self._index

    def _follow_commits(self) -> None:
        """Drop what was read from the catalog if another commit has happened since."""
        generation = self._store.catalog.generation()
        if generation != self._index_generation:
            self._index = None
            self._cache.clear()
            self._index_generation = generation

    def ann_index(self) -> HnswIndex:
        """The HNSW graph, with any images committed since it was saved applied in memory."""
        return self._graphs.current()

    def _records(self) -> dict[int, ImageRecord]:
        self._follow_commits()
        if "records" not in self._cache:
            self._cache["records"] = {r.id: r for r in self._store.catalog.all_records()}
        return cast(dict[int, ImageRecord], self._cache["records"])

    def _metadata(self) -> dict[int, dict[str, object]]:
        self._follow_commits()
        if "metadata" not in self._cache:
            self._cache["metadata"] = self._store.catalog.metadata()
        return cast(dict[int, dict[str, object]], self._cache["metadata"])

    def record(self, image_id: int) -> tuple[ImageRecord, dict[str, object]]:
        """An indexed image's catalog record and metadata."""
        record = self._store.catalog.get(image_id)
        if record is None:
            raise UnknownImageError(f"image id {image_id} is not in the index")
        return record, self._store.catalog.metadata([image_id]).get(image_id, {})

    def duplicates(self, *, threshold: float = 0.75, k: int = 10) -> list[list[ImageRecord]]:
        """Groups of near-duplicate images (see :mod:`lookalike.grouping`), largest first."""
        if self.manifest.metric != "cosine":
            raise InvalidInputError(
                "duplicate grouping needs a cosine index (its threshold is a cosine similarity)"
            )
        index = self.vector_index()
        groups = group_duplicates(index.ids, index.vectors, threshold=threshold, k=k)
        records = self._records()
        return [[records[i] for i in group.ids if i in records] for group in groups]

    def record_by_path(self, path: str) -> ImageRecord:
        record = self._store.catalog.by_path(path)
        if record is None:
            raise UnknownImageError(f"{path}: not in the index")
        return record

    def labels(self) -> dict[str, int]:
        """Label -> number of images (labels are the first subfolder of an indexed folder)."""
        counts: dict[str, int] = {}
        for record in self._records().values():
            if record.label is not None:
                counts[record.label] = counts.get(record.label, 0) + 1
        return dict(sorted(counts.items()))

    def numeric_fields(self) -> list[str]:
        """Metadata fields that hold numbers (those a search can filter and sort by)."""
        names = {
            name
            for fields in self._metadata().values()
            for name, value in fields.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        return sorted(names)

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

    def export_vectors(self) -> tuple[list[str], npt.NDArray[np.float32]]:
        """(paths, vectors) of every indexed image, in id order: the embeddings themselves."""
        index = self.vector_index()
        records = self._store.catalog.by_ids(index.ids.tolist())
        return [records[i].path for i in index.ids.tolist()], index.vectors.copy()

    def info(self) -> IndexInfo:
        manifest = self.manifest
        graph = self._graphs.saved()
        return IndexInfo(
            directory=str(self.directory),
            count=len(self),
            embedder=manifest.embedder.name,
            embedder_params=dict(manifest.embedder.params),
            weights_digest=manifest.weights_digest,
            dim=manifest.dim,
            metric=manifest.metric,
            index_type=manifest.index_type,
            search_index=self.search_index_type(),
            ann_recall_at_10=graph.recall_at_10 if graph else None,
            ann_params=asdict(graph.params) if graph else None,
            format_version=manifest.format_version,
            size_bytes=self._store.size_on_disk(),
            created=manifest.created,
            lookalike_version=manifest.lookalike_version,
        )


def _check_index_type(index_type: str) -> None:
    if index_type not in INDEX_TYPES:
        raise InvalidInputError(
            f"index type must be one of {', '.join(INDEX_TYPES)}, got {index_type!r}"
        )


def _describe(spec: EmbedderSpec) -> str:
    path = spec.params.get("path")
    return f"{spec.name} ({path})" if path else spec.name


def _query_name(query: Query) -> str:
    if isinstance(query, (str, Path)):
        return str(query)
    return "<image bytes>" if isinstance(query, bytes) else "<PIL image>"


__all__ = ["IndexInfo", "Query", "SearchEngine", "check_is_index"]
