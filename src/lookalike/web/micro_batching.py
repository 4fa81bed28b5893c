"""Micro-batching: jobs submitted by concurrent request threads run together, in batches.

Dispatcher threads (``workers``, one by default) take the queued jobs and hand them to ``run``
as one batch each; with several, a batch may start while another runs. A batch goes as soon as
it is full (``max_batch``), as soon as no other request is on its way (so a
lone request is never held back), or once its oldest job has waited ``wait`` seconds for
companions. A request "on its way" is one that announced itself (:meth:`MicroBatcher.announce`)
before its slow part (decoding an upload) and has not submitted yet: waiting is worth it only
when more jobs are known to be coming. Jobs that queue while a batch runs go in the next one
without waiting (or, with several workers, go to a worker that is free). The threads block on
conditions and futures, never spin.

``run`` returns one outcome per job, a result or an exception: one job's failure is that job's
answer, never the others'. An exception escaping ``run`` itself fails the whole batch.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import TracebackType
from typing import Generic, TypeVar

from lookalike.errors import InvalidInputError

J = TypeVar("J")
R = TypeVar("R")


class BatcherClosedError(RuntimeError):
    """The batcher was closed before this job ran (the server is shutting down)."""


@dataclass
class _Queued(Generic[J, R]):
    job: J
    weight: int
    arrived: float
    future: Future[R] = field(default_factory=Future)


class MicroBatcher(Generic[J, R]):
    """Runs submitted jobs in batches of at most ``max_batch`` (counted by ``weight``: a job
    holding several queries weighs that many) on ``workers`` dispatcher threads.

    Example:
        >>> batcher = MicroBatcher(lambda jobs: [j * 2 for j in jobs], max_batch=8, wait=0.005)
        >>> with batcher.announce() as arrival:
        ...     arrival.submit(21).result()
        42
        >>> batcher.close()
    """

    def __init__(
        self,
        run: Callable[[Sequence[J]], Sequence[R | Exception]],
        *,
        max_batch: int,
        wait: float,
        weight: Callable[[J], int] = lambda _: 1,
        name: str = "micro-batcher",
        workers: int = 1,
    ) -> None:
        if max_batch < 1:
            raise InvalidInputError(f"max_batch must be at least 1, got {max_batch}")
        if workers < 1:
            raise InvalidInputError(f"workers must be at least 1, got {workers}")
        if wait < 0:
            raise InvalidInputError(f"the batch wait must be 0 s or more, got {wait:g} s")
        self.max_batch = max_batch
        self.wait = wait
        self._run = run
        self._weight = weight
        self._queue: deque[_Queued[J, R]] = deque()
        self._coming = 0  # announced requests that have not submitted all their jobs yet
        self._closed = False
        self._changed = threading.Condition()
        self._threads = [
            threading.Thread(target=self._dispatch, name=f"{name}-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()
        #: Batches run so far, the weight they held in all, and the largest: for tests and
        #: benchmarks (the mean batch is ``jobs / batches``).
        self.batches = 0
        self.jobs = 0
        self.largest = 0

    def announce(self, jobs: int = 1) -> Arrival[J, R]:
        """Say that a request will submit ``jobs`` jobs soon; use the answer as a context
        manager and submit through it (what is not submitted is withdrawn at its end)."""
        with self._changed:
            if self._closed:
                raise BatcherClosedError("the server is shutting down")
            self._coming += jobs
        return Arrival(self, jobs)

    def submit(self, job: J) -> Future[R]:
        """Queue ``job`` (unannounced); its future gets its outcome."""
        return self._submit(job, announced=False)

    def close(self) -> None:
        """Run what is queued, then stop the dispatchers; later submits are refused."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        for thread in self._threads:
            thread.join()

    def _submit(self, job: J, *, announced: bool) -> Future[R]:
        queued: _Queued[J, R] = _Queued(job, max(1, self._weight(job)), time.monotonic())
        with self._changed:
            if announced:
                self._coming -= 1
            if self._closed:
                queued.future.set_exception(BatcherClosedError("the server is shutting down"))
                return queued.future
            self._queue.append(queued)
            self._changed.notify_all()
        return queued.future

    def _withdraw(self, jobs: int) -> None:
        if jobs:
            with self._changed:
                self._coming -= jobs
                self._changed.notify_all()

    def _dispatch(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run_batch(batch)

    def _next_batch(self) -> list[_Queued[J, R]] | None:
        """The next batch, once it should go (see the module's docstring); None once closed
        and drained."""
        with self._changed:
            while True:
                if self._queue:
                    queued = sum(q.weight for q in self._queue)
                    left = self._queue[0].arrived + self.wait - time.monotonic()
                    if queued >= self.max_batch or self._coming <= 0 or left <= 0 or self._closed:
                        return self._take()
                    self._changed.wait(left)
                elif self._closed:
                    return None
                else:
                    self._changed.wait()

    def _take(self) -> list[_Queued[J, R]]:
        batch = [self._queue.popleft()]
        total = batch[0].weight
        while self._queue and total + self._queue[0].weight <= self.max_batch:
            total += self._queue[0].weight
            batch.append(self._queue.popleft())
        self.batches += 1
        self.jobs += total
        self.largest = max(self.largest, total)
        return batch

    def _run_batch(self, batch: list[_Queued[J, R]]) -> None:
        try:
            outcomes = list(self._run([q.job for q in batch]))
            if len(outcomes) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} jobs gave {len(outcomes)} outcomes")
        except Exception as exc:  # the batch as a whole failed: each job gets the error
            outcomes = [exc] * len(batch)
        for queued, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Exception):
                queued.future.set_exception(outcome)
            else:
                queued.future.set_result(outcome)


class Arrival(Generic[J, R]):
    """A request announced to a :class:`MicroBatcher`; submit its jobs through it."""

    def __init__(self, batcher: MicroBatcher[J, R], jobs: int) -> None:
        self._batcher = batcher
        self._left = jobs

    def submit(self, job: J) -> Future[R]:
        if self._left <= 0:
            raise InvalidInputError("this request submitted more jobs than it announced")
        self._left -= 1
        return self._batcher._submit(job, announced=True)

    def __enter__(self) -> Arrival[J, R]:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        left, self._left = self._left, 0
        self._batcher._withdraw(left)


__all__ = ["Arrival", "BatcherClosedError", "MicroBatcher"]
