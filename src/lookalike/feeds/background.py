"""Background threads: downloading and storing images is work that must hide behind the
network's embedding on the same cores, so their threads run at a lower CPU priority."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

#: How much nicer than the rest of the process a background thread is (Linux nice levels).
NICER = 5


def background() -> None:
    """Run the calling thread ``NICER`` levels below the process's main thread (Linux: each
    thread has its own nice value, inherited from the thread that made it; raising it needs
    no privilege). Elsewhere (where a thread id is not a task id), or where refused, nothing
    changes."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(AttributeError, OSError):
        main = os.getpriority(os.PRIO_PROCESS, os.getpid())  # the main thread's: tid == pid
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), main + NICER)
