"""Background threads: downloading and storing images is work that must hide behind the
network's embedding on the same cores, so their threads run at a lower CPU priority."""

from __future__ import annotations

import contextlib
import os
import threading

#: How much nicer than the rest of the process a background thread is (Linux nice levels).
NICER = int(os.environ.get("LOOKALIKE_NICE", "5"))


def background() -> None:
    """Lower the calling thread's CPU priority (Linux: each thread has its own nice value;
    raising it needs no privilege). Elsewhere, or where refused, nothing changes."""
    with contextlib.suppress(AttributeError, OSError):
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + NICER)
