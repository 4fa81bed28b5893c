"""`lookalike watch` as a real process: files added, changed, moved, deleted and half-written
under a watched folder; SIGINT and SIGTERM; kill -9 mid-batch; a server on the same index."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lookalike import SearchEngine
from lookalike.evaluation.copies import CopySet
from lookalike.sources import content_hash
from tests.conftest import FAST_EMBEDDER
from tests.helpers import Server, cli_env, multipart, run_cli
from tests.processes import descendants, kill_all, wait_gone

#: (id, hash, label) of each indexed path.
Rows = dict[str, tuple[int, str, str | None]]


def rows(index: Path) -> Rows:
    """The committed catalog, read as another process would (read-only)."""
    db = sqlite3.connect(f"file:{index / 'catalog.sqlite'}?mode=ro", uri=True, timeout=5)
    try:
        found = db.execute("SELECT path, id, hash, label FROM images").fetchall()
    finally:
        db.close()
    return {path: (image_id, digest, label) for path, image_id, digest, label in found}


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> float:
    """Poll ``check`` until true; the seconds it took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - started


class Watch:
    """`lookalike watch --json` as a real process; its output goes to a file."""

    def __init__(self, photos: Path, index: Path, *extra: str) -> None:
        self.log = index.parent / f"watch-{time.monotonic_ns()}.log"
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lookalike",
                    "watch",
                    str(photos),
                    "--index",
                    str(index),
                    "--json",
                    *extra,
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=cli_env(),
            )

    def lines(self) -> list[dict[str, object]]:
        found = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found

    def wait_started(self) -> None:
        """Until the rescan at start is committed."""
        wait_for(
            lambda: any(x.get("trigger") == "rescan" for x in self.lines()) or self.ended(),
            "the rescan at start",
            timeout=90,
        )
        assert not self.ended(), self.log.read_text()

    def ended(self) -> bool:
        return self.process.poll() is not None

    def stop(self, sig: int = signal.SIGINT) -> dict[str, object]:
        """Send ``sig`` to the process (its pid only), wait, return its summary."""
        self.process.send_signal(sig)
        assert self.process.wait(timeout=60) == 0, self.log.read_text()
        summaries = [x["summary"] for x in self.lines() if "summary" in x]
        assert len(summaries) == 1, self.log.read_text()
        summary = summaries[0]
        assert isinstance(summary, dict)
        return summary

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def watched(small_photos: Path, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A copy of the small photos indexed with the fast embedder: (folder, index)."""
    photos = tmp_path / "photos"
    shutil.copytree(small_photos, photos)
    index = tmp_path / "photos.idx"
    with SearchEngine.create(index, embedder=FAST_EMBEDDER) as engine:
        engine.index_folder(photos)
    yield photos.resolve(), index


def _write(path: Path, data: bytes) -> None:
    with path.open("wb") as fh:
        fh.write(data)


def test_watch_follows_adds_changes_moves_deletes_and_stops_on_sigint(
    watched: tuple[Path, Path], copy_set: CopySet
) -> None:
    photos, index = watched
    before = rows(index)
    watch = Watch(photos, index, "--rescan", "0", "--settle", "2.5")
    try:
        watch.wait_started()
        original = copy_set.originals[0]

        added = photos / "things" / "new.jpg"
        _write(added, original.read_bytes())
        wait_for(lambda: str(added) in rows(index), "the added file")
        _, digest, label = rows(index)[str(added)]
        assert digest == content_hash(str(added)) and label == "things"

        changed = copy_set.originals[1].read_bytes()
        _write(added, changed)
        wait_for(lambda: rows(index)[str(added)][1] == content_hash(str(added)), "the change")
        image_id = rows(index)[str(added)][0]

        moved = photos / "animals" / "renamed.jpg"
        added.rename(moved)
        wait_for(lambda: str(moved) in rows(index) and str(added) not in rows(index), "move")
        assert rows(index)[str(moved)][2] == "animals"  # label of its new folder

        (photos / "things" / "coffee.jpg").unlink()
        wait_for(lambda: str(photos / "things" / "coffee.jpg") not in rows(index), "delete")

        # A half-written file is not taken while it is open, however long the pause.
        slow = photos / "slow.jpg"
        data = copy_set.originals[2].read_bytes()
        with slow.open("wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
            time.sleep(1.5)
            assert str(slow) not in rows(index)
            fh.write(data[len(data) // 2 :])
        wait_for(lambda: str(slow) in rows(index), "the file once closed")
        assert rows(index)[str(slow)][1] == content_hash(str(slow))

        summary = watch.stop(signal.SIGINT)
    finally:
        watch.kill()
    after = rows(index)
    assert after[str(moved)][0] == image_id  # the move kept the image (and its vector)
    assert set(after) == set(before) - {str(photos / "things" / "coffee.jpg")} | {
        str(moved),
        str(slow),
    }
    assert summary["added"] == 2 and summary["moved"] == 1 and summary["removed"] == 1
    assert summary["updated"] == 1 and summary["skipped"] == 0
    batches = [x for x in watch.lines() if x.get("trigger") == "events"]
    assert not any(x["skipped"] for x in batches)  # never a half-written file
    with SearchEngine.open(index, writable=True) as engine:  # the lock was released
        assert len(engine) == len(after)


def test_sigterm_while_files_arrive_stops_cleanly_and_the_next_run_catches_up(
    watched: tuple[Path, Path], copy_set: CopySet
) -> None:
    photos, index = watched
    arriving = photos / "arriving"
    arriving.mkdir()
    watch = Watch(photos, index, "--rescan", "0")
    try:
        watch.wait_started()
        for pair in copy_set.copies[:40]:
            shutil.copy(pair.copy, arriving / pair.copy.name)
        wait_for(lambda: any(x.get("trigger") == "events" for x in watch.lines()), "a batch")
        summary = watch.stop(signal.SIGTERM)
    finally:
        watch.kill()
    indexed = rows(index)
    # Every committed row is a file as it is on disk: no batch half-committed.
    for path, (_, digest, _) in indexed.items():
        assert content_hash(path) == digest
    assert summary["added"] == sum(1 for p in indexed if p.startswith(str(arriving)))
    assert run_cli("verify", "--index", index).returncode == 0

    again = Watch(photos, index, "--rescan", "0")
    try:
        again.wait_started()
        again.stop()
    finally:
        again.kill()
    assert sum(1 for p in rows(index) if p.startswith(str(arriving))) == 40


@pytest.mark.heavy
def test_kill_9_mid_batch_leaves_an_index_the_next_watch_repairs(
    watched: tuple[Path, Path], copy_set: CopySet
) -> None:
    photos, index = watched
    arriving = photos / "arriving"
    arriving.mkdir()
    for pair in copy_set.copies:
        shutil.copy(pair.copy, arriving / pair.copy.name)
    expected = len(list(photos.rglob("*.jpg")))
    watch = Watch(photos, index, "--rescan", "0", "--workers", "2")
    try:
        # Mid-batch: the rescan at start is decoding with its worker processes.
        wait_for(lambda: bool(descendants(watch.process.pid)) or watch.ended(), "workers", 90)
        workers = descendants(watch.process.pid)
        assert workers, watch.log.read_text()
        os.kill(watch.process.pid, signal.SIGKILL)  # the pid only, as the OOM killer does
        watch.process.wait()
        left = wait_gone(workers, timeout=10)
        kill_all(left)
        assert not left, "decode workers outlived their killed parent"
    finally:
        watch.kill()
    assert len(rows(index)) < expected  # it was killed before the batch was committed
    again = Watch(photos, index, "--rescan", "0")
    try:
        again.wait_started()
        again.stop()
    finally:
        again.kill()
    assert len(rows(index)) == expected
    assert run_cli("verify", "--index", index).returncode == 0


def test_a_server_on_the_same_index_finds_a_file_added_to_the_watched_folder(
    watched: tuple[Path, Path], copy_set: CopySet
) -> None:
    photos, index = watched
    query = copy_set.originals[3]
    body, content_type = multipart("image", query.name, query.read_bytes())

    def top_match() -> str:
        request = urllib.request.Request(
            f"{server.url}/api/search?k=1", data=body, headers={"Content-Type": content_type}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return str(json.loads(response.read())["matches"][0]["path"])

    server = Server(index)
    watch = Watch(photos, index, "--rescan", "0")
    try:
        watch.wait_started()
        target = photos / "things" / "arrived.jpg"
        shown = "things/arrived.jpg"  # the server shows paths below the indexed folder
        assert top_match() != shown
        shutil.copy(query, target)
        wait_for(lambda: top_match() == shown, "the server to find the new file")
        watch.stop()
    finally:
        watch.kill()
        server.stop()


def test_batches_wait_while_another_process_writes_the_index(
    watched: tuple[Path, Path], copy_set: CopySet
) -> None:
    photos, index = watched
    watch = Watch(photos, index, "--rescan", "0")
    try:
        watch.wait_started()
        target = photos / "waiting.jpg"
        with SearchEngine.open(index, writable=True):  # another writer holds the lock
            shutil.copy(copy_set.originals[4], target)
            wait_for(lambda: any(x.get("busy") for x in watch.lines()), "the busy notice")
            assert str(target) not in rows(index)
        wait_for(lambda: str(target) in rows(index), "the batch once the lock is free")
        summary = watch.stop()
    finally:
        watch.kill()
    assert summary["added"] == 1


def test_sigint_during_the_rescan_at_start_exits_0_with_a_readable_index(
    watched: tuple[Path, Path], copy_set: CopySet
) -> None:
    photos, index = watched
    arriving = photos / "arriving"
    arriving.mkdir()
    for pair in copy_set.copies:
        shutil.copy(pair.copy, arriving / pair.copy.name)
    watch = Watch(photos, index, "--rescan", "0", "--workers", "2")
    try:
        wait_for(lambda: bool(descendants(watch.process.pid)) or watch.ended(), "workers", 90)
        summary = watch.stop(signal.SIGINT)
    finally:
        watch.kill()
    assert summary["rescans"] in (0, 1)
    assert summary["interrupted"] == (summary["rescans"] == 0)
    with SearchEngine.open(index, writable=True) as engine:  # the lock was released
        assert len(engine) == len(rows(index))
    assert run_cli("verify", "--index", index).returncode == 0


def test_a_graph_index_finds_watched_files_without_saving_its_graph_per_batch(
    small_photos: Path, copy_set: CopySet, tmp_path: Path
) -> None:
    import threading

    from lookalike.watching import FolderWatcher, WatchBatch, WatchOptions

    photos = tmp_path / "photos"
    shutil.copytree(small_photos, photos)
    index = tmp_path / "graph.idx"
    with SearchEngine.create(index, embedder=FAST_EMBEDDER, index_type="hnsw") as engine:
        engine.index_folder(photos)
    batches: list[WatchBatch] = []
    watcher = FolderWatcher(photos, index, options=WatchOptions(rescan=0), on_batch=batches.append)
    thread = threading.Thread(target=watcher.run)
    thread.start()
    try:
        wait_for(lambda: bool(batches), "the rescan at start")  # it saves the graph
        pointer = index / "ann" / "ann.json"
        saved = pointer.stat().st_mtime_ns
        query = copy_set.originals[5]
        target = photos / "things" / "graph.jpg"
        shutil.copy(query, target)
        wait_for(lambda: str(target.resolve()) in rows(index), "the new file")
    finally:
        watcher.stop()
        thread.join(timeout=60)
    assert not thread.is_alive()
    with SearchEngine.open(index) as engine:
        assert engine.info().search_index == "hnsw"
        (result,) = engine.search([query], k=1)
        assert result.matches[0].path == str(target.resolve())
    assert pointer.stat().st_mtime_ns == saved  # the graph file was not rewritten


def test_a_file_left_half_written_past_the_settle_time_is_taken_again_once_complete(
    watched: tuple[Path, Path], copy_set: CopySet
) -> None:
    import threading

    from lookalike.watching import FolderWatcher, WatchBatch, WatchOptions

    photos, index = watched
    batches: list[WatchBatch] = []
    watcher = FolderWatcher(
        photos, index, options=WatchOptions(rescan=0, settle=0.5), on_batch=batches.append
    )
    thread = threading.Thread(target=watcher.run)
    thread.start()
    try:
        wait_for(lambda: bool(batches), "the rescan at start")
        stalled = photos / "stalled.jpg"
        data = copy_set.originals[6].read_bytes()
        with stalled.open("wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
            # The writer stalls longer than --settle: the watcher tries the file, which does
            # not decode, so it is skipped and nothing is committed for it.
            wait_for(lambda: any(b.skipped for b in batches), "the half file to be tried")
            assert str(stalled) not in rows(index)
            fh.write(data[len(data) // 2 :])
        wait_for(lambda: str(stalled) in rows(index), "the file once complete")
    finally:
        watcher.stop()
        thread.join(timeout=60)
    assert rows(index)[str(stalled)][1] == content_hash(str(stalled))
    (skip,) = [s for b in batches for s in b.skipped]
    assert skip.path == str(stalled)


def test_watching_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("watch", tmp_path / "nowhere", "--index", tmp_path / "i.idx")
    assert result.returncode == 2
    assert "nowhere: folder not found" in result.stderr
    assert not (tmp_path / "i.idx").exists()  # no index made for nothing


def test_the_rescan_at_start_waits_for_another_writer_then_runs(
    watched: tuple[Path, Path], copy_set: CopySet
) -> None:
    import threading

    from lookalike.watching import FolderWatcher, WatchBatch, WatchOptions

    photos, index = watched
    early = photos / "early.jpg"
    shutil.copy(copy_set.originals[7], early)  # there before the watcher starts
    batches: list[WatchBatch] = []
    watcher = FolderWatcher(photos, index, options=WatchOptions(rescan=0), on_batch=batches.append)
    thread = threading.Thread(target=watcher.run)
    try:
        with SearchEngine.open(index, writable=True):
            thread.start()
            wait_for(lambda: any(b.busy for b in batches), "the busy notice")
            assert str(early) not in rows(index)
        wait_for(lambda: str(early) in rows(index), "the rescan once the lock is free")
    finally:
        watcher.stop()
        thread.join(timeout=60)
    assert [b.trigger for b in batches if not b.busy] == ["rescan"]


def test_a_linked_file_is_left_to_the_rescans_and_indexed_under_the_link(
    watched: tuple[Path, Path], copy_set: CopySet, tmp_path: Path
) -> None:
    import threading

    from lookalike.watching import FolderWatcher, WatchBatch, WatchOptions

    photos, index = watched
    outside = tmp_path / "outside.jpg"
    shutil.copy(copy_set.originals[2], outside)
    batches: list[WatchBatch] = []
    watcher = FolderWatcher(photos, index, options=WatchOptions(rescan=0), on_batch=batches.append)
    thread = threading.Thread(target=watcher.run)
    thread.start()
    try:
        wait_for(lambda: bool(batches), "the rescan at start")
        link = photos / "link.jpg"
        link.symlink_to(outside)
        wait_for(lambda: any(b.skipped for b in batches), "the link's batch")
    finally:
        watcher.stop()
        thread.join(timeout=60)
    (skip,) = [s for b in batches for s in b.skipped]
    assert skip.path == str(link) and "symbolic link" in skip.reason
    assert str(outside.resolve()) not in rows(index)
    with SearchEngine.open(index, writable=True) as engine:  # what a rescan does
        engine.index_folder(photos)
    assert str(link) in rows(index) and str(outside.resolve()) not in rows(index)
