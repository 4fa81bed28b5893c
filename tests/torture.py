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

For `lookalike serve --allow-writes` ("serve-writes") the process is the server, killed while
four client threads send it a seeded sequence of uploads and deletes; see :func:`_torture_server`
for what is checked then (the index holds exactly the acknowledged writes, give or take those
in flight; a restarted server searches, accepts an upload and leaves the lock free).

Used by tests/integration/test_crash_torture.py (a few trials) and benchmarks/crash_torture.py
(hundreds).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from lookalike import IndexOptions, SearchEngine
from lookalike.evaluation.copies import skimage_originals
from lookalike.store import IndexStore
from lookalike.web.service import SearchService
from lookalike.web.settings import ServeSettings
from tests import processes
from tests.helpers import Server, cli_env, multipart

OPERATIONS = ("first-index", "reindex", "remove", "graph", "compact", "serve-writes")

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
    #: serve-writes: the photos clients upload (file name, bytes), all different.
    uploads: tuple[tuple[str, bytes], ...] = ()
    #: serve-writes: the id of each image of the starting index, by path.
    ids: dict[str, int] = field(default_factory=dict)
    #: serve-writes: each upload's vector in a clean index, by its content name.
    upload_vectors: dict[str, npt.NDArray[np.float32]] = field(default_factory=dict)

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
    elif operation == "serve-writes":
        ws.arguments = ("serve", "--index", str(ws.index), "--allow-writes")
        ws.uploads = _upload_pool(root / "upload-pool", seed=seed + 4)
        with SearchEngine.open(ws.index) as engine:
            paths, _ = engine.export_vectors()
            ws.ids = {p: engine.record_by_path(p).id for p in paths}
        pool = root / "upload-pool"
        shutil.rmtree(pool)
        for name, data in ws.uploads:
            pool.mkdir(exist_ok=True)
            (pool / upload_name(name, data)).write_bytes(data)
        _index_in_process(root / "uploads-reference.idx", pool)
        with SearchEngine.open(root / "uploads-reference.idx") as engine:
            paths, vectors = engine.export_vectors()
        ws.upload_vectors = {Path(p).name: v for p, v in zip(paths, vectors, strict=True)}
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
    if operation == "serve-writes":
        ws.work_seconds = _measure_serve(ws, real_server=measure_cli)
    else:
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


# --- serve --allow-writes ------------------------------------------------------------------

#: Distinct photos uploaded per trial (a third of them PNG), deletes of starting images and of
#: uploads, and the client threads sending them.
SERVE_UPLOADS = 24
SERVE_DELETES = 6
SERVE_THREADS = 4
#: Seconds a client waits for one answer (a kill answers at once: the connection drops).
REQUEST_TIMEOUT = 60.0


def _upload_pool(folder: Path, *, seed: int) -> tuple[tuple[str, bytes], ...]:
    pool = []
    for i, path in enumerate(sorted(make_photos(folder, SERVE_UPLOADS, seed=seed, prefix="up"))):
        if i % 3 == 2:
            png = path.with_suffix(".png")
            Image.open(path).save(png)
            path = png
        pool.append((path.name, path.read_bytes()))
    return tuple(pool)


def upload_name(filename: str, data: bytes) -> str:
    """The name the server stores an upload under (INDEX_DIR/uploads: named by content)."""
    return f"{hashlib.blake2b(data, digest_size=16).hexdigest()}{Path(filename).suffix.lower()}"


@dataclass
class Write:
    """One client request: an upload of ``ws.uploads[upload]``, or (``delete``) a delete of
    that upload once acknowledged, or of the starting image ``path``."""

    delete: bool
    upload: int | None = None
    path: str = ""
    #: HTTP status answered; None when no answer came.
    status: int | None = None
    #: The id a 201 answered.
    image_id: int | None = None
    #: "refused" (the connection was refused: nothing reached the server), "lost" (sent, no
    #: answer: in flight at the kill), "skipped" (never sent), or an unexpected error.
    outcome: str = ""
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def acknowledged(self) -> bool:
        return self.status in (201, 204)

    @property
    def in_flight(self) -> bool:
        return self.outcome == "lost"


