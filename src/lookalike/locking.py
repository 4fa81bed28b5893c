"""The writer's lock on an index: an exclusive ``flock`` that never outlives its process.

A ``flock`` belongs to the open file description, which ``fork`` shares with the child: the lock
is released only once every descriptor of it is closed, in the parent *and* in every forked child.
A decode worker forked while its parent held the lock would keep the index locked after the
parent died (``kill -9``, the OOM killer), until someone found and killed the orphan by hand.

So the descriptor of every lock this process holds is closed in each forked child, right after
the fork (``os.register_at_fork``), before the child runs any of its own code. Opening and
closing a lock are serialised with forks, so no child can be forked between the moment a
descriptor exists and the moment it is known here. A lock taken with :class:`WriterLock` is
therefore held by this process alone, and the kernel releases it when the process ends, however
it ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import weakref
from pathlib import Path

from lookalike.errors import IndexLockedError

#: Held while a lock's descriptor is opened or closed, and across every fork (re-entrant: a
#: lock collected as garbage while the guard is held closes itself from the same thread).
_fork_guard = threading.RLock()
#: The locks this process holds open (their descriptors are closed in forked children).
_held: weakref.WeakSet[WriterLock] = weakref.WeakSet()


class WriterLock:
    """An exclusive, non-blocking ``flock`` on ``path`` (created if missing), or
    :class:`IndexLockedError` at once where another holds it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        with _fork_guard:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
            _held.add(self)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self.close()
            raise IndexLockedError(
                f"{path.parent}: another lookalike process is writing this index; wait for it "
                "to finish (searching it meanwhile is fine)"
            ) from exc
        except BaseException:
            self.close()
            raise

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def close(self) -> None:
        """Release the lock (closing its descriptor releases the ``flock``). Idempotent."""
        with _fork_guard:
            self._forget()

    def _forget(self) -> None:
        fd, self._fd = self._fd, -1
        _held.discard(self)
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        # As a file object would: a lock dropped without close() is released, not leaked.
        if self._fd >= 0:
            with contextlib.suppress(Exception):  # never a message from a finaliser
                self.close()


def _before_fork() -> None:
    _fork_guard.acquire()


def _after_fork_in_parent() -> None:
    _fork_guard.release()


def _after_fork_in_child() -> None:
    # Only the child's own copies are closed: the parent keeps its lock. Never flock(LOCK_UN)
    # here, which would release the lock for the parent too (the description is shared).
    for lock in list(_held):
        with contextlib.suppress(OSError):
            lock._forget()
    _fork_guard.release()


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
)
