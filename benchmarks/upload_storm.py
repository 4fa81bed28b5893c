"""An upload storm against a real `lookalike serve`: N concurrent uploads of a 12000 x 12000 PNG
of zeros (a ~140 KB file declaring 144 megapixels), measuring the server's peak memory.

Reports, per server build, the increase of the server's resident memory during the storm (the
peak of VmRSS sampled from /proc every 10 ms, and VmHWM), its CPU seconds, its peak thread
count, the answers' status codes, and whether /api/health still answers afterwards.

`--before REV` runs the same storm against the code of a git revision too (its `src` exported
with `git archive`), in the same run: the before/after comparison. A server whose memory passes
`--rss-cap-mb` is killed (the figure is then a lower bound), so a storm cannot take the machine.

Usage: python benchmarks/upload_storm.py [--clients 50] [--before main] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from PIL import Image

from lookalike import SearchEngine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers import free_port, multipart

REPO = Path(__file__).resolve().parents[1]


def zeros_png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (side, side)).save(buffer, format="PNG", optimize=False, compress_level=9)
    return buffer.getvalue()


def status_kb(pid: int) -> dict[str, int]:
    fields = {}
    with Path(f"/proc/{pid}/status").open() as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                fields[key] = int(value.split()[0])
    return fields


def cpu_seconds(pid: int) -> float:
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def export_src(rev: str, target: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", rev, "src"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target / "src"


def start_server(src: Path, index: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(src)}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lookalike",
                "serve",
                "--index",
                str(index),
                "--port",
                str(port),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if healthy(port):
            return process, port
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"server did not start:\n{log.read_text()}")


def healthy(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/api/health")
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False


def storm(name: str, src: Path, index: Path, body: bytes, args: argparse.Namespace) -> None:
    process, port = start_server(src, index, args.workdir / f"server-{name}.log")
    pid = process.pid
    time.sleep(1.0)
    before = status_kb(pid)
    cpu_before = cpu_seconds(pid)
    payload, content_type = multipart("image", "zeros.png", body)
    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    peak = {"rss": before["VmRSS"], "threads": before["Threads"]}
    done = threading.Event()
    killed = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                now = status_kb(pid)
            except OSError:
                return
            peak["rss"] = max(peak["rss"], now["VmRSS"])
            peak["threads"] = max(peak["threads"], now["Threads"])
            if now["VmRSS"] > args.rss_cap_mb * 1024:
                process.kill()
                killed.set()
                return
            time.sleep(0.01)

    def upload() -> None:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=args.timeout)
            connection.request(
                "POST", "/api/search?k=5", body=payload, headers={"Content-Type": content_type}
            )
            response = connection.getresponse()
            response.read()
            result = str(response.status)
            connection.close()
        except Exception as exc:
            result = type(exc).__name__
        with lock:
            statuses[result] += 1

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    clients = [threading.Thread(target=upload) for _ in range(args.clients)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    alive = process.poll() is None
    after = status_kb(pid) if alive else {}
    cpu = cpu_seconds(pid) - cpu_before if alive else float("nan")
    ok_after = alive and healthy(port)
    increase = (peak["rss"] - before["VmRSS"]) / 1024
    bound = " (killed at the cap: a lower bound)" if killed.is_set() else ""
    print(f"[{name}] {args.clients} concurrent uploads of a {len(body) / 1024:.0f} KB PNG:")
    print(f"  answers: {dict(sorted(statuses.items()))} in {seconds:.1f} s")
    print(f"  server RSS before {before['VmRSS'] / 1024:.0f} MB, peak {peak['rss'] / 1024:.0f} MB")
    print(f"  peak RSS increase: {increase:.0f} MB{bound}")
    if after:
        print(f"  VmHWM {after['VmHWM'] / 1024:.0f} MB; CPU {cpu:.1f} s")
    print(f"  peak threads {peak['threads']}; healthy after: {ok_after}")
    if alive:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--side", type=int, default=12_000)
    parser.add_argument("--before", help="a git revision to measure too (e.g. main)")
    parser.add_argument("--rss-cap-mb", type=int, default=4000)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-storm"
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    photos = args.workdir / "photos"
    if not photos.exists():
        from lookalike.evaluation.copies import skimage_originals

        photos.mkdir()
        for name, image in skimage_originals():
            image.save(photos / f"{name}.jpg", quality=90)
    index = args.workdir / "storm.idx"
    if not (index / "manifest.json").exists():
        with SearchEngine.create(index, embedder="pixels") as engine:
            engine.index_folder(photos)
    body = zeros_png(args.side)

    runs: list[tuple[str, Path]] = []
    if args.before:
        runs.append((f"before: {args.before}", export_src(args.before, args.workdir / "before")))
    runs.append(("after: this tree", REPO / "src"))
    for name, src in runs:
        storm(name, src, index, body, args)


if __name__ == "__main__":
    main()
