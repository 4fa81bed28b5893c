"""``FolderEvents``: filesystem events under a folder (through watchdog), as notes in a queue.

The watchdog observer calls back on its own thread; the notes wait in a thread-safe queue for
the watching loop, which owns every other piece of state. Only image files (by extension) and
folders count, and nothing hidden (a name starting with a dot, as ``scan_folder`` skips them):
copy tools that write a hidden temporary file and rename it into place are seen at the rename.
Reads (ours included: hashing and decoding open the files) send no note.
"""

from __future__ import annotations

import os
import queue
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lookalike.sources import IMAGE_EXTENSIONS

if TYPE_CHECKING:
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers.api import BaseObserver


@dataclass(frozen=True)
class Note:
    """``kind``: 'written', 'closed', 'touched' or 'removed'; ``folder``: a folder's path."""

    kind: str
    path: str
    folder: bool = False


class FolderEvents:
    """Watches ``root`` recursively from :meth:`start` to :meth:`stop`; :meth:`drain` hands
    out the notes so far; :attr:`arrived` is set whenever a note arrives."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.arrived = threading.Event()
        self._notes: queue.SimpleQueue[Note] = queue.SimpleQueue()
        self._observer: BaseObserver | None = None

    def start(self) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        events = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                events.handle(event)

        try:
            observer: BaseObserver = self._started(Observer(), Handler())
        except OSError as exc:  # e.g. inotify's limit of watched folders reached
            from watchdog.observers.polling import PollingObserver

            warnings.warn(
                f"{self.root}: cannot watch for filesystem events ({exc}); polling the folder "
                "every second instead (on Linux, raising fs.inotify.max_user_watches fixes it)",
                stacklevel=2,
            )
            observer = self._started(PollingObserver(timeout=1.0), Handler())
        self._observer = observer

    def _started(self, observer: BaseObserver, handler: FileSystemEventHandler) -> BaseObserver:
        observer.schedule(handler, str(self.root), recursive=True)
        observer.daemon = True
        observer.start()
        return observer

    def stop(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=10)

    def drain(self) -> list[Note]:
        self.arrived.clear()
        notes = []
        while True:
            try:
                notes.append(self._notes.get_nowait())
            except queue.Empty:
                return notes

    def handle(self, event: FileSystemEvent) -> None:
        """Turn one watchdog event into notes (called on the observer's thread)."""
        kind = event.event_type
        source = os.fsdecode(event.src_path)
        folder = event.is_directory
        if kind == "moved":
            self._put("removed", source, folder)
            self._put("closed", os.fsdecode(event.dest_path), folder)
        elif kind == "deleted":
            self._put("removed", source, folder)
        elif folder:
            if kind == "created":  # its files may have been written before it was watched
                self._put("written", source, True)
        elif kind in ("created", "modified"):
            self._put("written", source, False)
        elif kind == "closed":
            self._put("closed", source, False)
        elif kind == "attrib":
            self._put("touched", source, False)
        # opened and closed_no_write: reads, ours among them

    def _put(self, kind: str, path: str, folder: bool) -> None:
        if not self._counts(path, folder):
            return
        self._notes.put(Note(kind, path, folder))
        self.arrived.set()

    def _counts(self, path: str, folder: bool) -> bool:
        try:
            parts = Path(path).relative_to(self.root).parts
        except ValueError:
            return False  # moved out of the folder: its source is what counts
        if not parts or any(part.startswith(".") for part in parts):
            return False
        return folder or Path(path).suffix.lower() in IMAGE_EXTENSIONS
