"""Processes below a process, read from /proc (Linux; elsewhere none are found).

A process is named by (pid, start time) so that a recycled pid is never taken for the process
that used to have it; a zombie counts as gone (it runs nothing and holds no file).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")

#: (pid, start time in clock ticks since boot)
ProcessId = tuple[int, int]


def identify(pid: int) -> ProcessId | None:
    """(pid, start time) of a running process, or None if it is gone, a zombie, or /proc is
    absent."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after it.
    fields = text[text.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return pid, int(fields[19])


def running(process: ProcessId) -> bool:
    return identify(process[0]) == process


def children(pid: int) -> set[int]:
    """The pids of ``pid``'s children, from every one of its threads."""
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for task in (PROC / str(pid) / "task").iterdir():
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (task / "children").read_text().split())
    return found


def descendants(*pids: int) -> set[ProcessId]:
    """Every running process below ``pids`` (children, their children...)."""
    found: set[ProcessId] = set()
    queue = list(pids)
    while queue:
        for child in children(queue.pop()):
            process = identify(child)
            if process is not None and process not in found:
                found.add(process)
                queue.append(child)
    return found


def kill_all(processes: Iterable[ProcessId]) -> None:
    """SIGKILL each process that is still the one named (by pid and start time)."""
    for process in processes:
        if running(process):
            with contextlib.suppress(ProcessLookupError):
                os.kill(process[0], signal.SIGKILL)
