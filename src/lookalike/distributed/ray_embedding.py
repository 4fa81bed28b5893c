"""Embedding on a Ray cluster with Ray Data.

The driver turns the paths into a dataset of (row, path) items. Ray tasks decode and prepare the
files (a bad file becomes a reason, never a failed job); an actor pool, each actor holding one
embedder built once, embeds the decoded batches and writes each batch as a shard:
``shard-*.npy`` (float32 vectors, no pickle) and ``shard-*.json`` (the rows those vectors belong
to, and the reasons of the rows that could not be decoded). The JSON is written last, so a shard
whose JSON exists is complete. The driver reads the shards back as they finish and hands on
every row exactly once.

The paths and the shard folder must mean the same files on the driver and on every worker: a
shared filesystem on a real cluster, automatically so on a local Ray.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from lookalike import durable
from lookalike.distributed.ray_cluster import check_reachable, connect
from lookalike.embedders import create_embedder
from lookalike.embedders.base import EmbedderSpec
from lookalike.embedders.batching import embed_images
from lookalike.errors import (
    IndexFormatError,
    InvalidInputError,
    ModelError,
)
from lookalike.imaging import DEFAULT_MAX_PIXELS, decode_for_model
from lookalike.input_spec import InputSpec

if TYPE_CHECKING:
    import ray.data

RAY_INSTALL_HINT = "pip install 'lookalike[ray]'"
SHARD_FORMAT = 1

#: (index into the paths, the vector or None, the reason it was skipped or None)
EmbeddedRow = tuple[int, npt.NDArray[np.float32] | None, str | None]
Batch = dict[str, npt.NDArray[Any]]


@dataclass(frozen=True)
class Shard:
    """One batch as a worker wrote it: ``vectors[i]`` belongs to ``rows[i]``; ``errors`` holds
    (row, reason) for the rows that could not be decoded."""

    rows: npt.NDArray[np.int64]
    vectors: npt.NDArray[np.float32]
    errors: tuple[tuple[int, str], ...]


def embed_with_ray(
    paths: Sequence[str],
    spec: EmbedderSpec,
    *,
    address: str,
    shard_dir: Path,
    batch_size: int = 32,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int = 2,
) -> Iterator[EmbeddedRow]:
    """Embed ``paths`` on a Ray cluster; yield ``(index, vector, None)`` or
    ``(index, None, reason)`` once for every path, in the order batches finish.

    ``address`` is ``"local"`` (start a Ray on this machine, shut it down afterwards), ``"auto"``
    or ``HOST:PORT`` of a running cluster (``ray://HOST:PORT`` for Ray Client). ``workers`` is
    the number of embedding actors; each writes its batches as shards under ``shard_dir``. If
    this process is already connected to Ray, that connection is used and left open.

    Options, Ray and the address are checked here; Ray starts on the first ``next()``.

    Example:
        >>> rows = embed_with_ray(paths, EmbedderSpec("efficientnet-lite0"),  # doctest: +SKIP
        ...                       address="local", shard_dir=Path("vectors"))
        >>> for index, vector, reason in rows:  # doctest: +SKIP
        ...     print(paths[index], reason or vector.shape)
    """
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be at least 1, got {batch_size}")
    if workers < 1:
        raise InvalidInputError(f"workers (Ray embedding actors) must be at least 1, got {workers}")
    try:
        import ray.data  # noqa: F401  (fail here, not inside the generator)
    except ImportError as exc:
        raise InvalidInputError(
            f"embedding on Ray (address {address!r}) needs Ray Data, which is not installed "
            f"({exc}); run `{RAY_INSTALL_HINT}`"
        ) from exc
    check_reachable(address)
    if not paths:
        return iter(())
    # Built once on the driver: it checks the spec, tells the decoders the input size, and on a
    # local Ray leaves the exported model in the cache the actors then read.
    embedder = create_embedder(spec)
    return _run(
        [str(Path(p).absolute()) for p in paths],
        spec,
        embedder.input_spec,
        embedder.dim,
        address=address,
        shard_dir=Path(shard_dir).absolute(),
        batch_size=batch_size,
        max_pixels=max_pixels,
        workers=workers,
    )


def read_shard(path: Path) -> Shard:
    """Load a shard from its ``.json`` file (the vectors are the ``.npy`` beside it)."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        vectors = np.load(path.with_suffix(".npy"), allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise IndexFormatError(
            f"{path}: cannot read Ray shard ({exc}); run the indexing again"
        ) from exc
    if not isinstance(meta, dict) or meta.get("format") != SHARD_FORMAT:
        raise IndexFormatError(
            f"{path}: expected a shard of format {SHARD_FORMAT}, got {str(meta)[:200]}; "
            "run the indexing again with the same lookalike version"
        )
    rows = np.asarray(meta.get("rows", []), dtype=np.int64)
    errors = tuple((int(row), str(reason)) for row, reason in meta.get("errors", []))
    if vectors.dtype != np.float32 or vectors.ndim != 2 or len(vectors) != len(rows):
        raise IndexFormatError(
            f"{path}: {len(rows)} rows but vectors of {vectors.dtype} {vectors.shape}; "
            "the shard is damaged, run the indexing again"
        )
    return Shard(rows=rows, vectors=vectors, errors=errors)


