"""The one road every query takes, whoever asks (CLI, REST API, page, evaluation, Python):

    decode -> embed -> candidate search -> re-rank stages -> [verify] -> filter, sort -> matches

Batch first: a single query is a batch of one. A query may be a region of an image
(``lookalike.region.Region``): only the region is decoded, embedded and, in copy mode,
verified against. Queries by an indexed image skip the first two stages (its stored vector is
the query; with a box, its file's region is decoded instead) and leave the image itself out of
its results. Copy mode (``SearchOptions.verify``, off by default and then free) checks the best
candidates geometrically against the query image (query/geometry.py) and puts the verified
copies first. What a search asks for travels as one ``SearchOptions`` (search_options.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from lookalike.collection import Collection
from lookalike.embedders.base import Embedder, l2_normalise
from lookalike.errors import ImageError, InvalidInputError, UnknownImageError
from lookalike.imaging import DEFAULT_MAX_PIXELS
from lookalike.matches import Match, SearchResult
from lookalike.query.candidates import CandidateSearch
from lookalike.query.decoding import DecodedQueries, Query, decode_queries
from lookalike.query.embedding import embed_pixels
from lookalike.query.geometry import GeometricVerifier, GreyImage, load_grey
from lookalike.query.match_builder import MatchBuilder
from lookalike.query.products import GROUP_DEPTH, ProductGrouping, product_of
from lookalike.query.reranking import RerankContext, Reranker
from lookalike.query.reranking import rerank as run_stages
from lookalike.region import Box, Region
from lookalike.rerank_settings import RerankOverride
from lookalike.search_options import SearchOptions


@dataclass(frozen=True)
class QueryPipeline:
    """The stages of a search, each with one job. Decoding (:meth:`decode`) needs no lock and
    may run anywhere; the other stages read the index.

    Example:
        >>> pipeline = engine.pipeline  # doctest: +SKIP
        >>> decoded = pipeline.decode(["query.jpg"])  # doctest: +SKIP
        >>> results = pipeline.search_decoded(decoded, SearchOptions(k=5))  # doctest: +SKIP
    """

    embedder: Callable[[], Embedder]
    collection: Collection
    candidates: CandidateSearch
    matches: MatchBuilder
    rerankers: tuple[Reranker, ...] = ()
    verifier: GeometricVerifier = field(default_factory=GeometricVerifier)
    #: The index's own stages (``query.reranking.default_rerankers`` over its manifest), with a
    #: search's override applied; ``rerankers`` run after them.
    index_stages: Callable[[RerankOverride | None], tuple[Reranker, ...]] = lambda _: ()

    def with_rerankers(self, *stages: Reranker) -> QueryPipeline:
        """This pipeline with ``stages`` run after the present re-ranking stages."""
        return replace(self, rerankers=(*self.rerankers, *stages))

    # -- stages -----------------------------------------------------------------------------------

    def decode(
        self,
        queries: Sequence[Query],
        *,
        names: Sequence[str] | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        verify: bool = False,
    ) -> DecodedQueries:
        """Query images (paths, file bytes, PIL images, regions of those) as pixels for the
        index's embedder; images over ``max_pixels`` are refused from their header (a server
        passes a lower limit for untrusted uploads). ``verify``: also keep what copy mode
        needs."""
        return decode_queries(
            queries,
            self.embedder().input_spec,
            names=names,
            max_pixels=max_pixels,
            grey_side=self.verifier.side if verify else None,
        )

    def embed(self, decoded: DecodedQueries) -> npt.NDArray[np.float32]:
        return embed_pixels(self.embedder(), decoded.pixels)

    # -- whole searches ---------------------------------------------------------------------------

    def search(
        self, queries: Sequence[Query], options: SearchOptions = SearchOptions()
    ) -> list[SearchResult]:
        """The ``options.k`` most similar indexed images for each query image (or region),
        best first. With ``options.verify`` (copy mode) each match reports its ``inliers``."""
        return self.search_decoded(self.decode(queries, verify=options.verify), options)

    def search_decoded(
        self,
        decoded: DecodedQueries,
        options: SearchOptions = SearchOptions(),
        *,
        exclude: Sequence[int | None] | None = None,
        exclude_products: Sequence[str | None] | None = None,
    ) -> list[SearchResult]:
        """:meth:`search` for queries already decoded (with ``verify=True`` for copy mode).
        ``exclude``: per query, an image id to leave out of its results; ``exclude_products``:
        per query, a product to leave out."""
        return self.search_embedded(
            decoded,
            self.embed(decoded),
            options,
            exclude=exclude,
            exclude_products=exclude_products,
        )

    def search_embedded(
        self,
        decoded: DecodedQueries,
        vectors: npt.NDArray[np.float32],
        options: SearchOptions = SearchOptions(),
        *,
        exclude: Sequence[int | None] | None = None,
        exclude_products: Sequence[str | None] | None = None,
    ) -> list[SearchResult]:
        """:meth:`search_decoded` for decoded queries whose ``vectors`` (one row each) were
        already made by :meth:`embed`, perhaps in one network batch with other queries (the
        server's micro-batching, query/batch_search.py)."""
        if len(vectors) != len(decoded):
            raise InvalidInputError(f"{len(vectors)} vectors for {len(decoded)} decoded queries")
        images: Sequence[GreyImage | None] | None = None
        if options.verify:
            if decoded.grey is None and len(decoded):
                raise InvalidInputError(
                    "copy mode needs the query images: decode them with decode(..., verify=True)"
                )
            images = decoded.grey or ()
        found = self.search_vectors(
            vectors,
            options,
            exclude=exclude,
            verify_images=images,
            exclude_products=exclude_products,
        )
        return [
            SearchResult(name, matches, decoded.box(position))
            for position, (name, matches) in enumerate(zip(decoded.names, found, strict=True))
        ]

    def search_ids(
        self,
        image_ids: Sequence[int],
        options: SearchOptions = SearchOptions(),
        *,
        box: Box | None = None,
    ) -> list[SearchResult]:
        """ "More like this": for each indexed image, the k others most similar to it (copy
        mode as in :meth:`search`; an image whose file is gone is not verified). ``box``:
        the region of each image to search with, decoded from its file (which must still be
        there); the image itself (in a feed's index: its product) stays out of its results."""
        names = [self.collection.record(i)[0].path for i in image_ids]
        if box is not None:
            regions = [Region(name, box) for name in names]
            return self.search_regions(
                self.decode(regions, verify=options.verify), image_ids, options
            )
        vectors = self.collection.vectors_for(list(image_ids))
        images = [self._indexed_grey(name) for name in names] if options.verify else None
        found = self.search_vectors(
            vectors,
            options,
            exclude=list(image_ids),
            verify_images=images,
            exclude_products=self.own_products(image_ids, options.group_by_product),
        )
        return [SearchResult(n, m) for n, m in zip(names, found, strict=True)]

    def search_regions(
        self, decoded: DecodedQueries, image_ids: Sequence[int], options: SearchOptions
    ) -> list[SearchResult]:
        """:meth:`search_decoded` for regions of the indexed images ``image_ids`` (decoded in
        that order): each image (in a feed's index: its product) stays out of its results."""
        return self.search_decoded(
            decoded,
            options,
            exclude=list(image_ids),
            exclude_products=self.own_products(image_ids, options.group_by_product),
        )

    def own_products(
        self, image_ids: Sequence[int], group_by_product: bool | None = None
    ) -> list[str | None] | None:
        """In a feed's index, each image's own product, which is no answer to "more like
        this" (None elsewhere, or when products are not grouped)."""
        field = self.matches.product_field()
        if field is None or group_by_product is False:
            return None
        return [product_of(field, self.collection.record(i)[1]) for i in image_ids]

    def search_products(
        self, products: Sequence[str], options: SearchOptions = SearchOptions()
    ) -> list[SearchResult]:
        """ "More like this product", in an index made from a feed: for each product id, the
        k most similar other products (grouped unless ``options.group_by_product`` is False),
        the query being the mean of the product's image vectors; its own images are left
        out."""
        field = self.matches.product_field()
        if field is None:
            raise InvalidInputError(
                "this index was not made from a product feed: search by an image instead "
                "(index a feed with `lookalike index FEED.csv` to search by product id)"
            )
        queries = []
        for product in products:
            ids = self.collection.product_images(field, product)
            if not ids:
                raise UnknownImageError(
                    f"no product {product!r} in the index (looked for it in the metadata "
                    f"field {field!r}); pass an id of the indexed feed"
                )
            queries.append(self.collection.vectors_for(ids).mean(axis=0))
        vectors = np.stack(queries).astype(np.float32)
        if self.collection.metric == "cosine":
            vectors = l2_normalise(vectors)
        found = self.search_vectors(vectors, options, exclude_products=list(products))
        return [SearchResult(p, m) for p, m in zip(products, found, strict=True)]

    def search_vectors(
        self,
        vectors: npt.NDArray[np.float32],
        options: SearchOptions = SearchOptions(),
        *,
        exclude: Sequence[int | None] | None = None,
        verify_images: Sequence[GreyImage | None] | None = None,
        exclude_products: Sequence[str | None] | None = None,
    ) -> list[tuple[Match, ...]]:
        """Matches for query vectors made by the index's embedder, shape (n, dim).
        ``exclude``: per query, an image id to leave out of its results. ``verify_images``:
        copy mode (``options.verify``), per query its greyscale image (query/geometry.py
        ``load_grey``) or None. ``exclude_products``: per query, a product to leave out."""
        with self.collection.pinned():
            return self._search_vectors(
                vectors,
                options,
                exclude=exclude,
                verify_images=verify_images,
                exclude_products=exclude_products,
            )

    def _search_vectors(
        self,
        vectors: npt.NDArray[np.float32],
        options: SearchOptions,
        *,
        exclude: Sequence[int | None] | None,
        verify_images: Sequence[GreyImage | None] | None,
        exclude_products: Sequence[str | None] | None,
    ) -> list[tuple[Match, ...]]:
        vectors = self.candidates.check(vectors)
        if exclude is not None and len(exclude) != len(vectors):
            raise InvalidInputError(f"{len(exclude)} ids to exclude for {len(vectors)} queries")
        # One more candidate stands in for an excluded image, so that searches by an indexed
        # image keep using the fastest structure instead of an exact scan.
        extra = 1 if exclude is not None and any(e is not None for e in exclude) else 0
        k = options.k
        depth = k
        if options.verify:
            if verify_images is None:
                raise InvalidInputError(
                    "copy mode needs each query's greyscale image: pass verify_images "
                    "(query/geometry.py load_grey), or search by an image"
                )
            if len(verify_images) != len(vectors):
                raise InvalidInputError(
                    f"{len(verify_images)} images to verify with for {len(vectors)} queries"
                )
            depth = max(k, options.verify_top)
        stages = (*self.index_stages(options.rerank), *self.rerankers)
        depth = max([depth + extra, *(stage.depth(depth + extra) for stage in stages)])
        products = self._products(options.group_by_product, exclude_products, len(vectors))
        images = verify_images if options.verify else None
        plan = _SearchPlan(options, exclude, images, stages, products)
        if products is None:
            return self._matches(vectors, depth, plan)
        # A product has several images: search deeper until each query has k products or
        # every image was a candidate.
        depth *= GROUP_DEPTH
        while True:
            found = self._matches(vectors, depth, plan)
            if all(len(m) >= k for m in found) or depth >= self.collection.count():
                return found
            depth *= GROUP_DEPTH

    def _products(
        self, group: bool | None, exclude: Sequence[str | None] | None, queries: int
    ) -> ProductGrouping | None:
        field = self.matches.product_field()
        if field is None:
            if group or exclude is not None:
                raise InvalidInputError(
                    "this index was not made from a product feed: it has no product ids to "
                    "group by (index a feed with `lookalike index FEED.csv`)"
                )
            return None
        if exclude is not None and len(exclude) != queries:
            raise InvalidInputError(f"{len(exclude)} products to exclude for {queries} queries")
        if group is False and exclude is None:
            return None
        return ProductGrouping(field, group is not False, exclude)

    def _matches(
        self, vectors: npt.NDArray[np.float32], depth: int, plan: _SearchPlan
    ) -> list[tuple[Match, ...]]:
        """Candidates ``depth`` deep, re-ranked, verified, and built into matches."""
        where, exclude = plan.options.where, plan.exclude
        scores, ids = self.candidates.search(vectors, depth, where=where)
        if plan.stages:
            context = RerankContext(
                vectors,
                lambda queries, depth: self.candidates.search(queries, depth, where=where),
                self.collection.stored_vectors,
                self.collection.neighbour_table,
                tuple(exclude) if exclude is not None else None,
            )
            scores, ids = run_stages(plan.stages, context, scores, ids)
        inliers = None
        if plan.verify_images is not None:
            paths = self.collection.paths([i for i in ids.ravel().tolist() if i >= 0])
            scores, ids, inliers = self.verifier.rerank(
                plan.verify_images, scores, ids, paths, top=plan.options.verify_top, exclude=exclude
            )
        return self.matches(
            scores,
            ids,
            k=plan.options.k,
            sort_by=plan.options.sort_by,
            exclude=exclude,
            inliers=inliers,
            products=plan.products,
        )

    def _indexed_grey(self, path: str) -> GreyImage | None:
        """An indexed image as copy mode's query, or None when its file is gone or unreadable."""
        try:
            return load_grey(path, self.verifier.side)
        except ImageError:
            return None


@dataclass(frozen=True)
class _SearchPlan:
    """What one search asks of the stages after candidate search (see ``search_vectors``)."""

    options: SearchOptions
    exclude: Sequence[int | None] | None
    verify_images: Sequence[GreyImage | None] | None
    stages: tuple[Reranker, ...]
    products: ProductGrouping | None


__all__ = ["QueryPipeline"]
