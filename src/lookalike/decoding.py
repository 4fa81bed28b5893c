"""Decoding images in worker processes while the network runs in the main one.

Work goes out in small chunks with a bounded number in flight, so memory stays flat however
many images are queued, and results come back in submission order.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
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


def decode_chunk(
    paths: Sequence[str], spec: InputSpec, max_pixels: int, perceptual: bool = False
) -> list[Decoded]:
    return [
        decode_for_model(path, spec, max_pixels=max_pixels, perceptual=perceptual) for path in paths
    ]


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
    """A process pool (or, with ``workers=0``, the calling thread) mapping chunks in order.

    The workers die with the process that started them, however it dies (``kill -9``, the OOM
    killer): each one asks the kernel for SIGKILL when its parent goes (Linux, where the pool is
    started from the main thread, see :func:`_bind_to_parent`) and watches its parent's pid
    besides. They never hold the index's writer lock (see :mod:`lookalike.locking`).
    """

    def __init__(self, workers: int | None = None, *, chunk_size: int = 8) -> None:
        self.workers = default_workers() if workers is None else workers
        self.chunk_size = chunk_size
        self._executor: Executor | None = None
        self._starting = threading.Lock()
        # fork, where there is one: spawn and forkserver re-run the user's __main__ script in
        # every worker, which breaks scripts without an `if __name__ == "__main__"` guard.
        # The forked workers only run PIL and NumPy, never the parent's ONNX Runtime threads.
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        self._context = multiprocessing.get_context(method)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._starting:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def _pool(self) -> Executor:
        """The process pool, started on first use by the thread that uses it: with fork, that
        thread forks every worker at its first submission, and on Linux the kernel's
        parent-death signal follows the forking *thread*, so it is only asked for where that
        thread is the main one (which lives as long as the process)."""
        with self._starting:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    self.workers,
                    mp_context=self._context,
                    initializer=_bind_to_parent,
                    initargs=(os.getpid(), threading.current_thread() is threading.main_thread()),
                )
            return self._executor

    def map_chunks(self, func: Callable[[Sequence[T]], list[R]], items: Iterable[T]) -> Iterator[R]:
        """Apply ``func`` to chunks of ``items``; yield the results one item at a time, in order."""
        chunks = _chunked(items, self.chunk_size)
        if self.workers <= 0:
            for chunk in chunks:
                yield from func(chunk)
            return
        executor = self._pool()
        window = 4 * self.workers
        pending: deque[Future[list[R]]] = deque()
        for chunk in chunks:
            pending.append(executor.submit(func, chunk))
            if len(pending) >= window:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()

    def decode(
        self,
        paths: Iterable[str],
        spec: InputSpec,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        perceptual: bool = False,
    ) -> Iterator[Decoded]:
        """Decoded files in order; ``perceptual``: with each picture's perceptual hash."""
        return self.map_chunks(_DecodeJob(spec, max_pixels, perceptual), paths)

    def hash(self, paths: Iterable[str]) -> Iterator[str | None]:
        return self.map_chunks(hash_chunk, paths)


@dataclass(frozen=True)
class _DecodeJob:
    """A picklable callable for the worker processes."""

    spec: InputSpec
    max_pixels: int
    perceptual: bool = False

    def __call__(self, paths: Sequence[str]) -> list[Decoded]:
        return decode_chunk(paths, self.spec, self.max_pixels, self.perceptual)


#: How often a worker checks that its parent is still alive (where no death signal is armed).
PARENT_POLL_SECONDS = 0.2


def _bind_to_parent(parent: int, death_signal: bool) -> None:
    """Worker initializer: end this worker when ``parent`` (its pid before the fork) ends.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` has the kernel kill the worker the moment its
    parent dies; if the parent died before the request was made, ``getppid`` already differs
    and the worker leaves at once. Everywhere, a daemon thread polls ``getppid`` as well (a dead
    parent's children are re-parented to init or a subreaper), which covers other platforms and
    pools started from a thread other than the main one."""
    if death_signal and sys.platform.startswith("linux"):
        _ask_for_death_signal()
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(
        target=_watch_parent, args=(parent,), name="lookalike-parent-watch", daemon=True
    ).start()


def _ask_for_death_signal() -> None:
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass  # no prctl: the watching thread alone ends the worker


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


def _chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
