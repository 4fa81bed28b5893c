"""Where a served search's CPU goes: the HTTP layer alone, and the threads of a search service
under concurrent load. Companion to serve_load.py (same index, same uploads).

1. HTTP layer: `lookalike serve`'s app on uvicorn in a child process whose search returns one
   answer computed at start, so what is left is parsing, multipart, routing, validation and
   JSON; 1 and 20 clients, the child's CPU per request from /proc.
2. The service in this process, without HTTP: ``--clients`` threads call
   ``SearchService.search_upload`` for ``--seconds``; CPU per request by thread kind (decode
   pool, batch dispatchers, ONNX Runtime's own threads as "other native"), the stages after the
   network, and the batches formed. Batching off, on, and on with two batch workers.

Usage: python benchmarks/serve_costs.py [--clients 20] [--seconds 15] [--workdir DIR]
       (the child process of part 1 is this file with --stub-server PORT)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _photos import make_photo_folder
from serve_load import build_index, load, run_threads

from tests.helpers import free_port, multipart

TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of ``pid``, by thread id."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def stub_server(index: Path, port: int, upload: bytes) -> None:
    """The real app, its search answering with one result computed at start."""
    import uvicorn

    from lookalike.web import service
    from lookalike.web.app import create_app
    from lookalike.web.server import uvicorn_options
    from lookalike.web.settings import ServeSettings

    real = service.SearchService.search_upload
    answer: dict[str, object] = {}

    def canned(self, data, options, *, box=None):  # type: ignore[no-untyped-def]
        if "result" not in answer:
            answer["result"] = real(self, upload, options, box=box)
        return answer["result"]

    service.SearchService.search_upload = canned  # type: ignore[method-assign]
    app = create_app(ServeSettings(index=index))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", **uvicorn_options(10.0))


def http_layer(index: Path, photos: list[Path], seconds: float) -> None:
    bodies = [multipart("image", p.name, p.read_bytes()) for p in photos]
    port = free_port()
    child = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--stub-server",
            str(port),
            "--index",
            str(index),
            "--upload",
            str(photos[0]),
        ]
    )
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        load(port, bodies[:4], 2, 2.0)  # warm, and computes the canned answer
        for clients in (1, 20):
            before = sum(thread_cpu(child.pid).values())
            done = load(port, bodies, clients, seconds)
            cpu = sum(thread_cpu(child.pid).values()) - before
            print(
                f"HTTP layer, {clients:>2} client(s): {done.rate:6.1f} requests/s, "
                f"{cpu / max(done.requests, 1) * 1000:.2f} ms of server CPU per request"
            )
    finally:
        child.terminate()
        child.wait()


def service_threads(index: Path, photos: list[Path], clients: int, seconds: float) -> None:
    uploads = [p.read_bytes() for p in photos]
    for label, settings in (
        ("batching off", {"batch_wait": 0.0}),
        ("batching on", {}),
        ("batching on, 2 workers", {"batch_workers": 2}),
    ):
        one_mode(label, index, settings, uploads, clients, seconds)


def one_mode(
    label: str,
    index: Path,
    settings: dict[str, float],
    uploads: list[bytes],
    clients: int,
    seconds: float,
) -> None:
    """One service, ``clients`` threads searching for ``seconds``: its CPU by thread kind."""
    import lookalike.query.batch_search as batch_search
    from lookalike.search_options import SearchOptions
    from lookalike.web.service import SearchService
    from lookalike.web.settings import ServeSettings

    options = SearchOptions(k=10)
    stages = batch_search._search_groups
    spent = [0.0]

    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.thread_time()
        try:
            return stages(*args, **kwargs)
        finally:
            spent[0] += time.thread_time() - started

    batch_search._search_groups = timed  # the stages after the network, batched path
    server = SearchService(ServeSettings(index=index, **settings))  # type: ignore[arg-type]
    server.warm()
    server.search_upload(uploads[0], options)
    count = [0]
    callers_cpu = [0.0]
    lock = threading.Lock()
    callers: set[int] = set()
    stop = time.monotonic() + seconds

    def caller(slot: int) -> None:
        callers.add(threading.get_native_id())
        started = time.thread_time()
        n = slot
        while time.monotonic() < stop:
            server.search_upload(uploads[n % len(uploads)], options)
            n += clients
            with lock:
                count[0] += 1
        with lock:
            callers_cpu[0] += time.thread_time() - started

    before = thread_cpu(os.getpid())
    wall = run_threads(caller, clients)
    after = thread_cpu(os.getpid())
    names = {t.native_id: t.name for t in threading.enumerate()}
    kinds: dict[str, float] = {"request threads": callers_cpu[0]}
    for tid, cpu in after.items():
        if tid in callers or tid == os.getpid():
            continue
        kind = names.get(tid, "other native (ONNX Runtime, BLAS)").rstrip("0123456789-_")
        kinds[kind] = kinds.get(kind, 0.0) + cpu - before.get(tid, 0.0)
    n = max(count[0], 1)
    batcher = server.batcher
    server.close()
    batch_search._search_groups = stages
    parts = ", ".join(f"{k} {v / n * 1000:.1f}" for k, v in kinds.items() if v > 0)
    print(
        f"{label}: {count[0] / wall:.1f} requests/s, "
        f"{sum(kinds.values()) / n * 1000:.1f} ms CPU per request ({parts})"
    )
    if batcher is not None:
        print(
            f"  stages after the network {spent[0] / n * 1000:.1f} ms per request; "
            f"batches {batcher.batches}, mean {batcher.jobs / max(batcher.batches, 1):.1f} "
            f"images; {server.overlapping_batches} began beside another"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--index", type=Path, help="reuse this index (built here if missing)")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench"
    )
    parser.add_argument("--stub-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--upload", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stub_server:
        stub_server(args.index, args.stub_server, args.upload.read_bytes())
        return
    photo_folder = args.workdir / "serve-photos"
    photos = make_photo_folder(photo_folder, 240)[:40]
    index = args.index or args.workdir / "serve-load-10k.idx"
    if not (index / "manifest.json").exists():
        build_index(index, photo_folder)
    print(f"machine: {os.cpu_count()} cores; index {index.name}; {args.clients} clients")
    http_layer(index, photos, args.seconds)
    service_threads(index, photos, args.clients, args.seconds)


if __name__ == "__main__":
    main()
