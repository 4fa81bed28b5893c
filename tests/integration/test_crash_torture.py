"""SIGKILL of the one `lookalike` process (as `kill -9` or the OOM killer do it, no process
group sweep) at seeded random moments of every write operation: nothing it started survives
it, the index answers, and running the command again ends with exactly the folder's images.

The writes of `lookalike serve --allow-writes` too: the server is killed while client threads
upload and delete, and the index holds exactly the acknowledged writes (give or take those in
flight). A few trials here; `python benchmarks/crash_torture.py --trials N` runs hundreds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.torture import OPERATIONS, Trial, make_template, prepare, run_trial, summary

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]


def test_sigkill_at_random_moments_of_every_write_operation(tmp_path: Path) -> None:
    template = make_template(tmp_path)
    trials: list[Trial] = []
    for n, operation in enumerate(OPERATIONS):
        workspace = prepare(operation, tmp_path / operation, template)
        # A kill that lands after the process finished tests nothing: draw again (seeded).
        for seed in range(100 * n, 100 * n + 3):
            trials.append(run_trial(workspace, seed))
            if trials[-1].killed_running:
                break
    report = summary(trials)
    print("\n" + report)
    assert all(t.survived for t in trials), report
    killed = {t.operation for t in trials if t.killed_running}
    assert killed == set(OPERATIONS), report
