"""Checking through /proc (Linux) that no process outlives what started it: the library's
process_tree, plus finding processes by command line, waiting for them to end and the files
they hold."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from pathlib import Path

# The library's own reading of /proc, used here as well.
from lookalike.process_tree import (
    PROC,
    ProcessId,
    children,
    descendants,
    identify,
    kill_all,
    running,
)

__all__ = [
    "PROC",
    "ProcessId",
    "children",
    "descendants",
    "holds_file",
    "identify",
    "kill_all",
    "running",
    "wait_gone",
    "with_argument",
]


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


def holds_file(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open."""
    target = str(path)
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
        for fd in (PROC / str(pid) / "fd").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
                if str(fd.readlink()) == target:
                    return True
    return False