def _plan(ws: Workspace, seed: int) -> list[Write]:
    """Every upload, and deletes of starting images (never the query) and of uploads (each
    after its upload), in a seeded order."""
    rng = np.random.default_rng(seed)
    writes = [Write(False, upload=i) for i in rng.permutation(len(ws.uploads)).tolist()]
    starting = sorted(p for p in ws.ids if p != str(ws.query))
    for i in rng.choice(len(starting), SERVE_DELETES, replace=False).tolist():
        writes.insert(int(rng.integers(0, len(writes) + 1)), Write(True, path=starting[i]))
    for upload in rng.choice(len(ws.uploads), SERVE_DELETES, replace=False).tolist():
        after = next(n for n, w in enumerate(writes) if w.upload == upload and not w.delete)
        position = int(rng.integers(after + 1, len(writes) + 1))
        writes.insert(position, Write(True, upload=upload))
    return writes


def _send(url: str, ws: Workspace, write: Write, uploads: dict[int, Write]) -> None:
    """Send one write and record what came back."""
    if write.delete:
        target = ws.ids.get(write.path) if write.upload is None else uploads[write.upload].image_id
        if target is None:  # its upload was not acknowledged
            write.outcome = "skipped"
            return
        request = urllib.request.Request(f"{url}/api/images/{target}", method="DELETE")
    else:
        assert write.upload is not None
        name, data = ws.uploads[write.upload]
        body, content_type = multipart("image", name, data)
        request = urllib.request.Request(
            f"{url}/api/images", data=body, headers={"Content-Type": content_type}
        )
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
            status, answer = response.status, response.read()
        # Only a whole answer counts: one cut in its body leaves the write in flight.
        if status == 201:
            write.image_id = int(json.loads(answer)["id"])
        write.status = status
    except urllib.error.HTTPError as exc:
        write.status = exc.code
        write.outcome = exc.read().decode(errors="replace")[:200]
    except urllib.error.URLError as exc:
        refused = isinstance(exc.reason, ConnectionRefusedError)
        write.outcome = "refused" if refused else "lost"
    except (OSError, http.client.HTTPException):  # the answer was cut (or never came)
        write.outcome = "lost"


def _client(
    url: str,
    ws: Workspace,
    work: queue.Queue[Write],
    uploads: dict[int, Write],
    stop: threading.Event,
) -> None:
    while True:
        try:
            write = work.get_nowait()
        except queue.Empty:
            return
        try:
            if write.delete and write.upload is not None:
                uploads[write.upload].done.wait()
            if stop.is_set():
                write.outcome = "skipped"
            else:
                _send(url, ws, write, uploads)
        finally:
            write.done.set()


def _send_all(
    url: str, ws: Workspace, writes: list[Write], stop: threading.Event
) -> list[threading.Thread]:
    """Start the client threads on ``writes`` (taken in order, SERVE_THREADS at a time)."""
    work: queue.Queue[Write] = queue.Queue()
    for write in writes:
        work.put(write)
    uploads = {w.upload: w for w in writes if not w.delete and w.upload is not None}
    threads = [
        threading.Thread(target=_client, args=(url, ws, work, uploads, stop), daemon=True)
        for _ in range(SERVE_THREADS)
    ]
    for thread in threads:
        thread.start()
    return threads


def _measure_serve(ws: Workspace, *, real_server: bool) -> float:
    """How long the writes of one plan take: through a real server (``real_server``) with
    the client threads, or through the server's service in this process, one by one."""
    ws.reset()
    writes = _plan(ws, SETUP_SEED)
    if real_server:
        server = Server(ws.index, "--allow-writes")
        try:
            started = time.perf_counter()
            for thread in _send_all(server.url, ws, writes, threading.Event()):
                thread.join()
            seconds = time.perf_counter() - started
        finally:
            server.stop()
    else:
        service = SearchService(ServeSettings(ws.index, allow_writes=True))
        try:
            started = time.perf_counter()
            ids: dict[int, int] = {}
            for write in writes:
                if not write.delete:
                    assert write.upload is not None
                    ids[write.upload] = service.add_upload(*ws.uploads[write.upload][::-1])
                else:
                    service.remove(
                        ws.ids[write.path] if write.upload is None else ids[write.upload]
                    )
            seconds = time.perf_counter() - started
        finally:
            service.close()
    failed = [w for w in writes if w.status not in (None, 201, 204)]
    if real_server and (failed or any(w.status is None for w in writes)):
        raise AssertionError(f"serve-writes: writes failed without a kill: {failed[:3]}")
    return max(seconds, 0.001)