def _run(
    paths: list[str],
    spec: EmbedderSpec,
    input_spec: InputSpec,
    dim: int,
    *,
    address: str,
    shard_dir: Path,
    batch_size: int,
    max_pixels: int,
    workers: int,
) -> Iterator[EmbeddedRow]:
    import ray
    import ray.data

    shard_dir.mkdir(parents=True, exist_ok=True)
    started_here = not ray.is_initialized()
    if started_here:
        connect(address)
    context = ray.data.DataContext.get_current()
    progress_bars = context.enable_progress_bars
    context.enable_progress_bars = False  # the caller reports progress from what we yield
    try:
        shards = _pipeline(
            paths,
            spec,
            input_spec,
            dim,
            shard_dir=shard_dir,
            batch_size=batch_size,
            max_pixels=max_pixels,
            workers=workers,
        )
        seen = np.zeros(len(paths), dtype=bool)
        for record in _iter_shard_names(shards, address):
            shard = read_shard(shard_dir / f"{record}.json")
            results: list[EmbeddedRow] = [
                (int(row), vector, None)
                for row, vector in zip(shard.rows.tolist(), shard.vectors, strict=True)
            ]
            results.extend((row, None, reason) for row, reason in shard.errors)
            for row, vector, reason in results:
                if not 0 <= row < len(paths):
                    raise IndexFormatError(
                        f"{shard_dir / record}.json: row {row} is outside 0..{len(paths) - 1}"
                    )
                if not seen[row]:  # a batch Ray retried may have written a second shard
                    seen[row] = True
                    yield row, vector, reason
        if not seen.all():
            missing = int((~seen).sum())
            first = paths[int(np.argmin(seen))]
            raise ModelError(
                f"the Ray cluster at {address} returned no result for {missing} of {len(paths)} "
                f"files (first: {first}); run the indexing again"
            )
    finally:
        context.enable_progress_bars = progress_bars
        if started_here:
            ray.shutdown()


def _pipeline(
    paths: list[str],
    spec: EmbedderSpec,
    input_spec: InputSpec,
    dim: int,
    *,
    shard_dir: Path,
    batch_size: int,
    max_pixels: int,
    workers: int,
) -> ray.data.Dataset:
    import ray
    import ray.data

    resources = ray.cluster_resources()  # type: ignore[no-untyped-call]
    cluster_cpus = float(resources.get("CPU", 1.0))
    items = [{"row": i, "path": p} for i, p in enumerate(paths)]
    # One block per batch, and at least one per actor: every stage then maps whole blocks
    # (batch_size=None), so a block is one decoding task, one embedding call and one shard.
    blocks = max(math.ceil(len(items) / batch_size), min(len(items), workers))
    dataset = ray.data.from_items(items, override_num_blocks=blocks)
    decoded = dataset.map_batches(
        Decoder(input_spec, max_pixels), batch_size=None, batch_format="numpy"
    )
    return decoded.map_batches(
        ShardWriter,
        fn_constructor_kwargs={"spec": spec, "dim": dim, "shard_dir": str(shard_dir)},
        compute=ray.data.ActorPoolStrategy(size=min(workers, blocks)),
        num_cpus=_actor_cpus(cluster_cpus, workers),
        batch_size=None,
        batch_format="numpy",
    )


def _iter_shard_names(shards: ray.data.Dataset, address: str) -> Iterator[str]:
    """The shard names, as the actors finish them; failures of the cluster become our errors."""
    try:
        for record in shards.iter_rows():
            yield str(record["shard"])
    except Exception as exc:  # Ray wraps worker failures in many exception types
        raise ModelError(
            f"embedding on the Ray cluster at {address} failed: {_worker_error(exc)}; check "
            "that every node has lookalike and the embedder's files installed and can read the "
            "images and the shard folder"
        ) from exc


