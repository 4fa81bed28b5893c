"""What an index holds, read side: records, labels, metadata fields, vectors, info.

Whatever is read in bulk (every vector, every record, every metadata row) is kept in a
snapshot of one catalog generation, and dropped as soon as another commit (from this process
or another one) moves the generation on, so readers always see the last committed state.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from lookalike.catalog import PRODUCT_FIELD_SETTING
from lookalike.catalog_records import ImageRecord
from lookalike.duplicates.finder import find_duplicates
from lookalike.duplicates.report import DuplicateOptions, DuplicateReport
from lookalike.duplicates.stored_hashes import StoredPerceptualHashes
from lookalike.embedders.base import EmbedderSpec
from lookalike.errors import DamagedGraphError, InvalidInputError, UnknownImageError
from lookalike.grouping import group_duplicates
from lookalike.indexes.base import FloatArray, IdArray
from lookalike.indexes.exact import ExactIndex
from lookalike.indexes.graph_folder import GraphFolder
from lookalike.indexes.neighbour_file import NeighbourFile
from lookalike.indexes.neighbours import NeighbourTable
from lookalike.store import IndexStore
from lookalike.vector_table import VectorTable

if TYPE_CHECKING:
    from lookalike.query.geometry import GeometricVerifier


@dataclass(frozen=True)
class IndexInfo:
    """What ``lookalike info`` shows."""

    directory: str
    count: int
    embedder: str
    embedder_params: dict[str, object]
    descriptor: str | None
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
    reranking: dict[str, object]
    product_field: str | None = None
    vector_dtype: str = "float32"
    keep_float32: bool = False

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class DuplicateScan:
    """Duplicate groups (records, largest group first) and, when pairs were verified
    geometrically, how many were checked and how many of those failed and were dropped."""

    groups: list[list[ImageRecord]]
    verified_pairs: int = 0
    dropped_pairs: int = 0


class _PairVerification:
    """Confirms duplicate pairs by geometric verification of their files, counting as it goes;
    a pair whose file cannot be read is not confirmed."""

    def __init__(self, verifier: GeometricVerifier, records: dict[int, ImageRecord]) -> None:
        self._verifier = verifier
        self._records = records
        self.checked = 0
        self.dropped = 0

    def __call__(
        self, first: npt.NDArray[np.int64], second: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.bool_]:
        paths = self._records
        passed = np.array(
            [
                a in paths
                and b in paths
                and self._verifier.is_copy(
                    self._verifier.pair_inliers(paths[a].path, paths[b].path)
                )
                for a, b in zip(first.tolist(), second.tolist(), strict=True)
            ],
            dtype=np.bool_,
        )
        self.checked += len(passed)
        self.dropped += int((~passed).sum())
        return passed

    def _confirms(self, first: int, second: int) -> bool:
        one, other = self._records.get(first), self._records.get(second)
        if one is None or other is None:
            return False
        return self._verifier.is_copy(self._verifier.pair_inliers(one.path, other.path))


class _UndecidedVerification:
    """Settles undecided duplicate pairs by a strict geometric verification of their files
    (:class:`SimilarityAcceptance`); a pair whose file cannot be read is not linked."""

    def __init__(self, verifier: GeometricVerifier, records: dict[int, ImageRecord]) -> None:
        from lookalike.query.geometry import SimilarityAcceptance

        self._verifier = verifier
        self._records = records
        self._accept = SimilarityAcceptance()

    def __call__(
        self, first: npt.NDArray[np.int64], second: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.bool_]:
        return np.array(
            [self._settles(a, b) for a, b in zip(first.tolist(), second.tolist(), strict=True)],
            dtype=np.bool_,
        )

    def _settles(self, first: int, second: int) -> bool:
        one, other = self._records.get(first), self._records.get(second)
        if one is None or other is None:
            return False
        return self._accept.accepts(self._verifier.pair_geometry(one.path, other.path))


class Snapshot:
    """The catalog's bulk reads at one generation, each made on first use."""

    def __init__(self, store: IndexStore, generation: int) -> None:
        self._store = store
        self.generation = generation

    @cached_property
    def vectors(self) -> ExactIndex:
        store = self._store
        metric = store.manifest.metric
        if not store.manifest.keep_float32:
            ids, stored = store.load_stored()  # compact vectors stay compact in memory
            return ExactIndex(ids, stored, metric=metric, codec=store.codec)
        # Float32 segments kept for re-scoring: memory holds the compact codes only.
        table = self.table
        codec = store.search_codec
        if codec.needs_ranges and len(table):  # ranges file lost: the segments hold the truth
            codec = codec.learn(table.take(table.ids[:10_000]))
        codes = codec.encode_all(table.take, table.ids) if len(table) else None
        if codes is None:
            codes = np.empty((0, store.manifest.dim), dtype=codec.storage)
        return ExactIndex(table.ids, codes, metric=metric, codec=codec, full=table.take)

    @cached_property
    def table(self) -> VectorTable:
        """Id -> vector over the memory-mapped segments (no bulk read)."""
        return self._store.vector_table()

    @cached_property
    def records(self) -> dict[int, ImageRecord]:
        return {r.id: r for r in self._store.catalog.all_records()}

    @cached_property
    def metadata(self) -> dict[int, dict[str, object]]:
        return self._store.catalog.metadata()

    # Asked on every search: counting a million rows costs more than a graph search.
    @cached_property
    def count(self) -> int:
        return self._store.catalog.count()

    @cached_property
    def product_field(self) -> str | None:
        return self._store.catalog.setting(PRODUCT_FIELD_SETTING)


