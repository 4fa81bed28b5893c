"""Decoding images in worker processes while the network runs in the main one.

Work goes out in small chunks with a bounded number in flight, so memory stays flat however
many images are queued, and results come back in submission order.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from lookalike.imaging import DEFAULT_MAX_PIXELS, Decoded, decode_for_model
from lookalike.input_spec import InputSpec
from lookalike.sources import content_hash

T = TypeVar("T")
R = TypeVar("R")


def decode_chunk(paths: Sequence[str], spec: InputSpec, max_pixels: int) -> list[Decoded]:
    return [decode_for_model(path, spec, max_pixels=max_pixels) for path in paths]


def hash_chunk(paths: Sequence[str]) -> list[str | None]:
    out: list[str | None] = []
    for path in paths:
        try:
            out.append(content_hash(path))
        except OSError:
            out.append(None)
    return out


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


class WorkerPool:
    """A process pool (or, with ``workers=0``, the calling thread) mapping chunks in order."""

    def __init__(self, workers: int | None = None, *, chunk_size: int = 8) -> None:
        self.workers = default_workers() if workers is None else workers
        self.chunk_size = chunk_size
        self._executor: Executor | None = None
        if self.workers > 0:
            # fork, where there is one: spawn and forkserver re-run the user's __main__ script in
            # every worker, which breaks scripts without an `if __name__ == "__main__"` guard.
            # The forked workers only run PIL and NumPy, never the parent's ONNX Runtime threads.
            method = "fork" if sys.platform.startswith("linux") else "spawn"
            context = multiprocessing.get_context(method)
            self._executor = ProcessPoolExecutor(self.workers, mp_context=context)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def map_chunks(self, func: Callable[[Sequence[T]], list[R]], items: Iterable[T]) -> Iterator[R]:
        """Apply ``func`` to chunks of ``items``; yield the results one item at a time, in order."""
        chunks = _chunked(items, self.chunk_size)
        if self._executor is None:
            for chunk in chunks:
                yield from func(chunk)
            return
        window = 4 * self.workers
        pending: deque[Future[list[R]]] = deque()
        for chunk in chunks:
            pending.append(self._executor.submit(func, chunk))
            if len(pending) >= window:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()

    def decode(
        self, paths: Iterable[str], spec: InputSpec, *, max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> Iterator[Decoded]:
        return self.map_chunks(_DecodeJob(spec, max_pixels), paths)

    def hash(self, paths: Iterable[str]) -> Iterator[str | None]:
        return self.map_chunks(hash_chunk, paths)


@dataclass(frozen=True)
class _DecodeJob:
    """A picklable callable for the worker processes."""

    spec: InputSpec
    max_pixels: int

    def __call__(self, paths: Sequence[str]) -> list[Decoded]:
        return decode_chunk(paths, self.spec, self.max_pixels)


def _chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
