"""SIGKILL while a writer keeps the neighbour statistic up to date (adding and removing images
with the hubness correction on) leaves a usable index: readers get the exact statistic of what
was committed, and the next writer saves it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lookalike import SearchEngine
from lookalike.indexes.neighbours import build_neighbours
from lookalike.rerank_settings import RerankSettings
from tests.conftest import FAST_EMBEDDER
from tests.helpers import cli_env

pytestmark = pytest.mark.heavy  # real processes killed mid-write

#: The child: add 40 vectors and remove 10, again and again, until killed.
CHILD = """
import sys
import numpy as np
from lookalike import SearchEngine
rng = np.random.default_rng(int(sys.argv[2]))
with SearchEngine.open(sys.argv[1], writable=True) as engine:
    print("open", flush=True)
    for round in range(10_000):
        engine.add_vectors([f"r{round}/{i}" for i in range(40)],
                           rng.standard_normal((40, engine.manifest.dim)).astype(np.float32))
        engine.remove([f"r{round}/{i}" for i in range(0, 40, 4)])
"""


def _check(index: Path) -> None:
    with SearchEngine.open(index) as reader:
        exact = reader.vector_index()
        truth = build_neighbours(exact.ids, exact.vectors, 10)
        table = reader.collection.neighbour_table(10)
        np.testing.assert_array_equal(table.neighbours, truth.neighbours)
        np.testing.assert_array_equal(table.similarities, truth.similarities)
        assert reader.search_vectors(exact.vectors[:3], k=3)[0][0].id == exact.ids[0]
    with SearchEngine.open(index, writable=True) as writer:
        assert not list(index.glob(".*.tmp"))  # the killed write's temporary is gone
        writer.writer.keep_neighbours()
        saved = writer.collection.neighbours.load()
        assert saved is not None
        np.testing.assert_array_equal(saved.neighbours, truth.neighbours)
        np.testing.assert_array_equal(saved.similarities, truth.similarities)


def test_sigkill_during_statistic_updates_leaves_a_usable_index(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    rng = np.random.default_rng(0)
    settings = RerankSettings(hubness=True)
    with SearchEngine.create(index, embedder=FAST_EMBEDDER, reranking=settings) as engine:
        engine.add_vectors(
            [f"base/{i}" for i in range(100)],
            rng.standard_normal((100, engine.manifest.dim)).astype(np.float32),
        )
    for trial, delay in enumerate(rng.uniform(0.2, 1.5, size=3)):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(index), str(trial)],
            stdout=subprocess.PIPE,
            env=cli_env(),
        )
        assert child.stdout is not None and child.stdout.readline().strip() == b"open"
        time.sleep(float(delay))
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
        _check(index)
