"""SIGKILL torture of the write operations, as a user meets it (Linux: it reads /proc).

Each trial restores one operation's starting state, runs the real CLI, and sends SIGKILL to that
ONE process (never its group) at a seeded random moment of its work (measured from when it takes
the index's writer lock). Then:

- no process it started (recorded from /proc while it ran, or found afterwards by the index
  path on its command line) is alive 2 s after the kill;
- `lookalike info` and `lookalike search` answer (or, for a first index killed before its
  manifest was written, say cleanly that there is no index);
- `lookalike remove` took effect entirely or not at all;
- running the command again ends with exactly the expected images (the folder's, less those
  removed), vectors equal within 1e-5 to a clean index of the same folder, no ``.*.tmp`` left
  anywhere under the index, no unreferenced segment file; for the graph build a graph in use,
  for compaction nothing left to compact.

Used by tests/integration/test_crash_torture.py (a few trials) and benchmarks/crash_torture.py
(hundreds). `lookalike serve --allow-writes` is not tortured here yet.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from lookalike import IndexOptions, SearchEngine
from lookalike.evaluation.copies import skimage_originals
from lookalike.store import IndexStore
from tests import processes
from tests.helpers import cli_env

OPERATIONS = ("first-index", "reindex", "remove", "graph", "compact")

EMBEDDER = "pixels"
#: Small commits and two decode workers: many commits, and children to outlive the parent.
INDEX_ARGS = ("--embedder", EMBEDDER, "--workers", "2", "--batch-size", "4", "--commit-every", "8")
OPTIONS = IndexOptions(workers=2, batch_size=4, commit_every=8)
#: Kill moments are drawn from [0, KILL_SPAN x the operation's measured work time].
KILL_SPAN = 1.1
#: How long a killed process's descendants may outlive it.
GRACE_SECONDS = 2.0
TOLERANCE = 1e-5
LABELS = ("a", "b", "c")


def make_photos(folder: Path, count: int, *, seed: int, prefix: str = "img") -> list[Path]:
    """``count`` small JPEGs (random crops of scikit-image's colour photos, seeded), spread
    over the subfolders a, b and c."""
    rng = np.random.default_rng(seed)
    originals = [image for _, image in skimage_originals()]
    paths = []
    for i in range(count):
        base = originals[int(rng.integers(len(originals)))]
        fraction = rng.uniform(0.5, 1.0)
        w, h = int(base.width * fraction), int(base.height * fraction)
        x = int(rng.integers(0, base.width - w + 1))
        y = int(rng.integers(0, base.height - h + 1))
        size = (int(rng.integers(96, 200)), int(rng.integers(72, 160)))
        photo = base.crop((x, y, x + w, y + h)).resize(size, Image.Resampling.BILINEAR)
        path = folder / LABELS[i % len(LABELS)] / f"{prefix}{i:03d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        photo.save(path, quality=85)
        paths.append(path)
    return paths


def _index_in_process(index: Path, photos: Path, *, index_type: str | None = None) -> None:
    options = IndexOptions(workers=0, index_type=index_type)
    with SearchEngine.open_or_create(index, embedder=EMBEDDER) as engine:
        engine.index_folder(photos, options=options)


@dataclass
class Workspace:
    """One operation's fixed place: its photos and index are restored from the pristine copies
    before each trial (same absolute paths, so the index's paths stay true)."""

    operation: str
    root: Path
    arguments: tuple[str, ...] = ()
    removed: tuple[Path, ...] = ()
    removed_count: int = 0
    expected: dict[str, npt.NDArray[np.float32]] = field(default_factory=dict)
    query: Path = Path()
    work_seconds: float = 0.0

    @property
    def photos(self) -> Path:
        return self.root / "photos"

    @property
    def index(self) -> Path:
        return self.root / "trial.idx"

    @property
    def lock(self) -> Path:
        return self.index / "lock"

    def reset(self) -> None:
        for path in (self.photos, self.index):
            shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(self.root / "pristine-photos", self.photos)
        if (self.root / "pristine.idx").exists():
            shutil.copytree(
                self.root / "pristine.idx", self.index, ignore=shutil.ignore_patterns("lock")
            )

    def command(self) -> list[str]:
        return [sys.executable, "-m", "lookalike", *self.arguments]


PHOTOS = 48
SETUP_SEED = 11


def prepare(
    operation: str,
    root: Path,
    template: Path,
    *,
    seed: int = SETUP_SEED,
    measure_cli: bool = False,
) -> Workspace:
    """Build ``operation``'s starting state from the photos in ``template`` (``seed`` chooses
    the re-index's changes), its expected result and its measured work time (``measure_cli``:
    how long the real command holds the writer lock, the window kills are drawn from; else
    the same work timed in this process, cheaper and somewhat shorter)."""
    root = root.resolve()
    shutil.rmtree(root, ignore_errors=True)
    ws = Workspace(operation, root)
    shutil.copytree(template, ws.photos)
    photos = sorted(ws.photos.rglob("*.jpg"), key=lambda p: p.name)
    index_args = ("index", str(ws.photos), "--index", str(ws.index), *INDEX_ARGS, "--quiet")
    ws.arguments = index_args
    if operation != "first-index":
        _index_in_process(ws.index, ws.photos)
    if operation == "reindex":
        rng = np.random.default_rng(seed + 1)
        order = [photos[int(i)] for i in rng.permutation(len(photos))]
        gone, renamed, moved, rewritten = order[:6], order[6:12], order[12:18], order[18:22]
        for path in gone:
            path.unlink()
        for path in renamed:
            path.rename(path.with_name(f"renamed-{path.name}"))
        for path in moved:
            target = ws.photos / LABELS[(LABELS.index(path.parent.name) + 1) % 3] / path.name
            path.rename(target.with_name(f"moved-{path.name}"))
        staging = root / "new"
        for path in make_photos(staging, 16, seed=seed + 2, prefix="new"):
            path.rename(ws.photos / path.parent.name / path.name)
        for i, path in enumerate(make_photos(staging, len(rewritten), seed=seed + 3)):
            shutil.copyfile(path, rewritten[i])  # same name, new content
        shutil.rmtree(staging)
    elif operation == "remove":
        ws.removed = (photos[0], photos[1], ws.photos / LABELS[2])
        ws.arguments = ("remove", *map(str, ws.removed), "--index", str(ws.index))
    elif operation == "graph":
        ws.arguments = (*index_args, "--index-type", "hnsw")
    elif operation == "compact":
        with SearchEngine.open(ws.index, writable=True) as engine:
            engine.remove(photos[:16])
        for path in photos[:16]:
            path.unlink()
        store = IndexStore.open(ws.index)
        try:
            assert store.needs_compaction(), "the compaction trial's index needs no compaction"
        finally:
            store.close()
    elif operation != "first-index":
        raise ValueError(f"unknown operation {operation!r}; choose from {OPERATIONS}")
    shutil.copytree(ws.photos, root / "pristine-photos")
    if ws.index.exists():
        shutil.copytree(ws.index, root / "pristine.idx", ignore=shutil.ignore_patterns("lock"))

    reference = root / "reference.idx"
    _index_in_process(reference, ws.photos)
    with SearchEngine.open(reference) as engine:
        paths, vectors = engine.export_vectors()
    gone = {str(p) for p in ws.removed}
    ws.expected = {
        p: v
        for p, v in zip(paths, vectors, strict=True)
        if p not in gone and not any(Path(p).is_relative_to(g) for g in gone)
    }
    ws.removed_count = len(paths) - len(ws.expected)
    ws.query = Path(min(ws.expected))
    ws.work_seconds = _measure_command(ws) if measure_cli else _measure_work(ws)
    return ws


def _measure_work(ws: Workspace) -> float:
    """How long the operation's work takes, measured in this process (no interpreter start)."""
    ws.reset()
    started = time.perf_counter()
    if ws.operation == "remove":
        with SearchEngine.open(ws.index, writable=True) as engine:
            engine.remove(ws.removed)
    else:
        options = replace(OPTIONS, index_type="hnsw" if ws.operation == "graph" else None)
        with SearchEngine.open_or_create(ws.index, embedder=EMBEDDER) as engine:
            engine.index_folder(ws.photos, options=options)
    return time.perf_counter() - started


def _measure_command(ws: Workspace) -> float:
    """From the first to the last moment the real command is seen holding the writer lock."""
    ws.reset()
    process = subprocess.Popen(
        ws.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env()
    )
    first = last = None
    while process.poll() is None:
        if processes.holds_file(process.pid, ws.lock):
            last = time.monotonic()
            first = first or last
        time.sleep(0.001)
    if process.returncode != 0 or first is None or last is None:
        raise AssertionError(f"{ws.operation}: the command failed (exit {process.returncode})")
    return max(last - first, 0.001)


@dataclass
class Trial:
    operation: str
    seed: int
    delay: float
    killed_running: bool = False
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def survived(self) -> bool:
        return not self.failures


def run_trial(ws: Workspace, seed: int) -> Trial:
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    trial = Trial(ws.operation, seed, float(rng.uniform(0, KILL_SPAN * ws.work_seconds)))
    ws.reset()
    try:
        _kill_and_check(ws, trial)
    except Exception as exc:  # a trial's failure is reported with its seed, not raised
        trial.failures.append(f"{type(exc).__name__}: {exc}")
    trial.seconds = time.perf_counter() - started
    return trial


def _kill_and_check(ws: Workspace, trial: Trial) -> None:
    fail = trial.failures.append
    log = ws.root / "killed.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            ws.command(), stdout=sink, stderr=subprocess.STDOUT, env=cli_env()
        )
    seen: set[processes.ProcessId] = set()
    locked_at: float | None = None
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        seen |= processes.descendants(process.pid)
        if locked_at is None and processes.holds_file(process.pid, ws.lock):
            locked_at = time.monotonic()
        if locked_at is not None and time.monotonic() - locked_at >= trial.delay:
            break
        time.sleep(0.001)
    trial.killed_running = process.poll() is None
    if trial.killed_running:
        process.send_signal(signal.SIGKILL)  # the one process: no group, no sweep
    code = process.wait()
    if not trial.killed_running and code != 0:
        fail(f"the operation failed on its own (exit {code}): {_tail(log)}")
    left = processes.with_argument(str(ws.index)) | seen
    survivors = processes.wait_gone(left, GRACE_SECONDS)
    if survivors:
        fail(
            f"{len(survivors)} processes outlived the killed one by {GRACE_SECONDS} s: "
            f"{sorted(survivors)}"
        )
        processes.kill_all(survivors)
        processes.wait_gone(survivors, 10)

    _check_answers(ws, trial)
    _check_rerun(ws, trial)


def _tail(path: Path, size: int = 600) -> str:
    return path.read_text(errors="replace")[-size:].strip()


def _check_answers(ws: Workspace, trial: Trial) -> None:
    """`info` and `search` (run side by side) answer from whatever the kill left."""
    fail = trial.failures.append
    commands = {
        "info": ["info", "--index", str(ws.index), "--json"],
        "search": ["search", str(ws.query), "--index", str(ws.index), "--json", "-k", "3"],
    }
    running = {
        name: subprocess.Popen(
            [sys.executable, "-m", "lookalike", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(COLUMNS="200"),
        )
        for name, args in commands.items()
    }
    results = {name: (*p.communicate(timeout=120), p.returncode) for name, p in running.items()}
    if not (ws.index / "manifest.json").exists():
        if ws.operation != "first-index":
            fail("the manifest is gone")
        for name, (_, err, code) in results.items():
            if code != 2 or "Traceback" in err or "index" not in err:
                fail(f"{name} on a never-written index: exit {code}, {err.strip()[-300:]}")
        return
    for name, (_, err, code) in results.items():
        if code != 0:
            fail(f"{name} after the kill: exit {code}, {err.strip()[-300:]}")
    if results["info"][2] == 0:
        count = json.loads(results["info"][0])["count"]
        if not 0 <= count <= max(len(ws.expected), 200):
            fail(f"info says {count} images")
    if results["search"][2] == 0:
        lines = [json.loads(line) for line in results["search"][0].splitlines() if line.strip()]
        if len(lines) != 1 or not isinstance(lines[0].get("matches"), list):
            fail(f"search answered {results['search'][0][:300]!r}")
    if ws.operation == "remove":
        with SearchEngine.open(ws.index) as engine:
            paths, _ = engine.export_vectors()
        left = sum(1 for p in paths if any(Path(p).is_relative_to(r) for r in ws.removed))
        if left not in (0, ws.removed_count):
            fail(f"remove was half done: {left} of {ws.removed_count} removed images are left")


def _check_rerun(ws: Workspace, trial: Trial) -> None:
    """Running the command again finishes the job, with nothing left behind."""
    fail = trial.failures.append
    rerun = subprocess.run(
        ws.command(), capture_output=True, text=True, env=cli_env(), timeout=120, check=False
    )
    already = ws.operation == "remove" and "not in the index" in rerun.stderr
    if rerun.returncode != 0 and not (already and rerun.returncode == 2):
        fail(f"re-run: exit {rerun.returncode}, {rerun.stderr.strip()[-300:]}")
        return
    with SearchEngine.open(ws.index) as engine:
        paths, vectors = engine.export_vectors()
        if sorted(paths) != sorted(ws.expected):
            extra, missing = set(paths) - set(ws.expected), set(ws.expected) - set(paths)
            fail(f"after the re-run: {len(extra)} unexpected, {len(missing)} missing images")
        else:
            want = np.stack([ws.expected[p] for p in paths])
            worst = float(np.max(np.abs(vectors - want))) if len(paths) else 0.0
            if worst > TOLERANCE:
                fail(f"vectors differ from a clean index's by up to {worst:.2e}")
        top = engine.search([ws.query], k=1)[0].matches
        if not top or top[0].path != str(ws.query):
            fail(f"the query image is not its own best match: {top[:1]}")
        if ws.operation == "graph" and engine.search_index_type() != "hnsw":
            fail(f"searches use {engine.search_index_type()}, not the hnsw graph")
    temporaries = sorted(str(p.relative_to(ws.index)) for p in ws.index.rglob(".*.tmp"))
    if temporaries:
        fail(f"temporary files left: {temporaries[:5]}")
    store = IndexStore.open(ws.index)
    try:
        referenced = {name for name, _ in store.catalog.segments().values()}
        if ws.operation == "compact" and store.needs_compaction():
            fail("the index still needs compaction")
    finally:
        store.close()
    unreferenced = {p.name for p in (ws.index / "segments").iterdir()} - referenced
    if unreferenced:
        fail(f"unreferenced segment files: {sorted(unreferenced)[:3]}")


def make_template(root: Path) -> Path:
    """The photos every operation starts from, made once under ``root``."""
    template = root.resolve() / "template"
    shutil.rmtree(template, ignore_errors=True)
    make_photos(template, PHOTOS, seed=SETUP_SEED)
    return template


def run_torture(
    root: Path,
    seeds: Iterable[int],
    *,
    operations: Iterable[str] = OPERATIONS,
    report: Callable[[Trial], None] | None = None,
    measure_cli: bool = False,
) -> list[Trial]:
    """One trial per seed, going round the operations (see :func:`prepare` for
    ``measure_cli``)."""
    chosen = list(operations)
    template = make_template(root)
    spaces: dict[str, Workspace] = {}
    trials = []
    for n, seed in enumerate(seeds):
        operation = chosen[n % len(chosen)]
        if operation not in spaces:
            spaces[operation] = prepare(
                operation, root / operation, template, measure_cli=measure_cli
            )
        trial = run_trial(spaces[operation], seed)
        trials.append(trial)
        if report is not None:
            report(trial)
    return trials


def summary(trials: list[Trial]) -> str:
    """Per operation: trials run, killed while working, survived; then each failure's seed."""
    lines = [f"{'operation':<12}{'trials':>8}{'killed mid-run':>16}{'survived':>10}{'failed':>8}"]
    for operation in OPERATIONS:
        mine = [t for t in trials if t.operation == operation]
        if mine:
            lines.append(
                f"{operation:<12}{len(mine):>8}{sum(t.killed_running for t in mine):>16}"
                f"{sum(t.survived for t in mine):>10}{sum(not t.survived for t in mine):>8}"
            )
    lines.append(
        f"{'all':<12}{len(trials):>8}{sum(t.killed_running for t in trials):>16}"
        f"{sum(t.survived for t in trials):>10}{sum(not t.survived for t in trials):>8}"
    )
    for t in trials:
        if not t.survived:
            lines.append(f"FAILED {t.operation} seed {t.seed} (kill at +{t.delay:.3f} s):")
            lines.extend(f"    {failure}" for failure in t.failures)
    return "\n".join(lines)
