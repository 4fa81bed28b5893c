"""Applying and undoing a duplicate plan: files per second of `apply --move-to` and `--trash`
and of their undo (journal flushed before and after each file, every file hashed first, the
index kept in step), beside a bare loop of renames of the same files in the same run.

Real photos (scikit-image's colour photos, 320 px wide) and re-encoded copies of them, in a
temporary folder indexed with the fast ``pixels`` embedder; the plan keeps each original.

Usage: python benchmarks/duplicate_actions_speed.py [--copies 40]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from lookalike import SearchEngine
from lookalike.duplicates.actions import ApplyOptions, apply_plan, undo_journal
from lookalike.duplicates.journal import Action
from lookalike.duplicates.plan_checks import check_plan
from lookalike.duplicates.plan_file import read_plan
from lookalike.evaluation.copies import skimage_originals


def _archive(root: Path, copies: int) -> dict[Path, list[Path]]:
    groups: dict[Path, list[Path]] = {}
    for name, image in skimage_originals():
        small = image.resize((320, 320 * image.height // image.width))
        original = root / "originals" / f"{name}.jpg"
        original.parent.mkdir(parents=True, exist_ok=True)
        small.save(original, quality=95)
        groups[original] = []
        for n in range(copies):
            copy = root / "copies" / f"set{n:03d}" / f"{name}.jpg"
            copy.parent.mkdir(parents=True, exist_ok=True)
            small.save(copy, quality=60 + n % 35)
            groups[original].append(copy)
    return groups


def _plan(index: Path, groups: dict[Path, list[Path]], target: Path) -> Path:
    with SearchEngine.open(index) as engine:
        records = {r.path: r for r in engine.collection.snapshot().records.values()}

    def file(path: Path) -> dict[str, object]:
        record = records[str(path)]
        return {"id": record.id, "path": str(path), "size": record.size,
                "mtime_ns": record.mtime_ns, "hash": record.hash}  # fmt: skip

    body = {
        "format": "lookalike-duplicate-plan",
        "version": 1,
        "index": str(index),
        "groups": [
            {"tier": "same-picture", "keep": file(k), "others": [file(o) for o in others]}
            for k, others in groups.items()
        ],
    }
    target.write_text(json.dumps(body))
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=40, help="copies of each photo")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        groups = _archive(root / "photos", args.copies)
        others = [o for group in groups.values() for o in group]
        index = root / "index"
        with SearchEngine.create(index, embedder="pixels") as engine:
            engine.index_folder(root / "photos")
        plan = read_plan(_plan(index, groups, root / "plan.json"))
        os.environ["XDG_DATA_HOME"] = str(root / "xdg")

        start = time.perf_counter()
        for n, path in enumerate(others):  # the floor: the same files renamed and back
            path.rename(root / f"bare-{n}")
        for n, path in enumerate(others):
            (root / f"bare-{n}").rename(path)
        bare = (time.perf_counter() - start) / 2

        start = time.perf_counter()
        check_plan(plan, Action.MOVE)
        checking = time.perf_counter() - start
        timings = {"bare renames": bare, "check (hash every file)": checking}
        for action in (Action.MOVE, Action.TRASH):
            journal = root / f"{action}.journal.json"
            move_to = root / "dups" if action is Action.MOVE else None
            with SearchEngine.open(index, writable=True) as engine:
                start = time.perf_counter()
                apply_plan(plan, ApplyOptions(action, move_to=move_to, journal=journal),
                           engine.writer)  # fmt: skip
                timings[f"apply --{action}"] = time.perf_counter() - start
                start = time.perf_counter()
                undone = undo_journal(journal, engine.writer)
                timings[f"undo {action}"] = time.perf_counter() - start
            assert not undone.problems, undone.problems
    print(f"{len(others)} duplicates of {len(groups)} photos, one run (ratios: to bare renames)")
    for name, seconds in timings.items():
        print(
            f"  {name:26s} {seconds:7.2f} s  {len(others) / seconds:8.0f} files/s  "
            f"x{seconds / bare:6.1f}"
        )


if __name__ == "__main__":
    main()
