"""Indexing a shop's product feed from a local HTTP server, beside indexing the same files
from disk, measured in one run:

1. a feed of ROWS products (1 or 2 real 1-4 MP JPEGs each, made from scikit-image photos and
   the system's wallpapers with seeded edits), 5 % of the rows faulty (404, an HTML page under
   a .jpg URL, a truncated JPEG, an ftp: URL, a refused connection, an empty image cell),
   served by a threaded http.server on 127.0.0.1: end-to-end rows/s and images/s of
   `SearchEngine.index_feed` (download, decode, embed, commit as one pipeline);
2. the same good images indexed from disk (`index_folder`): images/s; the target is
   feed >= 90 % of disk;
3. checks: every faulty row reported with its reason, no good row lost;
4. a second, unchanged run of the feed: rows/s (target >= 2,000) and what it fetched.

Each round also gives the CPU time per image of disk and feed (this process and its decode
workers; the server's apart): on a loaded machine a steadier figure than images/s.

Times are wall times of the whole call (the feed read included). Usage:
python benchmarks/feed_indexing.py [--rows 2000] [--embedder lite0] [--rounds 2] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lookalike import SearchEngine
from lookalike.evaluation.copies import skimage_originals
from tests.helpers import free_port
from tests.shop import shop_process, write_csv_feed

WALLPAPER_FOLDERS = (Path("/usr/share/wallpapers"), Path("/usr/share/backgrounds"))
FAULTS = ("404", "html", "truncated", "ftp", "refused", "empty")
EXPECTED_REASON = {
    "404": "http-status",
    "html": "not-an-image",
    "truncated": "decode-error",
    "ftp": "bad-url",
    "refused": "connection",
    "empty": "no-image",
}


def bases(side: int = 2400) -> list[Image.Image]:
    """scikit-image's colour photos and the system's wallpapers, at most ``side`` px."""
    images = [image for _, image in skimage_originals()]
    found = sorted(
        p
        for folder in WALLPAPER_FOLDERS
        if folder.is_dir()
        for p in folder.rglob("*")
        if p.suffix.lower() in (".jpg", ".jpeg", ".png") and "screenshot" not in p.name
    )
    for path in found[:24]:
        with Image.open(path) as image:
            image.draft("RGB", (side, side))
            picture = image.convert("RGB")
        picture.thumbnail((side, side))
        images.append(picture)
    return images


def make_photos(folder: Path, count: int, seed: int) -> list[Path]:
    """``count`` JPEGs of 1 to 4 MP: a seeded crop (60-100 %) of a base, colour changed."""
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob("*.jpg"))
    if len(existing) >= count:
        return existing[:count]
    rng = np.random.default_rng(seed)
    sources = bases()
    paths = []
    for i in range(count):
        base = sources[i % len(sources)]
        fraction = rng.uniform(0.6, 1.0)
        w, h = int(base.width * fraction), int(base.height * fraction)
        x = int(rng.integers(0, base.width - w + 1))
        y = int(rng.integers(0, base.height - h + 1))
        crop = ImageEnhance.Color(base.crop((x, y, x + w, y + h))).enhance(rng.uniform(0.7, 1.3))
        scale = (rng.uniform(1.0, 4.0) * 1e6 / (w * h)) ** 0.5
        photo = crop.resize((int(w * scale), int(h * scale)), Image.Resampling.BICUBIC)
        path = folder / f"photo{i:05d}.jpg"
        photo.save(path, quality=90)
        paths.append(path)
    return paths


def make_feed(
    root: Path, base_url: str, rows: int, photos: list[Path]
) -> tuple[list[dict[str, object]], dict[str, str]]:
    """Rows with 1 or 2 images (seeded); every 20th row faulty. Returns rows and the faulty
    row ids with the failure each should report."""
    rng = np.random.default_rng(1)
    bad = root / "www" / "bad"
    bad.mkdir(parents=True, exist_ok=True)
    (bad / "page.jpg").write_text("<html><body>gone</body></html>", encoding="utf-8")
    data = photos[0].read_bytes()
    (bad / "cut.jpg").write_bytes(data[: len(data) // 4])
    refused = f"http://127.0.0.1:{free_port()}/x.jpg"
    urls = {
        "404": f"{base_url}/bad/none.jpg",
        "html": f"{base_url}/bad/page.jpg",
        "truncated": f"{base_url}/bad/cut.jpg",
        "ftp": "ftp://127.0.0.1/x.jpg",
        "refused": refused,
        "empty": "",
    }
    feed: list[dict[str, object]] = []
    faulty: dict[str, str] = {}
    used = 0
    for i in range(rows):
        product = f"SKU{i:05d}"
        row: dict[str, object] = {
            "sku": product,
            "title": f"product {i}",
            "price": round(float(rng.uniform(5, 120)), 2),
        }
        if i % 20 == 19:
            kind = FAULTS[(i // 20) % len(FAULTS)]
            row["images"] = urls[kind]
            faulty[product] = EXPECTED_REASON[kind]
        else:
            n = 1 + int(rng.random() < 0.5)
            row["images"] = [f"{base_url}/img/{p.name}" for p in photos[used : used + n]]
            used += n
        feed.append(row)
    return feed, faulty


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the decode workers of a call
    that returned), user + system: less hostage to other load than wall time."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--embedder", default="lite0")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=2, help="disk and feed alternated")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="feed-bench-"))
    www = work / "www"
    photos = make_photos(www / "img", int(args.rows * 1.6), seed=0)
    with shop_process(www) as shop:
        rows, faulty = make_feed(work, shop.base, args.rows, photos)
        good = [r for r in rows if r["sku"] not in faulty]
        used = sorted({str(u).rsplit("/", 1)[1] for r in good for u in r["images"]})  # type: ignore[attr-defined]
        disk_folder = work / "disk"
        shutil.rmtree(disk_folder, ignore_errors=True)
        disk_folder.mkdir()
        for name in used:
            (disk_folder / name).hardlink_to(www / "img" / name)
        feed = write_csv_feed(work / "products.csv", rows)
        images = len(used)

        rounds = []
        for _ in range(args.rounds):  # alternated, so that a change of load hits both alike
            for stale in ("disk.idx", "feed.idx"):
                shutil.rmtree(work / stale, ignore_errors=True)
            with SearchEngine.create(work / "disk.idx", embedder=args.embedder) as engine:
                cpu, started = cpu_seconds(), time.perf_counter()
                disk = engine.index_folder(disk_folder)
                disk_seconds = time.perf_counter() - started
                disk_cpu = cpu_seconds() - cpu
            with SearchEngine.create(work / "feed.idx", embedder=args.embedder) as engine:
                served = shop.cpu_seconds()
                cpu, started = cpu_seconds(), time.perf_counter()
                first = engine.index_feed(feed)  # reading the feed included
                feed_seconds = time.perf_counter() - started
                feed_cpu = cpu_seconds() - cpu
                served = shop.cpu_seconds() - served
            rounds.append(
                {
                    "disk_images_per_s": round(disk.embedded / disk_seconds, 2),
                    "feed_images_per_s": round(first.embedded / feed_seconds, 2),
                    "feed_rows_per_s": round(first.rows / feed_seconds, 2),
                    "feed_vs_disk": round(disk_seconds / feed_seconds, 3),
                    "server_cpu_seconds": round(served, 2),
                    "disk_cpu_ms_per_image": round(1e3 * disk_cpu / disk.embedded, 1),
                    "feed_cpu_ms_per_image": round(1e3 * feed_cpu / first.embedded, 1),
                    "feed_seconds": round(feed_seconds, 2),
                }
            )
        with SearchEngine.open(work / "feed.idx", writable=True) as engine:
            reported = {f.product: f.reason for f in first.failures}
            held = {str(engine.record(i)[1]["sku"]) for i in engine.vector_index().ids.tolist()}
            count = len(engine)
            before = len(shop.requested())
            started = time.perf_counter()
            second = engine.index_feed(feed)
            second_seconds = time.perf_counter() - started
            fetched_again = shop.requested()[before:]

    summary = {
        "rows": args.rows,
        "images": images,
        "embedder": args.embedder,
        "rounds": rounds,
        "faulty_rows": len(faulty),
        "faulty_reported_right": reported == faulty,
        "faulty_reported_wrong": {
            p: [faulty.get(p), reported.get(p)]
            for p in sorted(set(faulty) | set(reported))
            if faulty.get(p) != reported.get(p)
        },
        "good_rows_lost": len({str(r["sku"]) for r in good} - held),
        "index_count": count,
        "second_run_rows_per_s": round(second.rows / second_seconds, 1),
        "second_run_seconds": round(second_seconds, 3),
        "second_run_embedded": second.embedded,
        "second_run_requests": len(fetched_again),
        "second_run_requests_for_good_rows": sum("/img/" in p for p in fetched_again),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
