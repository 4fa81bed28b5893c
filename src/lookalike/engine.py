"""SearchEngine: the one object the CLI, the REST API and Python users drive.

A thin facade over an open index directory: the ``IndexWriter`` changes it, the
``QueryPipeline`` searches it, the ``Collection`` says what it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from lookalike.catalog_records import ImageRecord
from lookalike.collection import Collection, DuplicateScan, IndexInfo
from lookalike.duplicates.against import AgainstReport, Side, find_against
from lookalike.duplicates.keep_rules import KeepRule, parse_rules
from lookalike.duplicates.plan import Plan, make_plan
from lookalike.duplicates.report import DuplicateOptions, DuplicateReport
from lookalike.duplicates.stored_hashes import StoredPerceptualHashes
from lookalike.embedders import DEFAULT_EMBEDDER, create_embedder
from lookalike.embedders.base import Embedder, EmbedderSpec
from lookalike.embedders.quality import reranking_for, spec_for
from lookalike.errors import EmbedderMismatchError, InvalidInputError
from lookalike.explain.explainer import Explainer
from lookalike.explain.explanation import Explanation
from lookalike.filters import SearchFilter
from lookalike.index_model import IndexModel
from lookalike.index_options import IndexOptions, IndexReport, ProgressCallback
from lookalike.indexes.exact import ExactIndex
from lookalike.indexes.graph_folder import GraphFolder
from lookalike.indexes.hnsw import GraphInfo, HnswIndex
from lookalike.indexes.registry import ANN_THRESHOLD, resolve_index_type
from lookalike.layout import IndexLayout
from lookalike.manifest import METRICS, Manifest
from lookalike.matches import Match, SearchResult
from lookalike.metadata import MetadataTable
from lookalike.query import CandidateSearch, MatchBuilder, Query, QueryPipeline
from lookalike.query.reranking import default_rerankers
from lookalike.region import Box, Region
from lookalike.rerank_settings import DEFAULT_RERANKING, RerankOverride, RerankSettings
from lookalike.search_options import DEFAULT_VERIFY_TOP, SearchOptions
from lookalike.store import IndexStore, check_is_index
from lookalike.vector_codec import DEFAULT_VECTOR_DTYPE, check_same_dtype, check_storage
from lookalike.version import __version__
from lookalike.writer import IndexWriter

if TYPE_CHECKING:
    from lookalike.feeds.feed_file import Feed
    from lookalike.feeds.feed_report import FeedReport
    from lookalike.feeds.fetching import FetchOptions
    from lookalike.indexes.milvus import SyncReport

Where = SearchFilter | None
Field = str | None
Options = IndexOptions | None
Progress = ProgressCallback | None
Vectors = npt.NDArray[np.float32]
Switch = bool | None


def _options(
    k: int,
    where: Where,
    sort_by: Field,
    verify: bool,
    verify_top: int,
    expansion: Switch,
    hubness: Switch,
    group_by_product: Switch,
) -> SearchOptions:
    """The public keyword arguments of a search, as the pipeline's one options object."""
    rerank = None
    if expansion is not None or hubness is not None:
        rerank = RerankOverride(expansion=expansion, hubness=hubness)
    return SearchOptions(k, where, sort_by, verify, verify_top, rerank, group_by_product)


def _regions(queries: Sequence[Query], box: Box) -> list[Query]:
    """Every query cut to ``box``."""
    regions: list[Query] = []
    for query in queries:
        if isinstance(query, Region):
            raise InvalidInputError(
                f"box {box.text()} given for a query that is already a Region (box "
                f"{query.box.text()}): pass one or the other"
            )
        regions.append(Region(query, box))
    return regions


