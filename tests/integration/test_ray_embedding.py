"""Embedding on a local Ray (Ray Data, two embedding actors) gives what local embedding gives,
every path comes back exactly once, and the shards on disk load without pickle."""

from __future__ import annotations

import gc
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lookalike.distributed import embed_with_ray, read_shard
from lookalike.embedders import create_embedder
from lookalike.embedders.base import EmbedderSpec
from lookalike.errors import ImageError, InvalidInputError
from lookalike.evaluation.copies import CopySet
from lookalike.imaging import load_prepared
from tests import processes
from tests.helpers import free_port

SPEC = EmbedderSpec("efficientnet-lite0")
# Ray Data's own context warns about its deprecated settings whenever it is created.
pytestmark = [pytest.mark.heavy, pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")]


def test_importing_lookalike_does_not_import_ray() -> None:
    code = (
        "import sys, lookalike, lookalike.distributed, lookalike.distributed.ray_embedding; "
        "print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_ray_names_the_address_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail as if not installed
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(InvalidInputError, match=r"'local'.*pip install 'lookalike\[ray\]'"):
        embed_with_ray(["x.jpg"], SPEC, address="local", shard_dir=tmp_path)


def test_unreachable_cluster_is_refused_in_seconds(tmp_path: Path) -> None:
    pytest.importorskip("ray.data", reason="Ray is not installed: pip install 'lookalike[ray]'")
    address = f"127.0.0.1:{free_port()}"  # nothing listens there: ray.init would retry for ever
    with pytest.raises(InvalidInputError, match=rf"cannot reach the Ray cluster at {address}"):
        embed_with_ray(["x.jpg"], SPEC, address=address, shard_dir=tmp_path)
    with pytest.raises(InvalidInputError, match="HOST:PORT"):
        embed_with_ray(["x.jpg"], SPEC, address="no-port-here", shard_dir=tmp_path)


def test_local_ray_with_two_actors_matches_local_embedding(
    copy_set: CopySet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray_data = pytest.importorskip(
        "ray.data", reason="Ray is not installed: pip install 'lookalike[ray]'"
    )
    import ray

    good = [*copy_set.originals, *(p.copy for p in copy_set.copies)][:40]
    bad = tmp_path / "notes.jpg"
    bad.write_text("a text file that only looks like a photo\n")
    paths = [str(p) for p in good[:20]] + [str(bad)] + [str(p) for p in good[20:]]
    bad_index = 20
    with pytest.raises(ImageError) as local_failure:
        load_prepared(bad, create_embedder(SPEC).input_spec)

    # Start embedding only once both actors are up (they may still not both take blocks).
    context = ray_data.DataContext.get_current()
    monkeypatch.setattr(context, "wait_for_min_actors_s", 120, raising=False)
    shard_dir = tmp_path / "shards"
    rows = list(
        embed_with_ray(paths, SPEC, address="local", shard_dir=shard_dir, batch_size=8, workers=2)
    )
    assert not ray.is_initialized(), "the local Ray must be shut down afterwards"

    assert sorted(index for index, _, _ in rows) == list(range(len(paths)))
    by_index = {index: (vector, reason) for index, vector, reason in rows}
    assert by_index[bad_index] == (None, local_failure.value.reason)

    embedder = create_embedder(SPEC)
    pixels = np.stack([load_prepared(p, embedder.input_spec) for p in good])
    expected = embedder.embed(pixels)
    good_indexes = [i for i in range(len(paths)) if i != bad_index]
    got = []
    for i in good_indexes:
        vector, reason = by_index[i]
        assert reason is None and vector is not None, paths[i]
        got.append(vector)
    distributed = np.stack(got)
    assert distributed.dtype == np.float32 and distributed.shape == expected.shape
    np.testing.assert_allclose(distributed, expected, atol=1e-5, rtol=0)

    # The shards on disk hold the same rows, load without pickle, and came from the actors.
    metas = sorted(shard_dir.glob("shard-*.json"))
    assert len(metas) == 6  # 41 files in blocks of at most 8
    rows_on_disk: list[int] = []
    writers = set()
    for meta_path in metas:
        vectors = np.load(meta_path.with_suffix(".npy"), allow_pickle=False)
        meta = json.loads(meta_path.read_text())
        assert vectors.dtype == np.float32 and vectors.shape == (len(meta["rows"]), 1280)
        for row, vector in zip(meta["rows"], vectors, strict=True):
            np.testing.assert_array_equal(vector, by_index[row][0])
        shard = read_shard(meta_path)
        rows_on_disk += [*shard.rows.tolist(), *(row for row, _ in shard.errors)]
        writers.add(meta["writer"]["pid"])
    assert sorted(rows_on_disk) == list(range(len(paths)))
    # Written by the pool's actors, never by this (the driver's) process. Which actor takes a
    # block is Ray's choice: with six small blocks one actor, always free first, may take them
    # all (seen in CI), so the test does not ask for both.
    assert 1 <= len(writers) <= 2 and os.getpid() not in writers, writers


class _FailingStart:
    """Stands in for Ray's check that a new raylet registered (``services.get_node``), failing
    the way a start on a loaded machine fails, after the GCS server and the raylet are running;
    records those processes, so the test can see whether they outlive the failure. With
    ``hang``, the raylet is first let start its agents and then stopped (SIGSTOP), as a hung
    raylet that no longer answers SIGTERM."""

    def __init__(self, real: Any, failures: int, *, hang: bool) -> None:
        self.real, self.failures, self.hang, self.calls = real, failures, hang, 0
        self.before = processes.descendants(os.getpid())
        self.started: list[set[processes.ProcessId]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls > self.failures:
            return self.real(*args, **kwargs)
        if self.hang:
            raylet = self._raylet()
            deadline = time.monotonic() + 60
            while not processes.children(raylet) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert processes.children(raylet), "the raylet started no agent in 60 s"
            os.kill(raylet, signal.SIGSTOP)
        self.started.append(processes.descendants(os.getpid()) - self.before)
        raise Exception(  # what Ray raises, word for word, when its 30 s wait runs out
            "The current node timed out during startup. This could happen because some of the "
            "raylet failed to startup or the GCS has become overloaded."
        )

    def _raylet(self) -> int:
        for pid, _ in processes.descendants(os.getpid()) - self.before:
            if b"/raylet" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]:
                return pid
        raise AssertionError("no raylet among the processes Ray started")


def _failing_start(
    monkeypatch: pytest.MonkeyPatch, failures: int, *, hang: bool = False
) -> _FailingStart:
    pytest.importorskip("ray.data", reason="Ray is not installed: pip install 'lookalike[ray]'")
    import ray._private.services as services

    fake = _FailingStart(services.get_node, failures, hang=hang)
    monkeypatch.setattr(services, "get_node", fake)
    return fake


def test_local_ray_with_a_hung_raylet_is_refused_and_leaves_nothing_running(
    copy_set: CopySet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    fake = _failing_start(monkeypatch, failures=99, hang=True)
    paths = [str(p) for p in copy_set.originals[:2]]
    try:
        with pytest.raises(InvalidInputError) as failure:
            list(embed_with_ray(paths, SPEC, address="local", shard_dir=tmp_path / "shards"))
        message = str(failure.value)
        assert "cannot start a local Ray (2 tries)" in message
        assert "timed out during startup" in message and "index without --ray" in message
        logs = re.search(r"Ray's logs of the last try: (\S+);", message)
        assert logs is not None and Path(logs.group(1)).is_dir(), message

        # Each try started Ray's processes (the raylet's agents among them); none outlives the
        # failure, and no handle on one is left for the garbage collector to warn about (seen
        # in CI as a later test's "ResourceWarning: subprocess ... is still running").
        assert fake.calls == 2 and all(fake.started), fake.started
        assert not processes.wait_gone(set().union(*fake.started), timeout=10.0)
        assert not ray.is_initialized()
        unraisable: list[str] = []
        monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(repr(u.exc_value)))
        del failure
        gc.collect()
        assert unraisable == []
    finally:
        processes.kill_all(set().union(*fake.started))  # survivors of a failed check


def test_local_ray_start_that_times_out_once_is_tried_again(
    copy_set: CopySet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    fake = _failing_start(monkeypatch, failures=1)
    paths = [str(p) for p in copy_set.originals[:3]]
    rows = list(
        embed_with_ray(paths, SPEC, address="local", shard_dir=tmp_path / "shards", workers=1)
    )
    assert fake.calls >= 2 and len(fake.started) == 1 and fake.started[0]
    assert not processes.wait_gone(fake.started[0], timeout=10.0)
    assert sorted(index for index, _, _ in rows) == [0, 1, 2]
    embedder = create_embedder(SPEC)
    expected = embedder.embed(np.stack([load_prepared(p, embedder.input_spec) for p in paths]))
    got = np.stack([vector for _, vector, _ in sorted(rows, key=lambda r: r[0])])
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert not ray.is_initialized()
