"""The micro-batcher: batches form from concurrent requests, a lone request never waits,
one job's failure stays its own, and nothing is lost at close."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from lookalike.errors import InvalidInputError
from lookalike.web.micro_batching import BatcherClosedError, MicroBatcher


class Recorder:
    """A batch function that doubles numbers, fails on negative ones, and records batches."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __call__(self, jobs: Sequence[int]) -> list[int | Exception]:
        self.batches.append(list(jobs))
        return [ValueError(f"job {j} is negative") if j < 0 else j * 2 for j in jobs]


def test_a_lone_request_is_not_held_back() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_batch=8, wait=5.0)
    try:
        started = time.perf_counter()
        with batcher.announce() as arrival:
            assert arrival.submit(21).result(timeout=10) == 42
        assert time.perf_counter() - started < 1.0  # far less than the 5 s wait
        assert recorder.batches == [[21]]
    finally:
        batcher.close()


def test_concurrent_requests_share_a_batch_and_get_their_own_results() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_batch=8, wait=5.0)
    arrivals = [batcher.announce() for _ in range(8)]  # all on their way before any submits
    answers: dict[int, int] = {}

    def request(n: int) -> None:
        with arrivals[n] as arrival:
            answers[n] = arrival.submit(n).result(timeout=10)

    started = time.perf_counter()
    threads = [threading.Thread(target=request, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    batcher.close()
    assert answers == {n: 2 * n for n in range(8)}
    # The batch went when it was full, not after the wait; it held all eight.
    assert time.perf_counter() - started < 4.0
    assert [sorted(b) for b in recorder.batches] == [list(range(8))]
    assert (batcher.batches, batcher.jobs, batcher.largest) == (1, 8, 8)


def test_a_batch_waits_for_announced_requests_at_most_the_wait() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_batch=8, wait=0.3)
    try:
        late = batcher.announce()  # announced, never submits in time
        started = time.perf_counter()
        assert batcher.submit(1).result(timeout=10) == 2
        waited = time.perf_counter() - started
        assert 0.25 <= waited < 3.0
        late.__exit__(None, None, None)
    finally:
        batcher.close()


def test_a_withdrawn_request_releases_the_batch() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_batch=8, wait=30.0)
    try:
        failing = batcher.announce()
        first = batcher.announce()
        answer = first.submit(5)
        time.sleep(0.05)
        assert not answer.done()  # waiting for the other announced request
        with pytest.raises(RuntimeError), failing:  # its decode failed: it never submits
            raise RuntimeError("decode failed")
        assert answer.result(timeout=10) == 10
        first.__exit__(None, None, None)
    finally:
        batcher.close()


def test_one_failed_job_fails_only_itself() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_batch=4, wait=5.0)
    arrivals = [batcher.announce() for _ in range(3)]
    futures = [a.submit(job) for a, job in zip(arrivals, (1, -1, 3), strict=True)]
    assert futures[0].result(timeout=10) == 2
    with pytest.raises(ValueError, match="job -1 is negative"):
        futures[1].result(timeout=10)
    assert futures[2].result(timeout=10) == 6
    assert recorder.batches == [[1, -1, 3]]
    batcher.close()


def test_a_batch_function_that_raises_fails_its_batch_and_the_batcher_goes_on() -> None:
    calls = 0

    def flaky(jobs: Sequence[int]) -> list[int | Exception]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("network failed")
        return [j + 1 for j in jobs]

    batcher = MicroBatcher(flaky, max_batch=4, wait=0.0)
    with pytest.raises(RuntimeError, match="network failed"):
        batcher.submit(1).result(timeout=10)
    assert batcher.submit(1).result(timeout=10) == 2
    batcher.close()


def test_batches_hold_at_most_max_batch_by_weight() -> None:
    recorder = Recorder()
    release = threading.Event()

    # A first job blocks the dispatcher so that the others queue up behind it.
    def blocking(jobs: Sequence[int]) -> list[int | Exception]:
        if jobs == [0]:
            release.wait(10)
        return recorder(jobs)

    batcher = MicroBatcher(blocking, max_batch=5, wait=0.0, weight=lambda j: j)
    first = batcher.submit(0)
    time.sleep(0.05)
    futures = [batcher.submit(w) for w in (2, 2, 2, 4, 1, 9)]
    release.set()
    assert first.result(timeout=10) == 0
    assert [f.result(timeout=10) for f in futures] == [4, 4, 4, 8, 2, 18]
    batcher.close()
    # Weights 2+2, then 2 (4 would pass 5), then 4+1, then 9 alone (heavier than a batch).
    assert recorder.batches == [[0], [2, 2], [2], [4, 1], [9]]
    assert batcher.largest == 9


def test_close_runs_what_is_queued_and_refuses_more() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_batch=4, wait=30.0)
    waiting = batcher.announce()
    answer = batcher.submit(7)
    batcher.close()  # does not wait 30 s for the announced request
    assert answer.result(timeout=5) == 14  # well under the 30 s wait, on a slow machine too
    with pytest.raises(BatcherClosedError):
        batcher.submit(1).result(timeout=5)
    with pytest.raises(BatcherClosedError):
        batcher.announce()
    waiting.__exit__(None, None, None)


def test_several_workers_run_batches_at_once() -> None:
    """With two workers a second batch starts while the first still runs: each batch waits
    at a barrier for the other, which one worker could never pass."""
    both_running = threading.Barrier(2, timeout=5)
    running: list[str] = []

    def run(jobs: Sequence[int]) -> list[int | Exception]:
        running.append(threading.current_thread().name)
        both_running.wait()
        return [j + 1 for j in jobs]

    batcher = MicroBatcher(run, max_batch=1, wait=0.0, workers=2, name="pair")
    try:
        first, second = batcher.submit(1), batcher.submit(2)
        assert (first.result(timeout=10), second.result(timeout=10)) == (2, 3)
        assert sorted(running) == ["pair-0", "pair-1"]
    finally:
        batcher.close()
    both_running = threading.Barrier(2, timeout=0.5)
    lone = MicroBatcher(run, max_batch=1, wait=0.0, workers=1)
    try:  # one worker: the first batch waits for a partner that never comes
        first, second = lone.submit(1), lone.submit(2)
        assert isinstance(first.exception(timeout=10), threading.BrokenBarrierError)
        assert isinstance(second.exception(timeout=10), threading.BrokenBarrierError)
    finally:
        lone.close()


def test_settings_are_checked() -> None:
    with pytest.raises(InvalidInputError, match="workers"):
        MicroBatcher(Recorder(), max_batch=1, wait=0.0, workers=0)
    with pytest.raises(InvalidInputError, match="max_batch"):
        MicroBatcher(Recorder(), max_batch=0, wait=0.0)
    with pytest.raises(InvalidInputError, match="wait"):
        MicroBatcher(Recorder(), max_batch=1, wait=-1.0)
    batcher = MicroBatcher(Recorder(), max_batch=1, wait=0.0)
    with batcher.announce() as arrival:
        arrival.submit(1)
        with pytest.raises(InvalidInputError, match="more jobs than it announced"):
            arrival.submit(2)
    batcher.close()