def _torture_server(ws: Workspace, trial: Trial) -> None:
    """Kill `lookalike serve --allow-writes` (its one PID) ``trial.delay`` s after the clients
    start writing, then check the aftermath.

    What is guaranteed, and checked strictly: every acknowledged upload (201) not deleted by
    an acknowledged delete (204) is indexed, under the id it was answered, with its file in
    uploads/ holding exactly the uploaded bytes and its vector that of a clean index; every
    acknowledged delete is gone from the index (and, for an upload, its file from uploads/);
    every starting image not deleted is still there; nothing else is indexed. A write in
    flight at the kill (sent, no answer) may or may not have happened; what it may leave
    besides: an upload's file in uploads/ without its catalog row (the file is written durably
    before the catalog commit), a deleted upload's file (removed after the commit), and a
    ``.*.tmp`` of an upload's file being written, which the next writer's garbage collection
    deletes. Nothing else in uploads/. A restarted server searches, accepts a new upload and
    leaves the lock free, and no ``.*.tmp`` is left anywhere under the index after it wrote.
    """
    fail = trial.failures.append
    server = Server(ws.index, "--allow-writes")
    writes = _plan(ws, trial.seed)
    stop = threading.Event()
    seen: set[processes.ProcessId] = set()
    try:
        threads = _send_all(server.url, ws, writes, stop)
        deadline = time.monotonic() + trial.delay
        while time.monotonic() < deadline:
            seen |= processes.descendants(server.process.pid)
            time.sleep(0.002)
        stop.set()
        server.process.send_signal(signal.SIGKILL)  # the one process: no group, no sweep
        server.process.wait()
        for thread in threads:
            thread.join(REQUEST_TIMEOUT + 5)
    finally:
        server.stop()
    trial.killed_running = any(w.in_flight for w in writes)
    survivors = processes.wait_gone(processes.with_argument(str(ws.index)) | seen, GRACE_SECONDS)
    if survivors:
        fail(
            f"{len(survivors)} processes outlived the killed server by {GRACE_SECONDS} s: "
            f"{sorted(survivors)}"
        )
        processes.kill_all(survivors)
        processes.wait_gone(survivors, 10)
    odd = [w for w in writes if w.status not in (None, 201, 204) or w.outcome not in _OUTCOMES]
    for w in odd[:5]:
        fail(f"{'delete' if w.delete else 'upload'} answered {w.status}: {w.outcome}")

    _check_answers(ws, trial)
    _check_served_index(ws, trial, writes)
    _check_restarted_server(ws, trial)


_OUTCOMES = ("", "refused", "lost", "skipped")


