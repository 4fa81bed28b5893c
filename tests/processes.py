"""Finding a process's descendants through /proc (Linux), to check that none outlive it.

A process is named by (pid, start time) so that a recycled pid is never taken for the process
that used to have it; a zombie counts as gone (it runs nothing and holds no file).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")

#: (pid, start time in clock ticks since boot)
ProcessId = tuple[int, int]


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after it.
    return text[text.rindex(")") + 2 :].split()


def identify(pid: int) -> ProcessId | None:
    """(pid, start time) of a running process, or None if it is gone or a zombie."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return pid, int(fields[19])


def running(process: ProcessId) -> bool:
    return identify(process[0]) == process


def children(pid: int) -> set[int]:
    """The pids of ``pid``'s children, from every one of its threads."""
    found: set[int] = set()
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for task in (PROC / str(pid) / "task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                found.update(int(p) for p in (task / "children").read_text().split())
    return found


def descendants(pid: int) -> set[ProcessId]:
    """Every running process below ``pid`` (children, their children...)."""
    found: set[ProcessId] = set()
    queue = [pid]
    while queue:
        for child in children(queue.pop()):
            process = identify(child)
            if process is not None and process not in found:
                found.add(process)
                queue.append(child)
    return found


def with_argument(text: str, *, excluding: Iterable[int] = ()) -> set[ProcessId]:
    """Running processes whose command line contains ``text`` (forked workers keep their
    parent's command line, and orphans lose their ancestry: this finds them anyway)."""
    skip = {os.getpid(), *excluding}
    needle = text.encode()
    found: set[ProcessId] = set()
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if needle in command:
            process = identify(int(entry.name))
            if process is not None:
                found.add(process)
    return found


def wait_gone(processes: Iterable[ProcessId], timeout: float) -> set[ProcessId]:
    """Wait up to ``timeout`` s for ``processes`` to end; returns those still running."""
    left = set(processes)
    deadline = time.monotonic() + timeout
    while True:
        left = {p for p in left if running(p)}
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.02)


def kill_all(processes: Iterable[ProcessId]) -> None:
    """SIGKILL each process (by pid, checking it is still the same process): a test's cleanup
    of survivors it caused, never a sweep of anything else."""
    for process in processes:
        if running(process):
            with contextlib.suppress(ProcessLookupError):
                os.kill(process[0], signal.SIGKILL)


def holds_file(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open."""
    target = str(path)
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
        for fd in (PROC / str(pid) / "fd").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
                if str(fd.readlink()) == target:
                    return True
    return False
