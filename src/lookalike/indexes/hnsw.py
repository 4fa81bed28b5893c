"""Approximate search on an HNSW graph (hnswlib), optionally in a PCA-reduced space.

With a PCA projection the graph finds ``rerank`` candidates in the reduced space and they are
re-scored with the full vectors (read by id from the segments), so scores are exact and the
projection costs little recall: measured on a million vectors, PCA to 128 keeps 62 % of the
true top 10 in its own top 10 but 99 % in its top 100 (benchmarks/ann_scale.py).

The graph is a derived structure: the catalog and the vector segments stay the truth. A writer
brings the graph up to date after each indexing run (adding new images, marking removed ones
deleted, no rebuild), measures its recall@10 against exact search, and saves it under a new
name before switching the pointer file (``ann.json``) to it, so a crash never leaves a torn
graph in use. Readers apply whatever changed since (a few adds or deletes) in memory.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lookalike import durable, huge_pages
from lookalike.checksums import file_checksum, is_known
from lookalike.errors import DamagedGraphError, InvalidInputError
from lookalike.indexes.base import FloatArray, IdArray, check_metric, empty_results
from lookalike.indexes.exact import best, search_table, similarity
from lookalike.vector_table import VectorTable

POINTER = "ann.json"


@dataclass(frozen=True)
class HnswParams:
    """Graph degree M, build and search breadth, an optional PCA dimension (0: none), PCA
    whitening, and how many graph candidates are re-scored with the full vectors (0: none,
    scores then come from the reduced space).

    The search defaults were picked on a million vectors of the benchmark's mixture
    (benchmarks/ann_scale.py): ef 96 with 80 re-scored gives recall@10 0.968 at 0.87-0.89 ms
    p50 through ``search_vectors``, where ef 128 with 100 gave 0.981 at 1.00-1.02 ms (three
    passes each, alternated in one process)."""

    m: int = 16
    ef_construction: int = 100
    ef_search: int = 96
    pca_dim: int = 0
    whiten: bool = False
    rerank: int = 80

    def __post_init__(self) -> None:
        if not 4 <= self.m <= 128 or self.ef_construction < self.m or self.ef_search < 1:
            raise InvalidInputError(f"unusable HNSW parameters: {self}")
        if self.pca_dim < 0:
            raise InvalidInputError(f"PCA dimension must be 0 (off) or positive: {self.pca_dim}")
        if self.rerank < 0:
            raise InvalidInputError(f"rerank must be 0 (off) or positive: {self.rerank}")
        if self.whiten and not self.pca_dim:
            raise InvalidInputError("whitening needs a PCA projection: set pca_dim (--pca)")


@dataclass(frozen=True)
class GraphInfo:
    """What ``ann.json`` records about the graph in use."""

    file: str
    deleted_file: str
    pca_file: str
    params: HnswParams
    dim: int
    count: int
    recall_at_10: float
    recall_queries: int
    #: File name -> checksum of the graph, deleted-ids and PCA files, recorded when saved
    #: (empty in pointers written before checksums: those graphs are unchecked).
    checksums: dict[str, str] = field(default_factory=dict)

    def files(self) -> list[str]:
        """The files this graph consists of."""
        return [name for name in (self.file, self.deleted_file, self.pca_file) if name]

    def damage(self, folder: Path) -> list[str]:
        """What is wrong with the graph's files in ``folder`` (missing, or a checksum that
        differs from the one recorded); empty when every file is as saved."""
        found = []
        for name in self.files():
            path = folder / name
            if not path.is_file():
                found.append(f"{path}: graph file missing")
                continue
            recorded = self.checksums.get(name)
            if recorded is not None and is_known(recorded):
                actual = file_checksum(path)
                if actual != recorded:
                    found.append(
                        f"{path}: checksum {actual} differs from the {recorded} recorded when "
                        "the graph was saved"
                    )
        return found


class Projection:
    """A PCA projection learned on the collection: mean and principal axes (divided by the
    square root of their variance when whitened), in .npy files. Outputs are L2-normalised."""

    def __init__(self, mean: FloatArray, axes: FloatArray) -> None:
        self.mean = mean
        self.axes = axes  # (dim_in, dim_out)
        # (x - mean) @ axes == x @ axes - mean @ axes: a query batch is projected without a
        # centred copy (a single query's projection cost more than its graph search).
        self._shift = (mean @ axes).astype(np.float32)

    @classmethod
    def fit(
        cls, vectors: FloatArray, dim: int, *, whiten: bool = False, seed: int = 0
    ) -> Projection:
        return cls.fit_rows(
            lambda rows: vectors[rows], sample_rows(len(vectors), seed), dim, whiten=whiten
        )

    @classmethod
    def fit_rows(
        cls,
        read: Callable[[npt.NDArray[np.intp]], FloatArray],
        rows: npt.NDArray[np.intp],
        dim: int,
        *,
        whiten: bool = False,
    ) -> Projection:
        """The projection learned on the vectors ``read(rows)`` gives, read and summed a block
        at a time: memory stays small whatever the sample and however the vectors are stored
        (``VectorTable.rows`` decodes compact ones)."""
        blocks = [rows[start : start + 8192] for start in range(0, len(rows), 8192)]
        width = read(rows[:1]).shape[1]
        if dim >= width:
            raise InvalidInputError(f"PCA to {dim} dimensions needs vectors of more than {dim}")
        total, products = np.zeros(width), np.zeros((width, width))
        for block in blocks:  # one pass: each block read (decoded) once
            values = read(block).astype(np.float64)
            total += values.sum(axis=0)
            products += values.T @ values
        mean = total / max(len(rows), 1)
        scatter = products - len(rows) * np.outer(mean, mean)  # the centred rows' scatter
        eigenvalues, eigenvectors = np.linalg.eigh(scatter)
        axes = eigenvectors[:, ::-1][:, :dim]
        if whiten:
            variance = np.maximum(eigenvalues[::-1][:dim], 0.0) / max(len(rows) - 1, 1)
            axes = axes / np.sqrt(variance + 1e-6 * max(float(variance[0]), 1e-12))
        return cls(mean.astype(np.float32), np.ascontiguousarray(axes, dtype=np.float32))

    def __call__(self, vectors: FloatArray) -> FloatArray:
        if len(vectors) <= 64:  # queries: one product, no blocks
            small = np.asarray(vectors, dtype=np.float32) @ self.axes
            small -= self._shift
            small /= np.maximum(np.sqrt(np.einsum("ij,ij->i", small, small)), 1e-12)[:, None]
            return small
        out = np.empty((len(vectors), self.axes.shape[1]), dtype=np.float32)
        for start in range(0, len(vectors), 65_536):  # bounded temporaries for big collections
            block = (vectors[start : start + 65_536] - self.mean) @ self.axes
            norms = np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
            out[start : start + len(block)] = block / norms
        return out

    def save(self, path: Path) -> None:
        stacked = np.concatenate([self.mean[None, :], self.axes.T]).astype(np.float32)
        durable.write_with(path, lambda fh: np.save(fh, stacked, allow_pickle=False))

    @classmethod
    def load(cls, path: Path) -> Projection:
        stacked = np.load(path, allow_pickle=False)
        return cls(stacked[0], np.ascontiguousarray(stacked[1:].T))


class HnswIndex:
    """FAISS-like ``search(queries, k) -> (scores, ids)`` over an hnswlib graph."""

    def __init__(
        self,
        graph: Any,
        *,
        metric: str,
        params: HnswParams,
        projection: Projection | None,
        deleted: set[int],
        table: VectorTable | None = None,
    ) -> None:
        self.graph = graph
        self.metric = metric
        self.params = params
        self.projection = projection
        self.deleted = deleted
        #: The full vectors by id, for re-scoring the candidates of a PCA graph.
        self.table = table
        self._ef = -1  # the search breadth last given to hnswlib

    @property
    def reranks(self) -> bool:
        """Whether candidates found in the reduced space are re-scored with the full vectors."""
        return self.projection is not None and self.params.rerank > 0 and self.table is not None

    def __len__(self) -> int:
        return int(self.graph.get_current_count()) - len(self.deleted)

    @classmethod
    def build(
        cls, ids: IdArray, vectors: FloatArray, *, metric: str, params: HnswParams
    ) -> HnswIndex:
        """The graph of vectors in memory (see ``build_from``)."""
        return cls.build_from(VectorTable.of(ids, vectors), metric=metric, params=params)

    @classmethod
    def build_from(cls, table: VectorTable, *, metric: str, params: HnswParams) -> HnswIndex:
        """The graph of ``table``'s vectors (an index's memory-mapped segments, as stored:
        float32, float16 or int8), read and decoded a block of rows at a time: there is never a
        copy of every vector in memory, so the only memory a build needs is the graph's. The
        table is also what candidates are re-scored with."""
        check_metric(metric)
        n = len(table)
        projection = None
        if params.pca_dim:
            projection = Projection.fit_rows(
                table.rows, sample_rows(n, 0), params.pca_dim, whiten=params.whiten
            )
        dim = projection.axes.shape[1] if projection else table.dim
        graph = _new_graph(metric, dim, n, params)
        for start in range(0, n, _BUILD_BLOCK):
            ids = table.ids[start : start + _BUILD_BLOCK]
            block = table.take(ids)
            graph.add_items(projection(block) if projection else block, ids)
        graph.set_ef(params.ef_search)
        return cls(
            graph,
            metric=metric,
            params=params,
            projection=projection,
            deleted=set(),
            table=table,
        )

    def ids(self) -> set[int]:
        return {int(i) for i in self.graph.get_ids_list()} - self.deleted

    def id_array(self) -> IdArray:
        """The ids the graph answers with, sorted (a set of Python ints is ~60 bytes an id:
        at ten million ids, gigabytes and seconds for every reader that opens the graph)."""
        present = np.sort(np.asarray(self.graph.get_ids_list(), dtype=np.int64))
        if not self.deleted:
            return present
        gone = np.fromiter(self.deleted, dtype=np.int64, count=len(self.deleted))
        return present[~np.isin(present, gone)]

    def add(self, ids: IdArray, vectors: FloatArray) -> None:
        if not len(ids):
            return
        needed = int(self.graph.get_current_count()) + len(ids)
        if needed > self.graph.get_max_elements():
            with huge_pages.for_new_memory(collapse=True):  # the graph is copied to new memory
                self.graph.resize_index(max(needed, int(self.graph.get_max_elements() * 1.25)))
        space = self.projection(vectors) if self.projection else vectors
        self.graph.add_items(space, ids)

    def remove(self, ids: list[int]) -> None:
        for image_id in ids:
            if image_id not in self.deleted:
                self.graph.mark_deleted(int(image_id))
                self.deleted.add(int(image_id))

    def search(self, queries: FloatArray, k: int) -> tuple[FloatArray, IdArray]:
        scores, ids = empty_results(len(queries), k)
        kk = min(k, len(self))
        if kk == 0:
            return scores, ids
        space = self.projection(queries) if self.projection else queries
        table = self.table if self.reranks else None
        wanted = min(max(self.params.rerank, kk), len(self)) if table is not None else kk
        ef = max(self.params.ef_search, wanted)
        if ef != self._ef:
            self.graph.set_ef(ef)
            self._ef = ef
        # One query gains nothing from hnswlib's thread pool but the hand-off.
        threads = 1 if len(queries) == 1 else -1
        labels, distances = self.graph.knn_query(space, k=wanted, num_threads=threads)
        labels = labels.astype(np.int64)
        if table is not None:
            # Every row's candidates read in one gather, scored row by row against them.
            rows = table.take(labels.ravel()).reshape(len(labels), wanted, -1)
            for row, candidates in enumerate(labels):
                sims = similarity(queries[row : row + 1], rows[row], self.metric)
                found_scores, found_ids = best(sims, kk, candidates)
                scores[row, :kk], ids[row, :kk] = found_scores[0], found_ids[0]
            return scores, ids
        if self.metric == "cosine":
            scores[:, :kk] = 1.0 - distances
        else:
            scores[:, :kk] = -np.sqrt(np.maximum(distances, 0.0))
        ids[:, :kk] = labels
        return scores, ids

    def save(self, folder: Path, *, recall: float, queries: int, dim: int) -> GraphInfo:
        """Write the graph under new names, then point ``ann.json`` at them."""
        folder.mkdir(exist_ok=True)
        stem = f"hnsw-{uuid.uuid4().hex}"
        graph_file, deleted_file = f"{stem}.bin", f"{stem}.deleted.npy"
        with durable.staged(folder / graph_file) as tmp:
            self.graph.save_index(str(tmp))  # a graph can be gigabytes: written once, renamed
        deleted = np.array(sorted(self.deleted), dtype=np.int64)
        durable.write_with(
            folder / deleted_file, lambda fh: np.save(fh, deleted, allow_pickle=False)
        )
        pca_file = ""
        if self.projection is not None:
            pca_file = f"{stem}.pca.npy"
            self.projection.save(folder / pca_file)
        checksums = {
            name: file_checksum(folder / name)
            for name in (graph_file, deleted_file, pca_file)
            if name
        }
        info = GraphInfo(
            graph_file,
            deleted_file,
            pca_file,
            self.params,
            dim,
            len(self),
            recall,
            queries,
            checksums,
        )
        durable.write_bytes(folder / POINTER, json.dumps(asdict(info), indent=2).encode() + b"\n")
        keep = {graph_file, deleted_file, pca_file, POINTER}
        for stale in folder.iterdir():
            if stale.name not in keep and not stale.name.startswith("."):
                stale.unlink(missing_ok=True)
        return info

    @classmethod
    def load(cls, folder: Path, *, metric: str) -> tuple[HnswIndex, GraphInfo] | None:
        import hnswlib

        info = read_pointer(folder)
        if info is None:
            return None
        # Checked before hnswlib parses anything: flipped bits in a graph file crash the
        # process (SIGSEGV) in the middle of a search instead of raising.
        damage = info.damage(folder)
        if damage:
            raise _damaged(folder, f"{damage[0]}; the HNSW graph is damaged")
        dim = info.params.pca_dim or info.dim
        graph = hnswlib.Index(space="ip" if metric == "cosine" else "l2", dim=dim)
        try:
            with huge_pages.for_new_memory(collapse=True):
                graph.load_index(str(folder / info.file))
            deleted = {int(i) for i in np.load(folder / info.deleted_file, allow_pickle=False)}
            projection = Projection.load(folder / info.pca_file) if info.pca_file else None
        except (RuntimeError, ValueError, OSError, EOFError) as exc:
            raise _damaged(
                folder, f"{folder / info.file}: the HNSW graph cannot be read ({exc})"
            ) from exc
        graph.set_num_threads(_threads())
        return cls(
            graph, metric=metric, params=info.params, projection=projection, deleted=deleted
        ), info


def read_pointer(folder: Path) -> GraphInfo | None:
    """What ``ann.json`` in ``folder`` says of the graph in use; None where there is none."""
    pointer = folder / POINTER
    if not pointer.is_file():
        return None
    try:
        raw = json.loads(pointer.read_text())
        return GraphInfo(**{**raw, "params": HnswParams(**raw["params"])})
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise _damaged(folder, f"{pointer}: unreadable ANN pointer ({exc})") from exc


def _damaged(folder: Path, problem: str) -> DamagedGraphError:
    """The error for a graph that cannot be trusted, with what still works and the fix."""
    return DamagedGraphError(
        f"{problem}: exact search still works, and `lookalike verify --index {folder.parent} "
        "--repair` or the next `lookalike index` rebuilds the graph"
    )


#: Rows decoded, projected and inserted at a time by ``HnswIndex.build_from``.
_BUILD_BLOCK = 16_384


def sample_rows(n: int, seed: int = 0) -> npt.NDArray[np.intp]:
    """The rows (sorted) a projection is learned on: at most 50,000 of ``n``, seeded."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(n, 50_000), replace=False))


