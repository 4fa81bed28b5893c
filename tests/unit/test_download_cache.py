"""The download cache's deferred flushing (``sync_each=False``), on real JPEG bodies: files are
in place at once and synced in the background, recorded only by ``flush``, which returns when
every file and folder is durable; a failed sync is raised by the flush; and a body cut short by
a power cut before its flush is written again rather than trusted."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import pytest

from lookalike import durable
from lookalike.evaluation.copies import skimage_originals
from lookalike.feeds.download_cache import DownloadCache


@pytest.fixture(scope="module")
def bodies() -> list[bytes]:
    out = []
    for _, image in skimage_originals()[:3]:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def test_deferred_files_are_flushed_and_recorded_only_by_flush(
    bodies: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(str(Path(f"/proc/self/fd/{fd}").readlink()))
        real_fsync(fd)

    monkeypatch.setattr(durable.os, "fsync", fsync)
    cache = DownloadCache(tmp_path, sync_each=False)
    kept = [cache.keep(f"http://shop.test/{i}.jpg", b, "jpg") for i, b in enumerate(bodies)]
    files = {str(k.path) for k in kept}
    assert [k.path.read_bytes() for k in kept] == bodies  # in place at once
    assert cache.lookup("http://shop.test/0.jpg") == kept[0]  # this cache knows it already
    other = DownloadCache(tmp_path)
    assert other.lookup("http://shop.test/0.jpg") is None  # not recorded before the flush
    other.close()

    cache.flush()
    synced = [s for s in synced if s != str(tmp_path)]  # the root: its new fan-out folders
    assert files <= set(synced)  # every file (synced in the background), then each folder once
    folders = {str(k.path.parent) for k in kept}
    assert folders <= set(synced) and len(synced) == len(files) + len(folders)
    assert max(synced.index(f) for f in files) < min(synced.index(f) for f in folders)
    cache.close()
    reopened = DownloadCache(tmp_path)
    assert [reopened.lookup(f"http://shop.test/{i}.jpg") for i in range(3)] == kept
    reopened.close()


def test_a_file_that_fails_to_sync_fails_the_flush_and_records_nothing(
    bodies: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync

    def failing(fd: int) -> None:
        if str(Path(f"/proc/self/fd/{fd}").readlink()).endswith(".jpg"):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    cache = DownloadCache(tmp_path, sync_each=False)
    monkeypatch.setattr(durable.os, "fsync", failing)
    cache.keep("http://shop.test/0.jpg", bodies[0], "jpg")
    with pytest.raises(OSError, match="Input/output"):
        cache.flush()
    monkeypatch.setattr(durable.os, "fsync", real_fsync)
    cache.close()
    reopened = DownloadCache(tmp_path)
    assert reopened.lookup("http://shop.test/0.jpg") is None  # never recorded: fetched again
    reopened.close()


def test_close_flushes_what_is_pending(bodies: list[bytes], tmp_path: Path) -> None:
    cache = DownloadCache(tmp_path, sync_each=False)
    kept = cache.keep("http://shop.test/a.jpg", bodies[0], "jpg", etag='"a"')
    cache.close()
    reopened = DownloadCache(tmp_path)
    assert reopened.lookup("http://shop.test/a.jpg") == kept
    reopened.close()


@pytest.mark.parametrize("sync_each", [True, False])
def test_a_body_cut_short_at_its_content_name_is_written_again(
    bodies: list[bytes], tmp_path: Path, sync_each: bool
) -> None:
    cache = DownloadCache(tmp_path, sync_each=sync_each)
    body = bodies[1]
    first = cache.keep("http://shop.test/b.jpg", body, "jpg")
    first.path.write_bytes(body[: len(body) // 3])  # what a power cut leaves of it
    again = cache.keep("http://shop.test/b2.jpg", body, "jpg")
    assert again.path == first.path and again.path.read_bytes() == body
    cache.close()
