"""What decoding the archive formats costs beside JPEG: for photos of 1-4 megapixels (made from
scikit-image's photos, benchmarks/_photos.py), each saved as JPEG (quality 90), HEIC (quality
90; without a thumbnail, and with a 320-pixel one as phones write), AVIF (quality 90), and DNG (a
12-bit Bayer mosaic) with a full-size JPEG preview and without one, the median time of
``imaging.open_image(path, min_side=SIDE)`` for each SIDE (256: what indexing decodes; 128: a
page thumbnail), measured side by side in one run, and each format's ratio to JPEG.

A DNG without preview is demosaiced at half size; one with a preview is read from it (JPEG
draft decoding applies to the preview too). Real cameras' RAWs are larger (20-60 MP) but read
the same way. The DNG and HEIC writers are the tests' (tests/archive_files.py).

Usage: python benchmarks/archive_decoding.py [--photos 8] [--sides 256,128] [--repeat 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _photos import make_photo_folder
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lookalike.imaging import open_image
from tests.archive_files import avif_bytes, heic_bytes, write_dng


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--sides", default="256,128")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lookalike-archive-bench-"))
    jpegs = make_photo_folder(work / "jpeg", args.photos)
    files: dict[str, list[Path]] = {"jpeg": jpegs, "heic": [], "heic+thumb320": [], "avif": []}
    files["dng+preview"] = []
    files["dng (demosaic)"] = []
    for path in jpegs:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        stem = work / path.stem
        stem.with_suffix(".heic").write_bytes(heic_bytes(pixels))
        files["heic"].append(stem.with_suffix(".heic"))
        thumbed = work / f"{path.stem}-t.heic"
        thumbed.write_bytes(heic_bytes(pixels, thumbnails=(320,)))
        files["heic+thumb320"].append(thumbed)
        stem.with_suffix(".avif").write_bytes(avif_bytes(pixels))
        files["avif"].append(stem.with_suffix(".avif"))
        side = max(pixels.shape[:2])
        files["dng+preview"].append(
            write_dng(work / f"{path.stem}-p.dng", pixels, preview_side=side)
        )
        files["dng (demosaic)"].append(write_dng(work / f"{path.stem}.dng", pixels))
    megapixels = [Image.open(p).size for p in jpegs]
    mean_mp = sum(w * h for w, h in megapixels) / len(megapixels) / 1e6
    print(f"{len(jpegs)} photos, {mean_mp:.1f} MP on average")
    for side in (int(s) for s in args.sides.split(",")):
        times: dict[str, list[float]] = {name: [] for name in files}
        for _ in range(args.repeat):
            for position in range(len(jpegs)):
                for name, paths in files.items():  # interleaved: the same load for each
                    started = time.perf_counter()
                    open_image(paths[position], min_side=side)
                    times[name].append((time.perf_counter() - started) * 1000)
        base = statistics.median(times["jpeg"])
        print(f"min_side={side}: {'format':<16} {'median ms':>10} {'x JPEG':>7}")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"{'':<13}{name:<16} {median:>10.1f} {median / base:>7.2f}")


if __name__ == "__main__":
    main()
