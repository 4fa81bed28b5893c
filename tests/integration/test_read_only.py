"""Indexes on media that cannot be written (a read-only mount), and on a disk that fills up.

These mount a small tmpfs, so they run as root only (CI containers, this project's dev box);
elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lookalike import SearchEngine
from lookalike.errors import DiskFullError
from tests.helpers import json_lines, run_cli, top_path


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A fresh tmpfs of ``size`` mounted at ``folder``, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _remount(folder: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(folder)], check=True)


def test_search_info_and_verify_work_on_a_read_only_mount(
    small_photos: Path, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "disk", "20m") as disk:
        index = disk / "photos.idx"
        with SearchEngine.create(index, embedder="pixels") as engine:
            engine.index_folder(small_photos)
        _remount(disk, "ro")
        try:
            with pytest.raises(OSError):
                (disk / "probe").write_bytes(b"")  # really read-only
            query = small_photos / "animals" / "chelsea.jpg"
            searched = run_cli("search", query, "--index", index, "--json", "-k", "3")
            assert searched.returncode == 0, searched.stderr
            (answer,) = json_lines(searched.stdout)
            assert top_path(answer).endswith("chelsea.jpg")

            info = run_cli("info", "--index", index, "--json")
            assert info.returncode == 0, info.stderr
            assert json.loads(info.stdout)["count"] == 6

            checked = run_cli("verify", "--index", index)
            assert checked.returncode == 0, checked.stdout + checked.stderr
            assert "OK: no damage found" in checked.stdout
            repaired = run_cli("verify", "--repair", "--index", index)  # nothing to write
            assert repaired.returncode == 0 and "Nothing to repair" in repaired.stdout

            # Writers get one line naming the directory, and exit code 2.
            for args in (
                ("index", small_photos, "--index", index),
                ("remove", query, "--index", index),
            ):
                refused = run_cli(*args)
                assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
                assert "read-only" in refused.stderr and str(index) in refused.stderr
                assert "Traceback" not in refused.stderr
        finally:
            _remount(disk, "rw")


def test_a_read_only_mount_with_an_unfinished_write_ahead_log_is_read(
    small_photos: Path, tmp_path: Path
) -> None:
    """A writer killed before it closed its catalog leaves commits in the -wal file: readers
    on a read-only mount must see them (SQLite's immutable mode would silently miss them)."""
    with tmpfs(tmp_path / "disk", "20m") as disk:
        index = disk / "photos.idx"
        with SearchEngine.create(index, embedder="pixels") as engine:
            engine.index_folder(small_photos)
        crash = (
            "import os, sys, numpy as np\n"
            "from lookalike import SearchEngine\n"
            "engine = SearchEngine.open(sys.argv[1], writable=True)\n"
            "engine.add_vectors(['late'], np.ones((1, engine.manifest.dim), np.float32))\n"
            "os._exit(0)  # no close: the commit stays in the write-ahead log\n"
        )
        subprocess.run([sys.executable, "-c", crash, str(index)], check=True, timeout=120)
        wal = index / "catalog.sqlite-wal"
        assert wal.is_file() and wal.stat().st_size > 0
        _remount(disk, "ro")
        try:
            info = run_cli("info", "--index", index, "--json")
            assert info.returncode == 0, info.stderr
            assert json.loads(info.stdout)["count"] == 7
        finally:
            _remount(disk, "rw")


def test_disk_full_while_indexing_is_one_line_and_loses_nothing_committed(
    tmp_path: Path,
) -> None:
    with tmpfs(tmp_path / "disk", "4m") as disk:
        index = disk / "v.idx"
        rng = np.random.default_rng(9)
        with SearchEngine.create(index, embedder="pixels") as engine:
            dim = engine.manifest.dim
            first = rng.standard_normal((50, dim)).astype(np.float32)
            engine.add_vectors([f"a{i}" for i in range(50)], first)
            # Fill what is left of the disk, then ask for more.
            filler = disk / "filler"
            with contextlib.suppress(OSError), filler.open("wb") as fh:
                while True:
                    fh.write(b"\0" * (1 << 16))
            with pytest.raises(DiskFullError, match=r"disk full.*free space and re-run"):
                engine.add_vectors(
                    [f"b{i}" for i in range(50)], rng.standard_normal((50, dim)).astype(np.float32)
                )
            assert len(engine) == 50
        filler.unlink()
        assert run_cli("verify", "--index", index).returncode == 0
        with SearchEngine.open(index) as engine:
            assert len(engine) == 50


def test_disk_full_during_lookalike_index_is_one_line(small_photos: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "4m") as disk:
        index = disk / "photos.idx"
        SearchEngine.create(index, embedder="pixels").close()
        filler = disk / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as fh:
            while True:
                fh.write(b"\0" * (1 << 16))
        result = run_cli("index", small_photos, "--index", index, "-q")
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert "disk full" in result.stderr and str(disk) in result.stderr
        assert "nothing committed is lost" in result.stderr
        filler.unlink()
        again = run_cli("index", small_photos, "--index", index, "-q", "--json")
        assert again.returncode == 0, again.stderr
