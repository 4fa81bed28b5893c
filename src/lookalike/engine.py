"""SearchEngine: the one object the CLI, the REST API and Python users drive."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from lookalike import __version__
from lookalike.catalog import NewImage
from lookalike.embedders import DEFAULT_EMBEDDER, create_embedder, resolve_spec
from lookalike.embedders.base import Embedder, EmbedderSpec, l2_normalise
from lookalike.errors import EmbedderMismatchError, InvalidInputError
from lookalike.imaging import load_prepared, prepare
from lookalike.indexes.base import distance_from_score
from lookalike.indexes.exact import ExactIndex
from lookalike.indexing import IndexOptions, IndexReport, ProgressCallback, sync_folder
from lookalike.matches import Match, SearchResult
from lookalike.store import METRICS, IndexStore, Manifest, check_is_index

Query = str | Path | bytes | Image.Image


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

    # -- opening ----------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: Path | str,
        *,
        embedder: str | EmbedderSpec = DEFAULT_EMBEDDER,
        metric: str = "cosine",
        threads: int | None = None,
    ) -> SearchEngine:
        """Create a new, empty index in ``directory`` (new or empty)."""
        if metric not in METRICS:
            raise InvalidInputError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        model = create_embedder(resolve_spec(embedder), threads=threads)
        manifest = Manifest(
            embedder=model.spec,
            weights_digest=model.weights_digest,
            dim=model.dim,
            metric=metric,
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
        same_file = wanted.name != "onnx" or wanted.params.get(
            "path"
        ) == manifest.embedder.params.get("path")
        if not (same_name and same_file):
            raise EmbedderMismatchError(
                f"{self._store.directory}: index was built with embedder "
                f"{_describe(manifest.embedder)}, not {_describe(wanted)}; vectors of different "
                "models cannot be compared: use a new --index folder for the other embedder"
            )

    def close(self) -> None:
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
        return sync_folder(
            self._store,
            lambda: self.embedder,
            Path(folder),
            options=options or IndexOptions(),
            progress=progress,
        )

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

    def search(self, queries: Sequence[Query], *, k: int = 10) -> list[SearchResult]:
        """The k most similar indexed images for each query image, best first."""
        vectors = self.embed(queries)
        names = [_query_name(q) for q in queries]
        return [
            SearchResult(name, matches)
            for name, matches in zip(names, self.search_vectors(vectors, k=k), strict=True)
        ]

    def search_vectors(
        self, vectors: npt.NDArray[np.float32], *, k: int = 10
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
        scores, ids = self.vector_index().search(vectors, k)
        records = self._store.catalog.by_ids(np.unique(ids[ids >= 0]).tolist())
        metric = self.manifest.metric
        results = []
        for row_scores, row_ids in zip(scores, ids, strict=True):
            matches: list[Match] = []
            for score, image_id in zip(row_scores.tolist(), row_ids.tolist(), strict=True):
                record = records.get(image_id)
                if image_id < 0 or record is None:
                    continue
                matches.append(
                    Match(
                        rank=len(matches) + 1,
                        id=image_id,
                        path=record.path,
                        score=score,
                        distance=distance_from_score(metric, score),
                        label=record.label,
                    )
                )
            results.append(tuple(matches))
        return results

    def vector_index(self) -> ExactIndex:
        """The in-memory search index, reloaded when another process has committed changes."""
        generation = self._store.catalog.generation()
        if self._index is None or generation != self._index_generation:
            ids, vectors = self._store.load_vectors()
            self._index = ExactIndex(ids, vectors, metric=self.manifest.metric)
            self._index_generation = generation
        return self._index

    def export_vectors(self) -> tuple[list[str], npt.NDArray[np.float32]]:
        """(paths, vectors) of every indexed image, in id order: the embeddings themselves."""
        index = self.vector_index()
        records = self._store.catalog.by_ids(index.ids.tolist())
        return [records[i].path for i in index.ids.tolist()], index.vectors.copy()

    def info(self) -> IndexInfo:
        manifest = self.manifest
        return IndexInfo(
            directory=str(self.directory),
            count=len(self),
            embedder=manifest.embedder.name,
            embedder_params=dict(manifest.embedder.params),
            weights_digest=manifest.weights_digest,
            dim=manifest.dim,
            metric=manifest.metric,
            index_type=manifest.index_type,
            format_version=manifest.format_version,
            size_bytes=self._store.size_on_disk(),
            created=manifest.created,
            lookalike_version=manifest.lookalike_version,
        )


def _describe(spec: EmbedderSpec) -> str:
    path = spec.params.get("path")
    return f"{spec.name} ({path})" if path else spec.name


def _query_name(query: Query) -> str:
    if isinstance(query, (str, Path)):
        return str(query)
    return "<image bytes>" if isinstance(query, bytes) else "<PIL image>"


__all__ = ["IndexInfo", "Query", "SearchEngine", "check_is_index"]
