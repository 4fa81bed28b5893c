"""What a duplicate plan costs beside the scan it plans: scikit-image's colour photos, each
saved again at several sizes and JPEG qualities in several folders (an archive's copies),
indexed with the fast pixels embedder; then, in one run, the duplicate scan, the plan (a header
read and a stat of every grouped file, by the default keep rules) and writing the plan file.

Usage: python benchmarks/duplicate_plan_cost.py [--variants 24] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from lookalike import SearchEngine
from lookalike.duplicates.plan import make_plan
from lookalike.duplicates.report import DuplicateOptions
from lookalike.evaluation.copies import skimage_originals


def write_archive(root: Path, variants: int) -> int:
    written = 0
    for name, photo in skimage_originals():
        for n in range(variants):
            scale = 1.0 - 0.03 * (n % 8)
            size = (max(32, int(photo.width * scale)), max(32, int(photo.height * scale)))
            folder = root / f"disk{n % 4}" / f"copy{n}"
            folder.mkdir(parents=True, exist_ok=True)
            photo.resize(size).save(folder / f"{name}.jpg", quality=95 - (n % 5) * 5)
            written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = write_archive(root / "photos", args.variants)
        with SearchEngine.create(root / "archive.idx", embedder="pixels") as engine:
            engine.index_folder(root / "photos")
            options = DuplicateOptions(threshold=0.95)
            scans, plans, writes = [], [], []
            for _ in range(args.repeat):
                started = time.perf_counter()
                report = engine.find_duplicates(options)
                scanned = time.perf_counter()
                plan = make_plan(report, index=engine.directory)
                planned = time.perf_counter()
                plan.write(root / "plan.json")
                scans.append(scanned - started)
                plans.append(planned - scanned)
                writes.append(time.perf_counter() - planned)
        grouped = sum(len(g.ids) for g in report.groups)
        scan, planning, writing = map(statistics.median, (scans, plans, writes))
        print(
            f"machine: {os.cpu_count()} cores (shared, loaded); {files} files, {grouped} in "
            f"{len(report.groups)} groups; medians of {args.repeat} runs"
        )
        print(
            f"scan {scan * 1000:.0f} ms, plan {planning * 1000:.0f} ms "
            f"({planning / grouped * 1000:.3f} ms per grouped file, {planning / scan:.2f}x the "
            f"scan), writing the plan {writing * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
