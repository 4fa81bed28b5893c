"""PendingChanges (debouncing) with a hand-driven clock, and FolderEvents' choice of paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from watchdog.events import (
    DirDeletedEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
)

from lookalike.errors import InvalidInputError
from lookalike.watching import WatchOptions
from lookalike.watching.changes import Fingerprint, PendingChanges
from lookalike.watching.events import FolderEvents, Note


class Disk:
    """A fake ``stat``: what each path looks like now."""

    def __init__(self) -> None:
        self.files: dict[str, Fingerprint] = {}

    def __call__(self, path: str) -> Fingerprint:
        return self.files.get(path)


def pending(disk: Disk) -> PendingChanges:
    return PendingChanges(quiet=0.2, settle=3.0, stat=disk)


def test_a_closed_file_is_ready_after_the_quiet_time_and_a_new_write_restarts_it() -> None:
    disk = Disk()
    changes = pending(disk)
    changes.written("/p/a.jpg", 0.0)
    changes.closed("/p/a.jpg", 1.0)
    assert not changes.take_ready(1.1, limit=10)
    changes.written("/p/a.jpg", 1.15)  # opened again and written: not complete any more
    assert not changes.take_ready(1.5, limit=10)
    changes.closed("/p/a.jpg", 2.0)
    assert changes.next_due(2.0) == pytest.approx(2.2)
    assert changes.take_ready(2.2, limit=10).files == ("/p/a.jpg",)
    assert len(changes) == 0


def test_a_file_never_closed_waits_until_it_stops_changing() -> None:
    disk = Disk()
    changes = pending(disk)
    disk.files["/p/a.jpg"] = (100, 1)
    changes.written("/p/a.jpg", 0.0)
    disk.files["/p/a.jpg"] = (200, 2)  # still growing, without an event (e.g. polling)
    assert not changes.take_ready(2.9, limit=10)
    assert not changes.take_ready(3.0, limit=10)  # changed since: wait a whole period again
    assert not changes.take_ready(5.9, limit=10)
    assert changes.take_ready(6.0, limit=10).files == ("/p/a.jpg",)


def test_a_deletion_waits_for_a_pending_copy_so_a_move_keeps_its_vector() -> None:
    disk = Disk()
    changes = pending(disk)
    changes.written("/p/new/a.jpg", 0.0)  # copy being written (no close yet)
    changes.removed("/p/old/a.jpg", 0.1)
    assert not changes.take_ready(0.5, limit=10)  # the delete waits for the copy
    changes.closed("/p/new/a.jpg", 1.0)
    ready = changes.take_ready(1.25, limit=10)
    assert ready.files == ("/p/new/a.jpg",) and ready.gone == ("/p/old/a.jpg",)


def test_a_folder_gone_takes_its_pending_files_with_it_and_batches_are_capped() -> None:
    disk = Disk()
    changes = pending(disk)
    for i in range(5):
        changes.closed(f"/p/dir/{i}.jpg", 0.0)
    changes.closed("/p/other.jpg", 0.0)
    changes.removed("/p/dir", 0.1, folder=True)
    ready = changes.take_ready(0.5, limit=10)
    assert ready.files == ("/p/other.jpg",)
    assert set(ready.gone) == {"/p/dir", *(f"/p/dir/{i}.jpg" for i in range(5))}
    for i in range(5):
        changes.closed(f"/p/{i}.jpg", 1.0)
    assert len(changes.take_ready(2.0, limit=3).files) == 3
    assert len(changes.take_ready(2.0, limit=3).files) == 2


def test_folder_events_keep_images_and_folders_and_drop_reads_hidden_files_and_others(
    tmp_path: Path,
) -> None:
    events = FolderEvents(tmp_path)
    root = str(tmp_path)
    for event in (
        FileCreatedEvent(f"{root}/a.jpg"),
        FileModifiedEvent(f"{root}/a.jpg"),
        FileOpenedEvent(f"{root}/a.jpg"),  # our own reads open files too
        FileClosedNoWriteEvent(f"{root}/a.jpg"),
        FileClosedEvent(f"{root}/a.jpg"),
        FileCreatedEvent(f"{root}/notes.txt"),
        FileClosedEvent(f"{root}/.a.jpg.part"),
        FileMovedEvent(f"{root}/.tmp/x.jpg", f"{root}/sub/x.JPG"),
        DirDeletedEvent(f"{root}/old"),
    ):
        events.handle(event)
    assert events.arrived.is_set()
    assert events.drain() == [
        Note("written", f"{root}/a.jpg"),
        Note("written", f"{root}/a.jpg"),
        Note("closed", f"{root}/a.jpg"),
        Note("closed", f"{root}/sub/x.JPG"),  # a hidden temporary file renamed into place
        Note("removed", f"{root}/old", folder=True),
    ]
    assert not events.arrived.is_set()


def test_watch_options_are_checked_where_they_are_made() -> None:
    with pytest.raises(InvalidInputError, match=r"WatchOptions\.rescan"):
        WatchOptions(rescan=-1)
    with pytest.raises(InvalidInputError, match="max_batch"):
        WatchOptions(max_batch=0)