class Collection:
    """The indexed images of one index directory, as the catalog last committed them."""

    def __init__(self, store: IndexStore, graphs: GraphFolder) -> None:
        self._store = store
        self._graphs = graphs
        self._snapshot = Snapshot(store, -1)
        self.neighbours = NeighbourFile(store)

    def snapshot(self) -> Snapshot:
        """The current snapshot, replaced when the catalog has moved on since it was taken."""
        generation = self._store.catalog.generation()
        if generation != self._snapshot.generation:
            self._snapshot = Snapshot(self._store, generation)
        return self._snapshot

    def pinned(self) -> AbstractContextManager[None]:
        """A block that sees one state of the catalog, read once (``Catalog.pinned``)."""
        return self._store.catalog.pinned()

    def vector_index(self) -> ExactIndex:
        return self.snapshot().vectors

    def count(self) -> int:
        return self.snapshot().count

    def vectors_for(self, image_ids: list[int]) -> npt.NDArray[np.float32]:
        """The stored vectors of indexed images, in that order."""
        return self._store.vectors_for(image_ids)

    def paths(self, image_ids: list[int]) -> dict[int, str]:
        """Id -> file path of those of ``image_ids`` the catalog holds."""
        records = self._store.catalog.by_ids(sorted(set(image_ids)))
        return {image_id: record.path for image_id, record in records.items()}

    def stored_vectors(self, ids: IdArray) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        """The stored vectors of ``ids`` (any shape; -1 for none), shape ``ids.shape + (dim,)``,
        and which ids the catalog holds now (the others, removed since a graph or Milvus was
        synced, get zeros)."""
        table = self.snapshot().table
        wanted = np.asarray(ids, dtype=np.int64).ravel()
        at = np.clip(np.searchsorted(table.ids, wanted), 0, max(len(table.ids) - 1, 0))
        found = table.ids[at] == wanted if len(table.ids) else np.zeros(len(wanted), bool)
        out = np.zeros((len(wanted), self._store.manifest.dim), dtype=np.float32)
        if bool(found.any()):
            out[found] = table.take(wanted[found])
        shape = np.shape(ids)
        return out.reshape(*shape, -1), found.reshape(shape)

    def neighbour_table(self, k: int) -> NeighbourTable:
        """The neighbour statistic of the images indexed now (see indexes/neighbour_file.py)."""
        return self.neighbours.current(self.snapshot().table.ids, self.vector_index, k)

    def record(self, image_id: int) -> tuple[ImageRecord, dict[str, object]]:
        """An indexed image's catalog record and metadata."""
        if not 0 <= image_id < 2**63:  # ids are SQLite integers; others are simply not there
            raise UnknownImageError(f"image id {image_id} is not in the index")
        record = self._store.catalog.get(image_id)
        if record is None:
            raise UnknownImageError(f"image id {image_id} is not in the index")
        return record, self._store.catalog.metadata([image_id]).get(image_id, {})

    def product_images(self, field: str, product: str) -> list[int]:
        """Ids of the images of one product (metadata ``field`` equal to ``product``)."""
        return self._store.catalog.product_ids(field, product)

    @property
    def metric(self) -> str:
        return self._store.manifest.metric

    def product_field(self) -> str | None:
        """The metadata field naming products, in an index made from a feed (else None)."""
        return self.snapshot().product_field

    def record_by_path(self, path: str) -> ImageRecord:
        record = self._store.catalog.by_path(path)
        if record is None:
            raise UnknownImageError(f"{path}: not in the index")
        return record

    def labels(self) -> dict[str, int]:
        """Label -> number of images (labels are the first subfolder of an indexed folder)."""
        counts: dict[str, int] = {}
        for record in self.snapshot().records.values():
            if record.label is not None:
                counts[record.label] = counts.get(record.label, 0) + 1
        return dict(sorted(counts.items()))

    def numeric_fields(self) -> list[str]:
        """Metadata fields that hold numbers (those a search can filter and sort by)."""
        names = {
            name
            for fields in self.snapshot().metadata.values()
            for name, value in fields.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        return sorted(names)

    def duplicates(
        self, *, threshold: float = 0.75, k: int = 10, verify: GeometricVerifier | None = None
    ) -> DuplicateScan:
        """Groups of near-duplicate images (see :mod:`lookalike.grouping`), largest first;
        with ``verify``, each pair is kept only when geometric verification confirms it."""
        if self._store.manifest.metric != "cosine":
            raise InvalidInputError(
                "duplicate grouping needs a cosine index (its threshold is a cosine similarity)"
            )
        snapshot = self.snapshot()
        index = snapshot.vectors
        records = snapshot.records
        check = _PairVerification(verify, records) if verify is not None else None
        groups = group_duplicates(index.ids, index.vectors, threshold=threshold, k=k, confirm=check)
        return DuplicateScan(
            [[records[i] for i in group.ids if i in records] for group in groups],
            verified_pairs=check.checked if check is not None else 0,
            dropped_pairs=check.dropped if check is not None else 0,
        )

    def find_duplicates(
        self,
        options: DuplicateOptions,
        *,
        verify: GeometricVerifier | None = None,
        settle: GeometricVerifier | None = None,
    ) -> DuplicateReport:
        """Tiered duplicate pairs and groups (see :mod:`lookalike.duplicates.finder`);
        ``verify`` confirms edited copies, ``settle`` checks the undecided pairs."""
        if self._store.manifest.metric != "cosine":
            raise InvalidInputError(
                "duplicate grouping needs a cosine index (its thresholds are cosine similarities)"
            )
        snapshot = self.snapshot()
        index = snapshot.vectors
        check = _PairVerification(verify, snapshot.records) if verify is not None else None
        dismissed = self._store.catalog.not_duplicates()
        report = find_duplicates(
            index.ids,
            index.vectors,
            snapshot.records,
            options,
            confirm=check,
            settle=_UndecidedVerification(settle, snapshot.records) if settle else None,
            dismissed=dismissed,
            phashes=StoredPerceptualHashes(self._store, snapshot.records),
        )
        if check is None:
            return report
        return replace(report, verified_pairs=check.checked, dropped_pairs=check.dropped)

    def export_vectors(self) -> tuple[list[str], npt.NDArray[np.float32]]:
        """(paths, vectors) of every indexed image, in id order: the embeddings themselves."""
        index = self.vector_index()
        records = self._store.catalog.by_ids(index.ids.tolist())
        return [records[i].path for i in index.ids.tolist()], index.vectors.copy()

    def info(self, *, search_index: str) -> IndexInfo:
        manifest = self._store.manifest
        try:
            graph = self._graphs.saved()
        except DamagedGraphError:
            graph = None  # `lookalike verify` names the damage; info still describes the rest
        return IndexInfo(
            directory=str(self._store.directory),
            count=self.count(),
            embedder=manifest.embedder.name,
            embedder_params=dict(manifest.embedder.params),
            descriptor=describe_recipe(manifest.embedder),
            weights_digest=manifest.weights_digest,
            dim=manifest.dim,
            metric=manifest.metric,
            index_type=manifest.index_type,
            search_index=search_index,
            ann_recall_at_10=graph.recall_at_10 if graph else None,
            ann_params=asdict(graph.params) if graph else None,
            format_version=manifest.format_version,
            size_bytes=self._store.size_on_disk(),
            created=manifest.created,
            lookalike_version=manifest.lookalike_version,
            reranking=manifest.reranking.to_json(),
            product_field=self.product_field(),
            vector_dtype=manifest.vector_dtype,
            keep_float32=manifest.keep_float32,
        )


def describe_recipe(spec: EmbedderSpec) -> str | None:
    """How a pretrained network's features become the descriptor (None for other embedders)."""
    from lookalike.embedders.quality import takes_recipe
    from lookalike.embedders.recipe import Recipe

    if not takes_recipe(spec):
        return None
    recipe = Recipe.from_params(spec.params)
    return recipe.describe() + (" (classic)" if recipe.is_classic else "")


__all__ = ["Collection", "IndexInfo", "Snapshot"]
