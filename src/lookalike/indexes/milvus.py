"""Search served by a Milvus collection, through pymilvus's ``MilvusClient``.

For an index too big for one machine: the vectors live in an existing Milvus cluster
(``http://host:19530``), or in milvus-lite, its embedded edition, with a local ``name.db`` uri.
The collection holds one row per image: the lookalike image id as primary key, a digest of the
vector's bytes, and the vector. The digest lets ``sync_from`` find changed vectors by reading 16
bytes per row instead of every vector.

Scores follow lookalike's convention whatever the metric: Milvus's COSINE "distance" is already
the cosine similarity, and its L2 "distance" is the *squared* euclidean distance, which is turned
into the negated distance here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from lookalike.errors import IndexFormatError, InvalidInputError
from lookalike.indexes.base import (
    FloatArray,
    IdArray,
    check_metric,
    empty_results,
    euclidean_score,
)
from lookalike.indexes.hnsw import HnswParams

#: Milvus's metric names for lookalike's.
_METRICS = {"cosine": "COSINE", "euclidean": "L2"}
#: Bytes of vectors sent in one request. Far below gRPC's limit: milvus-lite 2.x inserts ~30x
#: slower per row in 8 MiB requests than in 2 MiB ones.
_REQUEST_BYTES = 2 * 1024 * 1024
#: Milvus refuses more results per query, and more queries per request, than this.
_MAX_TOPK = 16_384
#: Ids per delete request and per page when reading ids back.
_ID_BATCH = 10_000
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


@dataclass(frozen=True)
class SyncReport:
    """What ``sync_from`` changed: rows written (new or changed), rows deleted, rows kept."""

    upserted: int
    removed: int
    unchanged: int


class MilvusIndex:
    """FAISS-like ``search(queries, k) -> (scores, ids)`` over a Milvus collection.

    The collection is created when missing, with an exact (FLAT) index, or an HNSW graph when
    ``hnsw`` is given. An existing collection must have the same dimension and metric.

    Example:
        >>> index = MilvusIndex("gallery.db", "gallery", dim=1280)  # doctest: +SKIP
        >>> index.sync_from(ids, vectors)  # doctest: +SKIP
        >>> scores, found = index.search(queries, 10)  # doctest: +SKIP
    """

    def __init__(
        self,
        uri: str,
        collection: str,
        *,
        dim: int,
        metric: str = "cosine",
        token: str | None = None,
        hnsw: HnswParams | None = None,
    ) -> None:
        if not isinstance(uri, str) or not uri.strip():
            raise InvalidInputError(
                "uri must name a Milvus server (http://host:19530) or a local milvus-lite file "
                f"ending in .db, got {uri!r}"
            )
        if not isinstance(collection, str) or not _NAME.fullmatch(collection):
            raise InvalidInputError(
                "collection must be 1-255 letters, digits or underscores, not starting with a "
                f"digit (Milvus's rule), got {collection!r}"
            )
        if not isinstance(dim, int) or dim < 1:
            raise InvalidInputError(f"dim must be a positive integer, got {dim!r}")
        check_metric(metric)
        if hnsw is not None and hnsw.pca_dim:
            raise InvalidInputError(
                f"a Milvus HNSW index has no PCA projection: pass pca_dim=0, got {hnsw.pca_dim}"
            )
        self.uri = uri
        self.collection = collection
        self.dim = dim
        self.metric = metric
        self._where = f"Milvus at {uri!r}, collection {collection!r}"
        self._client = _connect(uri, token)
        try:
            if self._call("has_collection", collection):
                self.index_type, self._ef = self._check_existing(hnsw)
            else:
                self.index_type, self._ef = self._create(hnsw)
        except BaseException:
            self.close()
            raise

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> MilvusIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------------

    def __len__(self) -> int:
        rows = self._call("query", self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def ids(self) -> set[int]:
        return set(self._stored_digests())

    def search(self, queries: FloatArray, k: int) -> tuple[FloatArray, IdArray]:
        """Top-k (scores, ids) per query, ordered by score then id; short rows padded with
        -inf and -1."""
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise InvalidInputError(f"queries must have shape (n, {self.dim}), got {queries.shape}")
        if k < 1:
            raise InvalidInputError(f"k must be at least 1, got {k}")
        scores, ids = empty_results(len(queries), k)
        limit = k
        if k > _MAX_TOPK:
            limit = len(self)
            if limit > _MAX_TOPK:
                raise InvalidInputError(
                    f"{self._where} returns at most {_MAX_TOPK} results per query, asked for {k}"
                )
        if len(queries) == 0 or limit == 0:
            return scores, ids
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        params: dict[str, Any] = {"params": {"ef": max(self._ef, limit)}} if self._ef else {}
        for start, stop in _batches(len(queries), min(_MAX_TOPK, _rows_per_request(self.dim))):
            hits = self._call(
                "search",
                self.collection,
                data=queries[start:stop],
                limit=limit,
                output_fields=["id"],
                search_params=params,
            )
            for row, found in enumerate(hits, start=start):
                width = min(len(found), k)
                distances = np.array([h["distance"] for h in found[:width]], dtype=np.float32)
                scores[row, :width] = self._scores(distances)
                ids[row, :width] = [int(h["id"]) for h in found[:width]]
        order = np.lexsort((ids, -scores), axis=1)  # Milvus does not settle ties by id
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)

    def _scores(self, distances: FloatArray) -> FloatArray:
        if self.metric == "cosine":
            return distances
        return euclidean_score(np.sqrt(np.maximum(distances, 0.0)).astype(np.float32))

    # -- writing -----------------------------------------------------------------------------

    def upsert(self, ids: IdArray, vectors: FloatArray) -> None:
        """Insert these rows, replacing the vectors of ids already stored."""
        ids, vectors = self._check_rows(ids, vectors)
        self._write(ids, vectors, _digests(vectors))

    def remove(self, ids: list[int]) -> None:
        """Delete these ids; ids not stored are ignored."""
        unique = sorted({int(i) for i in ids})
        for start, stop in _batches(len(unique), _ID_BATCH):
            self._call("delete", self.collection, ids=unique[start:stop])

    def sync_from(self, ids: IdArray, vectors: FloatArray) -> SyncReport:
        """Make the collection hold exactly these rows: write new and changed vectors, delete
        ids not given, leave identical rows untouched; then flush, as after any bulk load."""
        ids, vectors = self._check_rows(ids, vectors)
        digests = _digests(vectors)
        stored = self._stored_digests()
        changed = np.array(
            [stored.get(int(i)) != int(d) for i, d in zip(ids, digests, strict=True)], dtype=bool
        )
        extra = set(stored) - set(ids.tolist())
        self.remove(sorted(extra))
        self._write(ids[changed], vectors[changed], digests[changed])
        upserted = int(changed.sum())
        if upserted or extra:
            self.flush()
        return SyncReport(upserted=upserted, removed=len(extra), unchanged=len(ids) - upserted)

    def flush(self) -> None:
        """Seal the rows written so far into segments. A server also does this on its own;
        milvus-lite searches sealed rows ~10x faster than freshly written ones."""
        self._call("flush", self.collection)

    def _write(self, ids: IdArray, vectors: FloatArray, digests: IdArray) -> None:
        for start, stop in _batches(len(ids), _rows_per_request(self.dim)):
            rows = [
                {"id": int(i), "digest": int(d), "vector": v}
                for i, d, v in zip(
                    ids[start:stop], digests[start:stop], vectors[start:stop], strict=True
                )
            ]
            self._call("upsert", self.collection, rows)

    def _check_rows(self, ids: IdArray, vectors: FloatArray) -> tuple[IdArray, FloatArray]:
        ids = np.asarray(ids)
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise InvalidInputError(f"ids must be a 1-d integer array, got {ids.dtype} {ids.shape}")
        if vectors.ndim != 2 or vectors.shape[1] != self.dim or len(vectors) != len(ids):
            raise InvalidInputError(
                f"vectors must have shape ({len(ids)}, {self.dim}) for {len(ids)} ids, "
                f"got {vectors.shape}"
            )
        if len(ids) and ids.min() < 0:
            raise InvalidInputError(f"ids must be >= 0 (-1 marks a missing result): {ids.min()}")
        if len(np.unique(ids)) != len(ids):
            raise InvalidInputError("ids must be unique: one row per image id")
        return ids.astype(np.int64), np.ascontiguousarray(vectors, dtype=np.float32)

    # -- the collection ----------------------------------------------------------------------

    def _stored_digests(self) -> dict[int, int]:
        return {int(row["id"]): int(row["digest"]) for row in self._pages(["id", "digest"])}

    def _pages(self, fields: list[str]) -> Iterator[dict[str, Any]]:
        pages = self._call(
            "query_iterator", self.collection, batch_size=_ID_BATCH, output_fields=fields
        )
        try:
            while page := pages.next():
                yield from page
        finally:
            pages.close()

    def _create(self, hnsw: HnswParams | None) -> tuple[str, int]:
        from pymilvus import DataType

        schema = self._call("create_schema", auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("digest", DataType.INT64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        index = self._call("prepare_index_params")
        if hnsw is None:
            index.add_index("vector", index_type="FLAT", metric_type=_METRICS[self.metric])
        else:
            index.add_index(
                "vector",
                index_type="HNSW",
                metric_type=_METRICS[self.metric],
                params={"M": hnsw.m, "efConstruction": hnsw.ef_construction},
            )
        # Strong consistency: a search right after a write sees it (Milvus defaults to Bounded).
        self._call(
            "create_collection",
            self.collection,
            schema=schema,
            index_params=index,
            consistency_level="Strong",
        )
        return ("FLAT", 0) if hnsw is None else ("HNSW", hnsw.ef_search)

    def _check_existing(self, hnsw: HnswParams | None) -> tuple[str, int]:
        from pymilvus import DataType

        fix = "drop it, or pass another collection name"
        described = self._call("describe_collection", self.collection)
        fields = {f["name"]: f for f in described["fields"]}
        expected = {"id": DataType.INT64, "digest": DataType.INT64, "vector": DataType.FLOAT_VECTOR}
        if any(name not in fields or fields[name]["type"] != t for name, t in expected.items()):
            raise IndexFormatError(
                f"{self._where} was not made by lookalike (fields {sorted(fields)}, expected "
                f"int64 id, int64 digest and a float vector): {fix}"
            )
        if not fields["id"].get("is_primary"):
            raise IndexFormatError(f"{self._where}: 'id' is not the primary key: {fix}")
        found_dim = int(fields["vector"].get("params", {}).get("dim", -1))
        if found_dim != self.dim:
            raise IndexFormatError(
                f"{self._where} holds {found_dim}-d vectors, not {self.dim}-d: pass "
                f"dim={found_dim}, or {fix}"
            )
        names = self._call("list_indexes", self.collection, field_name="vector")
        if not names:
            raise IndexFormatError(f"{self._where} has no index on 'vector': {fix}")
        index = self._call("describe_index", self.collection, names[0])
        found_metric = str(index.get("metric_type", "")).upper()
        if found_metric != _METRICS[self.metric]:
            raise IndexFormatError(
                f"{self._where} was indexed for metric {found_metric}, not "
                f"{_METRICS[self.metric]} ({self.metric}): pass the matching metric, or {fix}"
            )
        index_type = str(index.get("index_type", ""))
        if hnsw is not None and index_type != "HNSW":
            raise InvalidInputError(
                f"{self._where} already has a {index_type} index; omit hnsw to use it, or {fix}"
            )
        if hnsw is not None:
            ef = hnsw.ef_search
        else:  # an HNSW graph made elsewhere is searched with lookalike's default breadth
            ef = HnswParams().ef_search if index_type == "HNSW" else 0
        self._call("load_collection", self.collection)
        return index_type, ef

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call the client, naming the uri, collection and operation when Milvus fails."""
        from pymilvus.exceptions import MilvusException

        if self._client is None:
            raise InvalidInputError(f"{self._where} is closed")
        try:
            return getattr(self._client, method)(*args, **kwargs)
        except MilvusException as exc:
            raise IndexFormatError(
                f"{self._where}: {method} failed ({exc.message}); check that the server is "
                "running and the collection matches this index"
            ) from exc


def _connect(uri: str, token: str | None) -> Any:
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    try:
        return MilvusClient(uri=uri, token=token or "")
    except MilvusException as exc:
        raise InvalidInputError(
            f"cannot open Milvus at {uri!r}: {exc.message}. Pass a running server's address "
            "(http://host:19530, with token= if it needs one) or a path ending in .db in an "
            "existing folder (milvus-lite)"
        ) from exc


def _digests(vectors: FloatArray) -> IdArray:
    """A 64-bit digest of each vector's bytes, to find rows whose vector changed."""
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), signed=True)
            for row in vectors
        ],
        dtype=np.int64,
    )


def _rows_per_request(dim: int) -> int:
    return max(1, _REQUEST_BYTES // (4 * dim))


def _batches(n: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(n, start + size)


__all__ = ["MilvusIndex", "SyncReport"]