def _check_served_index(ws: Workspace, trial: Trial, writes: list[Write]) -> None:
    """The index and uploads/ after the kill hold what the acknowledged writes say."""
    fail = trial.failures.append
    folder = (ws.index / "uploads").resolve()
    uploads = {w.upload: w for w in writes if not w.delete and w.upload is not None}

    def upload_path(upload: int) -> str:
        return str(folder / upload_name(*ws.uploads[upload]))

    must = set(ws.ids)
    may: set[str] = set()
    for w in writes:
        if not w.delete:
            assert w.upload is not None
            if w.acknowledged:
                must.add(upload_path(w.upload))
            elif w.in_flight:
                may.add(upload_path(w.upload))
    for w in writes:
        if w.delete and (w.acknowledged or w.in_flight):
            path = w.path if w.upload is None else upload_path(w.upload)
            must.discard(path)
            if w.in_flight:
                may.add(path)
    with SearchEngine.open(ws.index) as engine:
        paths, vectors = engine.export_vectors()
        indexed = dict(zip(paths, vectors, strict=True))
        for upload, w in uploads.items():
            if w.image_id is not None and upload_path(upload) in indexed:
                record, _ = engine.record(w.image_id)
                if record.path != upload_path(upload):
                    fail(f"upload answered id {w.image_id}, which is now {record.path}")
    missing, extra = must - set(indexed), set(indexed) - must - may
    if missing or extra:
        fail(
            f"index after the kill: {len(missing)} acknowledged images missing "
            f"{sorted(missing)[:2]}, {len(extra)} unexpected {sorted(extra)[:2]}"
        )
    contents = {upload_name(*pair): pair[1] for pair in ws.uploads}
    for path, vector in indexed.items():
        name = Path(path).name
        if not path.startswith(str(folder)):
            continue
        stored = Path(path)
        if not stored.is_file() or stored.read_bytes() != contents.get(name):
            fail(f"indexed upload {name}: its file is missing or not the bytes uploaded")
        elif float(np.max(np.abs(vector - ws.upload_vectors[name]))) > TOLERANCE:
            fail(f"indexed upload {name}: its vector differs from a clean index's")
    in_flight = {Path(p).name for p in may}
    temporaries = 0
    for file in folder.iterdir() if folder.is_dir() else ():
        if file.name.startswith(".") and file.name.endswith(".tmp"):
            temporaries += 1
        elif str(file) not in indexed and file.name not in in_flight:
            fail(f"uploads/{file.name} is neither indexed nor the file of a write in flight")
    if temporaries and not any(w.in_flight and not w.delete for w in writes):
        fail(f"{temporaries} temporaries in uploads/ though no upload was in flight")


def _check_restarted_server(ws: Workspace, trial: Trial) -> None:
    """A new server on the index searches, accepts an upload; then the lock is free and the
    writer's garbage collection has left no temporary file."""
    fail = trial.failures.append
    server = Server(ws.index, "--allow-writes")
    try:
        data = ws.query.read_bytes()
        body, content_type = multipart("image", ws.query.name, data)
        headers = {"Content-Type": content_type}
        search = urllib.request.Request(f"{server.url}/api/search?k=1", body, headers)
        with urllib.request.urlopen(search, timeout=REQUEST_TIMEOUT) as response:
            matches = json.loads(response.read())["matches"]
        if not matches or matches[0]["id"] != ws.ids[str(ws.query)]:
            fail(f"the restarted server's search answered {matches[:1]}")
        late = make_photos(ws.root / "late", 1, seed=trial.seed + 10_000, prefix="late")[0]
        body, content_type = multipart("image", late.name, late.read_bytes())
        headers = {"Content-Type": content_type}
        add = urllib.request.Request(f"{server.url}/api/images", body, headers)
        try:
            with urllib.request.urlopen(add, timeout=REQUEST_TIMEOUT) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        if status != 201:
            fail(f"the restarted server answered {status} to an upload")
        # Its writer's garbage collection ran: nothing an interrupted write left may remain.
        temporaries = sorted(str(p.relative_to(ws.index)) for p in ws.index.rglob(".*.tmp"))
        if temporaries:
            fail(f"temporary files left after the restarted server wrote: {temporaries[:5]}")
        try:  # the lock is free between the server's writes
            store = IndexStore.open(ws.index, writable=True)
        except Exception as exc:
            fail(f"the lock is not free after the restarted server's upload: {exc}")
        else:
            store.close()
    finally:
        server.stop()
        shutil.rmtree(ws.root / "late", ignore_errors=True)
    store = IndexStore.open(ws.index)
    try:
        referenced = {name for name, _ in store.catalog.segments().values()}
    finally:
        store.close()
    unreferenced = {p.name for p in (ws.index / "segments").iterdir()} - referenced
    if unreferenced:
        fail(f"unreferenced segment files: {sorted(unreferenced)[:3]}")


def run_trial(ws: Workspace, seed: int) -> Trial:
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    trial = Trial(ws.operation, seed, float(rng.uniform(0, KILL_SPAN * ws.work_seconds)))
    ws.reset()
    try:
        if ws.operation == "serve-writes":
            _torture_server(ws, trial)
        else:
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
