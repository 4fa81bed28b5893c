"""``PendingChanges``: the paths that changed and are not indexed yet, and when each is ready.

Debouncing: a file being written sends many events; it is taken once, when the writer is done.
Where the platform reports a file closed after writing (inotify's IN_CLOSE_WRITE), the file is
ready ``quiet`` seconds after that close, if nothing happened to it since. A file never seen
closed is ready once its size and modification time have not changed for ``settle`` seconds.
A file moved into place is complete (a rename is atomic) and is ready like a closed one.
A gone path (deleted, moved away) is ready after ``quiet`` seconds too, but waits while some
other change is not ready yet (up to ``settle`` seconds): a move done as copy-then-delete then
keeps its vector, because the copy is indexed (and found by content) before the original goes.
Pure bookkeeping: the caller passes the time and a ``stat`` function.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: (size, mtime in ns) of a file, or None where it is not a readable file.
Fingerprint = tuple[int, int] | None
StatFunction = Callable[[str], Fingerprint]


def fingerprint(path: str) -> Fingerprint:
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


@dataclass
class _Entry:
    gone: bool
    closed: bool
    last_event: float
    seen: Fingerprint = None
    folder: bool = False


@dataclass(frozen=True)
class ReadyChanges:
    """Paths to index (files that exist and are complete) and paths gone (files or folders)."""

    files: tuple[str, ...]
    gone: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.files or self.gone)


class PendingChanges:
    """Changed paths waiting to be indexed, keyed by absolute path; the latest event wins."""

    def __init__(self, *, quiet: float, settle: float, stat: StatFunction = fingerprint) -> None:
        self.quiet = quiet
        self.settle = settle
        self._stat = stat
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def written(self, path: str, now: float) -> None:
        """``path`` was created or written to (it may still be open for writing)."""
        self._entries[path] = _Entry(
            gone=False, closed=False, last_event=now, seen=self._stat(path)
        )

    def closed(self, path: str, now: float) -> None:
        """``path`` was closed after writing, or moved into place: it is complete."""
        self._entries[path] = _Entry(gone=False, closed=True, last_event=now)

    def touched(self, path: str, now: float) -> None:
        """``path``'s attributes changed (e.g. its modification time): complete unless a write
        to it is still pending."""
        entry = self._entries.get(path)
        if entry is not None and not entry.gone:
            entry.last_event = now
        else:
            self.closed(path, now)

    def removed(self, path: str, now: float, *, folder: bool = False) -> None:
        """``path`` (a file, or with ``folder`` every file under it) was deleted or moved away."""
        self._entries[path] = _Entry(gone=True, closed=True, last_event=now, folder=folder)
        if folder:
            prefix = path.rstrip(os.sep) + os.sep
            for other in [p for p, e in self._entries.items() if p.startswith(prefix)]:
                if not self._entries[other].gone:
                    self._entries[other] = _Entry(gone=True, closed=True, last_event=now)

    def next_due(self, now: float) -> float | None:
        """The earliest time a pending path may become ready (None: nothing pending)."""
        due = [
            e.last_event + (self.quiet if e.closed else self.settle) for e in self._entries.values()
        ]
        return max(now, min(due)) if due else None

    def take_ready(self, now: float, limit: int) -> ReadyChanges:
        """Remove and return the paths ready at ``now`` (at most ``limit`` files)."""
        files: list[str] = []
        waiting = False
        for path, entry in list(self._entries.items()):
            if entry.gone:
                continue
            if self._ready(path, entry, now) and len(files) < limit:
                files.append(path)
                del self._entries[path]
            else:
                waiting = True
        gone = [
            path
            for path, entry in list(self._entries.items())
            if entry.gone
            and now - entry.last_event >= self.quiet
            and (not waiting or now - entry.last_event >= self.settle)
        ]
        for path in gone:
            del self._entries[path]
        return ReadyChanges(tuple(files), tuple(gone))

    def _ready(self, path: str, entry: _Entry, now: float) -> bool:
        if entry.closed:
            return now - entry.last_event >= self.quiet
        if now - entry.last_event < self.settle:
            return False
        # Not seen closed: ready when it stayed the same over a whole settle period.
        seen = self._stat(path)
        if seen is not None and seen == entry.seen:
            return True
        entry.seen = seen
        entry.last_event = now
        if seen is None:  # vanished without a delete event: let the index forget it
            entry.gone = True
            entry.closed = True
        return False
