"""SIGKILL torture of every write operation, as a user meets it: `kill -9` of the one
`lookalike` process (no process-group sweep) at seeded random moments of a first index, an
incremental re-index (adds, removes, renames, moves, rewrites), `lookalike remove`, a graph build
(`--index-type hnsw`), a compaction, and the writes of `lookalike serve --allow-writes` (the server
killed while four client threads upload and delete). After each kill: nothing the process started
is alive 2 s later, `info` and `search` answer, and running the command again ends with exactly
the folder's images (vectors within 1e-5 of a clean index), no temporary file and no orphan
segment; for the server, the index holds exactly the acknowledged uploads and deletes (give or
take those in flight at the kill) and a restarted server searches, accepts an upload and leaves
the lock free.

Kill moments are drawn from the time the real command holds the index's writer lock (measured
once per operation; for the server, the time its clients' writes take). "killed mid-run" counts
commands killed before they finished (for the server: with writes in flight, unanswered).
Prints, per operation, trials run, killed while working, survived; then each failure with its
seed (`--first-seed SEED --trials 1 --operation OP` runs that trial again). Linux only (/proc).

Usage: python benchmarks/crash_torture.py [--trials 100] [--first-seed 0] [--operation OP ...]
       [--workdir DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' torture machinery

from tests.torture import OPERATIONS, Trial, run_torture, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument(
        "--operation",
        action="append",
        choices=OPERATIONS,
        help="Operations to torture, in turn (default: all).",
    )
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-torture"
    )
    args = parser.parse_args()
    if not sys.platform.startswith("linux"):
        parser.error("the torture reads /proc: Linux only")
    operations = args.operation or list(OPERATIONS)
    started = time.perf_counter()

    def report(trial: Trial) -> None:
        state = "ok" if trial.survived else "FAILED"
        when = "mid-run" if trial.killed_running else "after it finished"
        print(
            f"{trial.operation:<12} seed {trial.seed:<6} kill at +{trial.delay:.3f} s "
            f"({when}): {state} in {trial.seconds:.1f} s",
            flush=True,
        )

    seeds = range(args.first_seed, args.first_seed + args.trials)
    trials = run_torture(
        args.workdir, seeds, operations=operations, report=report, measure_cli=True
    )
    print()
    print(summary(trials))
    print(f"\n{len(trials)} trials in {time.perf_counter() - started:.0f} s")
    if all(t.survived for t in trials):
        shutil.rmtree(args.workdir, ignore_errors=True)
        return 0
    print(f"(the last trial's state is kept under {args.workdir})")
    return 1


if __name__ == "__main__":
    sys.exit(main())