class SearchEngine:
    """An index directory plus the embedder that made it.

    Example:
        >>> with SearchEngine.create("photos.idx") as engine:  # doctest: +SKIP
        ...     engine.index_folder("photos/")
        ...     results = engine.search(["query.jpg"], k=5)
    """

    def __init__(self, store: IndexStore, *, threads: int | None = None) -> None:
        self._store = store
        self.model = IndexModel(store, threads=threads)
        graphs = GraphFolder(store)
        self.collection = Collection(store, graphs)
        self.writer = IndexWriter(store, self.model, self.collection, graphs)
        self._candidates = CandidateSearch(store, self.collection, graphs)
        self._graphs = graphs
        self.pipeline = QueryPipeline(
            self.model,
            self.collection,
            self._candidates,
            MatchBuilder(store.catalog, store.manifest.metric, self.collection.product_field),
            index_stages=lambda override: default_rerankers(store.manifest, override),
        )
        self.explainer = Explainer(self.model, self.collection)

    @classmethod
    def create(
        cls,
        directory: Path | str,
        *,
        embedder: str | EmbedderSpec = DEFAULT_EMBEDDER,
        metric: str = "cosine",
        index_type: str = "auto",
        quality: str | None = None,
        reranking: RerankSettings | None = None,
        vector_dtype: str = DEFAULT_VECTOR_DTYPE,
        keep_float32: bool = False,
        threads: int | None = None,
    ) -> SearchEngine:
        """Create a new, empty index in ``directory`` (new or empty). ``quality`` (fast,
        balanced, best, classic; default balanced) sets how an EfficientNet embedder named
        by a string describes images; an ``EmbedderSpec`` is taken as written.
        ``vector_dtype`` (float32, float16, int8): how its segments store vectors, fixed for
        the index (see :mod:`lookalike.vector_codec`); ``keep_float32``: the segments stay
        float32 and exact search holds the compact vectors, re-scoring its best candidates.
        ``reranking``: the query re-ranking stages its searches use (query expansion,
        hubness correction; default: the quality preset's, none for other embedders)."""
        if reranking is None:  # the stages were measured on cosine similarities only
            cosine = metric == "cosine"
            reranking = reranking_for(embedder, quality) if cosine else DEFAULT_RERANKING
        if metric not in METRICS:
            raise InvalidInputError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        if reranking.any_on and metric != "cosine":
            raise InvalidInputError(
                "query expansion and hubness correction need metric='cosine'; "
                f"got metric={metric!r}"
            )
        resolve_index_type(index_type)
        dtype = check_storage(vector_dtype, keep_float32)
        spec = spec_for(embedder, quality)
        model = create_embedder(spec, threads=threads)
        manifest = Manifest(
            embedder=model.spec,
            weights_digest=model.weights_digest,
            dim=model.dim,
            metric=metric,
            index_type=index_type,
            lookalike_version=__version__,
            reranking=reranking,
            vector_dtype=dtype,
            keep_float32=keep_float32,
        )
        engine = cls(IndexStore.create(Path(directory), manifest), threads=threads)
        engine.model.adopt(model)
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
            engine.model.check_request(embedder, metric)
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
        quality: str | None = None,
        vector_dtype: str | None = None,
        keep_float32: bool | None = None,
        threads: int | None = None,
    ) -> SearchEngine:
        """Open ``directory`` for writing if it is an index, else create one there.
        ``quality``, ``vector_dtype`` and ``keep_float32``, when given for an existing index,
        must be the ones it was made with."""
        path = Path(directory)
        if IndexLayout(path).is_index():
            engine = cls.open(
                path, writable=True, embedder=embedder, metric=metric, threads=threads
            )
            try:
                if quality is not None:
                    engine.model.check_quality(quality)
                manifest = engine.manifest
                check_same_dtype(
                    manifest.vector_dtype,
                    vector_dtype,
                    path,
                    kept=manifest.keep_float32,
                    keep=keep_float32,
                )
            except BaseException:
                engine.close()
                raise
            return engine
        return cls.create(
            path,
            embedder=embedder or DEFAULT_EMBEDDER,
            metric=metric or "cosine",
            quality=quality,
            vector_dtype=vector_dtype or DEFAULT_VECTOR_DTYPE,
            keep_float32=bool(keep_float32),
            threads=threads,
        )

    def close(self) -> None:
        self._candidates.close()
        self._store.close()

    def __enter__(self) -> SearchEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def directory(self) -> Path:
        return self._store.directory

    @property
    def manifest(self) -> Manifest:
        return self._store.manifest

    def __len__(self) -> int:
        return self.collection.count()

    @property
    def embedder(self) -> Embedder:
        """The index's embedder, built on first use and checked against the recorded weights."""
        return self.model()

    def another_embedder(self, *, threads: int) -> Embedder:
        """A second instance of the index's embedder with its own number of network threads,
        checked like the first (a server runs concurrent batches on one-thread instances)."""
        return IndexModel(self._store, threads=threads)()

    def index_folder(
        self, folder: Path | str, *, options: Options = None, progress: Progress = None
    ) -> IndexReport:
        """Bring the index up to date with ``folder`` (see ``lookalike.indexing.sync_folder``)."""
        return self.writer.index_folder(folder, options=options, progress=progress)

    def index_feed(
        self,
        feed: Feed | Path | str,
        *,
        image_column: str | None = None,
        id_column: str | None = None,
        options: Options = None,
        fetch: FetchOptions | None = None,
        retry_failed: bool = False,
        progress: Progress = None,
    ) -> FeedReport:
        """Bring the index up to date with a product feed (a ``Feed``, or a CSV / JSON Lines /
        Parquet file read with ``lookalike.feeds.feed_file.read_feed``): new and changed
        images are downloaded and embedded, rows gone from the feed removed, metadata changes
        applied without embedding again. Failures are counted in the report, never raised;
        images that failed are not fetched again by later runs unless ``retry_failed``.

        Example:
            >>> report = engine.index_feed("products.csv", id_column="sku")  # doctest: +SKIP
        """
        from lookalike.feeds.feed_file import Feed, read_feed

        if not isinstance(feed, Feed):
            feed = read_feed(Path(feed), image_column=image_column, id_column=id_column)
        return self.writer.index_feed(
            feed, options=options, fetch=fetch, retry_failed=retry_failed, progress=progress
        )

    def sync_ann(
        self, *, pca_dim: int | None = None, whiten: bool | None = None, rerank: int | None = None
    ) -> GraphInfo:
        """Bring the HNSW graph up to date and measure its recall@10 (None: keep the saved
        projection; ``pca_dim`` 0: none, default 128 for big collections of >256-d vectors)."""
        return self.writer.sync_ann(pca_dim=pca_dim, whiten=whiten, rerank=rerank)

    def set_reranking(self, *, expansion: Switch = None, hubness: Switch = None) -> RerankSettings:
        """Record which re-ranking stages this index's searches use (None: keep the present
        setting); switching hubness on computes its neighbour statistic now."""
        return self.writer.set_reranking(RerankOverride(expansion=expansion, hubness=hubness))

    def add_vectors(
        self, paths: Sequence[str], vectors: Vectors, *, labels: Sequence[str | None] | None = None
    ) -> list[int]:
        """Add precomputed vectors under the given path names (e.g. from a distributed job)."""
        return self.writer.add_vectors(paths, vectors, labels=labels)

    def remove(self, paths: Sequence[Path | str]) -> int:
        """Remove images (or every image under a folder). Unknown paths remove nothing and raise."""
        return self.writer.remove(paths)

    def set_metadata(self, table: MetadataTable) -> tuple[int, list[str]]:
        """Attach metadata rows to indexed images by path; returns (matched, unmatched paths)."""
        return self.writer.set_metadata(table)

    def embed(self, queries: Sequence[Query]) -> Vectors:
        """Embed query images (paths, file bytes or PIL images) with the index's embedder."""
        return self.pipeline.embed(self.pipeline.decode(queries))

    def search(
        self,
        queries: Sequence[Query],
        *,
        k: int = 10,
        where: Where = None,
        sort_by: Field = None,
        verify: bool = False,
        verify_top: int = DEFAULT_VERIFY_TOP,
        expansion: Switch = None,
        hubness: Switch = None,
        box: Box | None = None,
        group_by_product: Switch = None,
    ) -> list[SearchResult]:
        """The k most similar indexed images for each query image, best first. ``where``: a
        filter (label, folder, metadata range); ``sort_by``: a numeric field to order by;
        ``verify``: copy mode, the best ``verify_top`` candidates checked geometrically and
        the query's copies put first, each match reporting its ``inliers``; ``expansion``,
        ``hubness``: query expansion and hubness correction on or off for this search
        (None: as the index records, see ``info().reranking``). ``box``: search with that
        region of every query (pixels of the image as shown); a query may also be a
        ``Region`` of its own. ``group_by_product``: in an index made from a product feed,
        each product once by its best image (None: on there)."""
        options = _options(
            k, where, sort_by, verify, verify_top, expansion, hubness, group_by_product
        )
        return self.pipeline.search(queries if box is None else _regions(queries, box), options)

    def search_by_id(
        self,
        image_id: int,
        *,
        k: int = 10,
        where: Where = None,
        sort_by: Field = None,
        verify: bool = False,
        verify_top: int = DEFAULT_VERIFY_TOP,
        expansion: Switch = None,
        hubness: Switch = None,
        box: Box | None = None,
        group_by_product: Switch = None,
    ) -> SearchResult:
        """ "More like this": the k images most similar to an indexed one, itself excluded
        (``box``: to that region of it, decoded from its file; in an index made from a feed:
        its product excluded, one result per product unless ``group_by_product`` is False)."""
        options = _options(
            k, where, sort_by, verify, verify_top, expansion, hubness, group_by_product
        )
        return self.pipeline.search_ids([image_id], options, box=box)[0]

    def search_by_product(
        self,
        product_id: str,
        *,
        k: int = 10,
        where: Where = None,
        sort_by: Field = None,
        expansion: Switch = None,
        hubness: Switch = None,
        group_by_product: Switch = None,
    ) -> SearchResult:
        """ "More like this product", in an index made from a feed: the products most similar
        to this one (the mean of its images' vectors), its own images excluded."""
        options = _options(
            k, where, sort_by, False, DEFAULT_VERIFY_TOP, expansion, hubness, group_by_product
        )
        return self.pipeline.search_products([product_id], options)[0]

    def explain(
        self, query: Query, result_id: int, *, box: Box | None = None, overlays: bool = False
    ) -> Explanation:
        """Why the indexed image ``result_id`` matches ``query`` (a path, file bytes or PIL
        image; with ``box``, that region of it): heatmaps of the parts of both that agree, and
        with ``overlays`` PNGs of each image with its heatmap. Needs an embedder with a
        feature map (EfficientNet-Lite, triplet heads); others raise NotExplainableError.

        Example:
            >>> match = engine.search(["q.jpg"], k=1)[0].matches[0]  # doctest: +SKIP
            >>> engine.explain("q.jpg", match.id).result_heatmap.shape  # doctest: +SKIP
            (48, 64)
        """
        return self.explainer.explain(query, result_id, box=box, overlays=overlays)

    def explain_ids(
        self, query_id: int, result_id: int, *, box: Box | None = None, overlays: bool = False
    ) -> Explanation:
        """:meth:`explain` for two indexed images (``box``: a region of the first)."""
        return self.explainer.explain_ids(query_id, result_id, box=box, overlays=overlays)

    def explainable(self) -> bool:
        """Whether this index's embedder can explain matches (see :meth:`explain`)."""
        return self.explainer.explainable()

    def search_vectors(
        self,
        vectors: Vectors,
        *,
        k: int = 10,
        where: Where = None,
        sort_by: Field = None,
        exclude: int | None = None,
        expansion: Switch = None,
        hubness: Switch = None,
    ) -> list[tuple[Match, ...]]:
        """Matches for query vectors made by the same embedder (shape (n, dim))."""
        rows = 1 if np.ndim(vectors) == 1 else len(vectors)
        options = _options(k, where, sort_by, False, DEFAULT_VERIFY_TOP, expansion, hubness, None)
        return self.pipeline.search_vectors(
            vectors, options, exclude=None if exclude is None else [exclude] * rows
        )

    def search_index_type(self) -> str:
        """'hnsw' where the index type wants a graph and one has been built, else 'exact'."""
        return self._candidates.structure()

    def attach_milvus(
        self, uri: str, *, collection: str | None = None, token: str | None = None
    ) -> SyncReport:
        """Push the vectors to Milvus (``http://host:19530``, or a milvus-lite ``.db`` path;
        only what changed) and answer unfiltered searches from there."""
        return self._candidates.attach_milvus(uri, collection=collection, token=token)

    def vector_index(self) -> ExactIndex:
        """The in-memory exact index, reloaded when another process has committed changes."""
        return self.collection.vector_index()

    def ann_index(self) -> HnswIndex:
        """The HNSW graph, with any images committed since it was saved applied in memory."""
        return self._graphs.current()

    def record(self, image_id: int) -> tuple[ImageRecord, dict[str, object]]:
        """An indexed image's catalog record and metadata."""
        return self.collection.record(image_id)

    def record_by_path(self, path: str) -> ImageRecord:
        return self.collection.record_by_path(path)

    def labels(self) -> dict[str, int]:
        """Label -> number of images (labels are the first subfolder of an indexed folder)."""
        return self.collection.labels()

    def numeric_fields(self) -> list[str]:
        """Metadata fields that hold numbers (those a search can filter and sort by)."""
        return self.collection.numeric_fields()

    def duplicates(
        self, *, threshold: float = 0.75, k: int = 10, verify: bool = False
    ) -> list[list[ImageRecord]]:
        """Groups of near-duplicate images (see :mod:`lookalike.grouping`), largest first;
        ``verify``: keep only pairs that geometric verification confirms as copies."""
        return self.duplicate_scan(threshold=threshold, k=k, verify=verify).groups

    def duplicate_scan(
        self, *, threshold: float = 0.75, k: int = 10, verify: bool = False
    ) -> DuplicateScan:
        """:meth:`duplicates` with how many pairs verification checked and dropped."""
        verifier = self.pipeline.verifier if verify else None
        return self.collection.duplicates(threshold=threshold, k=k, verify=verifier)

    def find_duplicates(self, options: DuplicateOptions | None = None) -> DuplicateReport:
        """Duplicate pairs labelled by tier (identical file, same picture, edited copy, and
        with ``include_similar`` similar shot) and their groups, largest first; with
        ``verify_undecided`` (the default) the few undecided pairs are checked geometrically."""
        options = options or DuplicateOptions()
        verifier = self.pipeline.verifier if options.verify else None
        settle = self.pipeline.verifier if options.verify_undecided else None
        return self.collection.find_duplicates(options, verify=verifier, settle=settle)

    def duplicate_plan(
        self,
        rules: Sequence[KeepRule | str] | None = None,
        *,
        options: DuplicateOptions | None = None,
        keepers: Sequence[int] = (),
    ) -> Plan:
        """:meth:`find_duplicates`, then what to keep in each group: the file the keep
        ``rules`` prefer (in order; default ``DEFAULT_RULES``) or the one of ``keepers`` (ids
        chosen by the user) in it. Acts on nothing.

        Example:
            >>> plan = engine.duplicate_plan(["prefer-path */originals/*"])  # doctest: +SKIP
            >>> plan.write(Path("plan.json"))  # doctest: +SKIP
        """
        rules = parse_rules(rules)  # a bad rule is refused before the scan
        report = self.find_duplicates(options)
        return make_plan(report, rules, keepers=keepers, index=self.directory.resolve())

    def find_against(
        self, other: SearchEngine | Path | str, options: DuplicateOptions | None = None
    ) -> AgainstReport:
        """Which images of this index already exist in ``other`` (an older collection: an
        engine, or its index directory, opened read-only): each image's best match there,
        tiered like :meth:`find_duplicates`' pairs (identical when ``other`` holds the same
        bytes). Both indexes must have been made by the same embedder."""
        if not isinstance(other, SearchEngine):
            with SearchEngine.open(other) as opened:
                return self.find_against(opened, options)
        check_same_embedder(self, other)
        if self.manifest.metric != "cosine":
            raise InvalidInputError(
                "comparing collections needs cosine indexes (tiers are cosine similarities)"
            )
        options = options or DuplicateOptions()
        return find_against(self._side(), other._side(), options)

    def _side(self) -> Side:
        snapshot = self.collection.snapshot()
        return Side(
            snapshot.vectors.ids,
            snapshot.vectors.vectors,
            snapshot.records,
            StoredPerceptualHashes(self._store, snapshot.records),
        )

    def dismiss_pair(self, first_id: int, second_id: int) -> bool:
        """Record that two indexed images are not duplicates: :meth:`find_duplicates` never
        pairs them again, even after they are renamed or indexed again (the pair is kept by
        content hash); whether the pair is new. Needs a writable engine."""
        return self.writer.dismiss_pair(first_id, second_id)

    def export_vectors(self) -> tuple[list[str], Vectors]:
        """(paths, vectors) of every indexed image, in id order: the embeddings themselves."""
        return self.collection.export_vectors()

    def info(self) -> IndexInfo:
        return self.collection.info(search_index=self.search_index_type())


def check_same_embedder(one: SearchEngine, other: SearchEngine) -> None:
    """Refuse to compare two indexes whose vectors were made by different embedders."""
    a, b = one.manifest, other.manifest
    if (a.embedder, a.weights_digest, a.dim, a.metric) != (
        b.embedder,
        b.weights_digest,
        b.dim,
        b.metric,
    ):
        raise EmbedderMismatchError(
            f"{other.directory} was made with embedder {b.embedder.name} {b.embedder.params} "
            f"({b.dim}-d, {b.metric}), {one.directory} with {a.embedder.name} "
            f"{a.embedder.params} ({a.dim}-d, {a.metric}): their vectors do not compare; index "
            "one folder again with the other's embedder (`lookalike info` shows it)"
        )


__all__ = ["ANN_THRESHOLD", "IndexInfo", "Query", "SearchEngine", "check_is_index"]