@dataclass(frozen=True)
class Decoder:
    """Ray task: decode and prepare a batch of files; a bad file gets blank pixels and a reason."""

    spec: InputSpec
    max_pixels: int

    def __call__(self, batch: Batch) -> Batch:
        paths = batch["path"]
        prepared: list[npt.NDArray[np.uint8] | None] = []
        errors: list[str] = []
        for path in paths:
            decoded = decode_for_model(str(path), self.spec, max_pixels=self.max_pixels)
            prepared.append(decoded.pixels)
            errors.append(decoded.error or "")
        # Ray batches hold arrays of one shape: images that keep their aspect ratio travel on
        # a canvas as large as the batch's largest, with their own height and width beside.
        shapes = [p.shape[:2] if p is not None else (0, 0) for p in prepared]
        height = max([h for h, _ in shapes] + [1])
        width = max([w for _, w in shapes] + [1])
        pixels = np.zeros((len(paths), height, width, 3), dtype=np.uint8)
        for i, image in enumerate(prepared):
            if image is not None:
                pixels[i, : image.shape[0], : image.shape[1]] = image
        return {
            "row": batch["row"],
            "pixels": pixels,
            "height": np.asarray([h for h, _ in shapes], dtype=np.int32),
            "width": np.asarray([w for _, w in shapes], dtype=np.int32),
            "error": np.asarray(errors, dtype=np.str_),
        }


class ShardWriter:
    """Ray actor: builds the embedder once, then embeds each decoded batch and writes a shard."""

    def __init__(self, spec: EmbedderSpec, dim: int, shard_dir: str) -> None:
        # One thread per actor: Ray gives each actor its own share of the cores.
        self._embedder = create_embedder(spec, threads=1)
        self._dim = dim
        self._folder = Path(shard_dir)

    def __call__(self, batch: Batch) -> Batch:
        rows = batch["row"].astype(np.int64)
        errors = batch["error"]
        good = errors == ""
        if good.any():
            canvas = batch["pixels"]
            images = [
                np.ascontiguousarray(canvas[i, :h, :w], dtype=np.uint8)
                for i, h, w in zip(
                    np.flatnonzero(good),
                    batch["height"][good],
                    batch["width"][good],
                    strict=True,
                )
            ]
            vectors = embed_images(self._embedder, images)
        else:
            vectors = np.zeros((0, self._dim), dtype=np.float32)
        failed = [(int(r), str(e)) for r, e in zip(rows[~good], errors[~good], strict=True)]
        name = write_shard(self._folder, rows[good], vectors, failed)
        return {"shard": np.asarray([name], dtype=np.str_)}


def write_shard(
    folder: Path,
    rows: npt.NDArray[np.int64],
    vectors: npt.NDArray[np.float32],
    errors: list[tuple[int, str]],
) -> str:
    """Write one shard (vectors first, the JSON that completes it last); returns its name."""
    first = min([*rows.tolist(), *(row for row, _ in errors)], default=0)
    name = f"shard-{first:010d}-{uuid.uuid4().hex[:12]}"
    meta = {
        "format": SHARD_FORMAT,
        "rows": rows.tolist(),
        "dim": int(vectors.shape[1]),
        "writer": {"host": socket.gethostname(), "pid": os.getpid()},
        "errors": [[row, reason] for row, reason in errors],
    }
    durable.write_with(folder / f"{name}.npy", lambda f: np.save(f, vectors, allow_pickle=False))
    durable.write_bytes(folder / f"{name}.json", (json.dumps(meta) + "\n").encode("utf-8"))
    return name


def _actor_cpus(cluster_cpus: float, workers: int) -> float:
    """Each actor's CPU share, leaving one CPU for the decoding tasks: on a 2-core machine two
    whole-CPU actors would hold every CPU and the decoders would never be scheduled."""
    share = (cluster_cpus - 1.0) / workers if cluster_cpus > 1.0 else cluster_cpus / (workers + 1)
    return max(0.01, min(1.0, math.floor(share * 100) / 100))


#: A line of a traceback that names an exception: ``lookalike.errors.ModelError: …``.
_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception)): (.+)$")


def _worker_error(exc: BaseException) -> str:
    """What went wrong on the worker, in one line. Ray hands the worker's exception back as text
    (its traceback inside a RayTaskError, UserCodeException or ActorDiedError message), so the
    last line naming an exception other than Ray's own wrappers is the real cause."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    named = [line for line in lines if _ERROR_LINE.match(line) and not line.startswith("ray.")]
    if named:
        return named[-1][:500]
    return f"{type(exc).__name__}: {lines[-1][:500] if lines else 'no message'}"
