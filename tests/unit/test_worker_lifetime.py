"""Decode workers die with the process that started them, however it dies, and a forked child
never keeps the index's writer lock: after `kill -9` of a writer the next one can start."""

from __future__ import annotations

import multiprocessing
import signal
import subprocess
import sys
import textwrap
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from lookalike.errors import IndexLockedError
from lookalike.locking import WriterLock
from tests import processes
from tests.helpers import cli_env

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _wait_for_the_parent_to_let_go(ready: Event, done: Event) -> None:
    ready.set()
    done.wait(30)


def test_a_forked_child_does_not_keep_the_writer_lock(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    lock = WriterLock(path)
    with pytest.raises(IndexLockedError, match="another lookalike process is writing"):
        WriterLock(path)
    context = multiprocessing.get_context("fork")
    ready, done = context.Event(), context.Event()
    child = context.Process(target=_wait_for_the_parent_to_let_go, args=(ready, done))
    child.start()
    try:
        assert ready.wait(30)
        assert not processes.holds_file(child.pid or 0, path)
        assert lock.held
        lock.close()
        assert not lock.held
        # Before the fix the child's inherited descriptor kept the flock: this raised.
        WriterLock(path).close()
    finally:
        done.set()
        child.join(30)
    assert child.exitcode == 0


def test_a_lock_dropped_without_close_is_released(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    WriterLock(path)  # dropped at once, as a file object would be
    WriterLock(path).close()


SCRIPT = textwrap.dedent(
    """
    import os, sys, threading, time
    from pathlib import Path
    from lookalike.decoding import WorkerPool
    from lookalike.locking import WriterLock

    def pids(chunk):
        time.sleep(0.05)
        return [os.getpid() for _ in chunk]

    lock = WriterLock(Path(sys.argv[1]))
    pool = WorkerPool(2, chunk_size=1)
    if sys.argv[2] == "thread":
        # The thread that forks the workers ends; the pool must keep working without it.
        starter = threading.Thread(target=lambda: list(pool.map_chunks(pids, range(4))))
        starter.start()
        starter.join()
        time.sleep(0.5)
    assert len(set(pool.map_chunks(pids, range(8)))) >= 1
    print("ready", flush=True)
    time.sleep(60)
    """
)


@pytest.mark.parametrize("started_from", ["main", "thread"])
def test_workers_die_with_a_killed_parent_and_never_hold_its_lock(
    tmp_path: Path, started_from: str
) -> None:
    lock_path = tmp_path / "lock"
    parent = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(lock_path), started_from],
        stdout=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    workers: set[processes.ProcessId] = set()
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "ready"
        workers = processes.descendants(parent.pid)
        assert len(workers) == 2, workers
        assert not any(processes.holds_file(pid, lock_path) for pid, _ in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        # The dead writer's lock is free at once: no worker shares it.
        WriterLock(lock_path).close()
        # Main thread: the kernel's parent-death signal; other thread: the worker's watch.
        assert processes.wait_gone(workers, timeout=10.0) == set()
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        assert parent.stdout is not None
        parent.stdout.close()
        processes.kill_all(workers)