def measure_recall(
    ann: HnswIndex, table: VectorTable, *, queries: int = 200, k: int = 10, seed: int = 0
) -> tuple[float, int]:
    """Recall@k of the graph against exact search over ``table`` (streamed a block at a time,
    see :func:`search_table`), with stored vectors as queries."""
    n = len(table)
    if n == 0:
        return 1.0, 0
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=min(queries, n), replace=False))
    sample = table.rows(rows)
    _, truth = search_table(table, sample, k, metric=ann.metric)
    _, found = ann.search(sample, k)
    hits = sum(
        len(set(t[t >= 0].tolist()) & set(f[f >= 0].tolist()))
        for t, f in zip(truth, found, strict=True)
    )
    total = int(np.count_nonzero(truth >= 0))
    return (hits / total if total else 1.0), len(rows)


def _new_graph(metric: str, dim: int, count: int, params: HnswParams) -> Any:
    """An empty hnswlib graph for ``count`` vectors of ``dim`` with the build parameters."""
    import hnswlib

    graph = hnswlib.Index(space="ip" if metric == "cosine" else "l2", dim=dim)
    with huge_pages.for_new_memory(collapse=False):  # filled as vectors are added
        graph.init_index(
            max_elements=max(count, 1),
            ef_construction=params.ef_construction,
            M=params.m,
            random_seed=0,
            allow_replace_deleted=False,
        )
    graph.set_num_threads(_threads())
    return graph


def _threads() -> int:
    import os

    return os.cpu_count() or 1


__all__ = [
    "POINTER",
    "GraphInfo",
    "HnswIndex",
    "HnswParams",
    "Projection",
    "measure_recall",
    "read_pointer",
]
