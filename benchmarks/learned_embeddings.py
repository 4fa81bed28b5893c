"""Learned embeddings against the pretrained network and the classical baselines.

Fashion-MNIST: the autoencoder, the bag of visual words and the triplet head are trained on the
train split only (the triplet head's held-out images also come from the train split); every
embedder is then evaluated with lookalike's evaluation code on the 10,000 test images, each a
query against the other 9,999. No test image or test label is seen in training.

Colour photos: scikit-image's colour photos, one class per photo. Training folder: edited copies
(crop, rotation, colour jitter, JPEG, border with text; seeds 1-5) without the originals. Test
folder: the originals and nine edited copies of each (seed 7, with three edits never seen in
training: mirror, greyscale, 4x downscale), each image a query against the others.

Unseen classes (benchmarks/unseen_classes.py, run after Fashion-MNIST): does a triplet head
trained on 7 Fashion-MNIST classes help on the 3 it never saw, beside the base network and a
head trained on all 10?

Usage: python benchmarks/learned_embeddings.py [--work DIR] [--threads 1] [--skip-unseen]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import unseen_classes
from _triplet import fashion_head, fit_head

from lookalike.cache import cache_dir
from lookalike.embedders.base import InputSpec
from lookalike.embedders.bovw import BagOfVisualWords
from lookalike.embedders.pretrained import EfficientNetLite
from lookalike.evaluation.copies import make_copy_set, skimage_originals
from lookalike.evaluation.datasets import Dataset, fashion_mnist, labelled_folder
from lookalike.evaluation.runner import EvalOptions, evaluate, slug
from lookalike.training.autoencoder import ConvAutoencoder
from lookalike.training.data import decode_images, image_folder, labelled_features
from lookalike.training.triplet import TripletHead

TRAIN_EDITS = ("crop60", "rotate15", "colour", "jpeg15", "border_text")


def train_all(
    unlabelled: Path,
    labelled: Path,
    models: Path,
    *,
    ae: ConvAutoencoder,
    bovw: BagOfVisualWords,
    head: TripletHead,
    reuse: bool = False,
) -> dict[str, float]:
    """Train the three models (or keep those already in ``models`` when ``reuse``); return the
    seconds each step took (decoding and base features included)."""
    seconds: dict[str, float] = {}
    if reuse and all((models / kind).is_dir() for kind in ("autoencoder", "bovw", "triplet")):
        print("  reusing the trained models", flush=True)
        return seconds
    started = time.perf_counter()
    pixels = decode_images(image_folder(unlabelled).paths, InputSpec(ae.image_size, 1.0)).pixels
    ae.fit(pixels).save(models / "autoencoder")
    seconds["autoencoder"] = time.perf_counter() - started
    print(f"  autoencoder: {len(ae.history_)} epochs, best {ae.best_epoch_}", flush=True)

    started = time.perf_counter()
    pixels = decode_images(image_folder(unlabelled).paths, bovw.input_spec).pixels
    bovw.fit(pixels).save(models / "bovw")
    seconds["bovw"] = time.perf_counter() - started
    print("  bovw: done", flush=True)

    started = time.perf_counter()
    base = EfficientNetLite("efficientnet-lite0")
    data = labelled_features(labelled, base, cache=cache_dir() / "features")
    fit_head(head, data.features, data.labels)
    head.save(models / "triplet", base="efficientnet-lite0", base_digest=base.weights_digest)
    seconds["triplet"] = time.perf_counter() - started
    print(
        f"  triplet: held-out mAP {head.base_map_:.3f} -> {head.map_:.3f} "
        f"(best epoch {head.best_epoch_})",
        flush=True,
    )
    return seconds


def table(dataset: Dataset, models: Path, work: Path, seconds: dict[str, float]) -> list[str]:
    names = {
        "raw pixels (32x32 RGB)": "pixels",
        "colour histogram": "colour-histogram",
        "bag of visual words (ORB, 256 words)": str(models / "bovw"),
        "convolutional autoencoder": str(models / "autoencoder"),
        "EfficientNet-Lite0 (ImageNet)": "lite0",
        "triplet head on Lite0": str(models / "triplet"),
    }
    results = evaluate(dataset, list(names.values()), work, options=EvalOptions(workers=None))
    kinds = {str(models / k): k for k in ("bovw", "autoencoder", "triplet")}
    rows = [
        "| embedder | dim | mAP | P@1 | P@10 | fit s (whole step) | index img/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for (label, name), result in zip(names.items(), results, strict=True):
        s = result.scores
        kind = kinds.get(name)
        fit = json.loads((Path(name) / "lookalike-model.json").read_text()) if kind else {}
        step = f" ({seconds[kind]:.0f})" if kind in seconds else ""
        trained = f"{fit['train_seconds']:.0f}{step}" if kind else "-"
        manifest = work / "indexes" / slug(name) / "manifest.json"
        dim = json.loads(manifest.read_text())["dim"]
        rows.append(
            f"| {label} | {dim} | {s.map:.3f} | {s.precision_at_1:.3f} | "
            f"{s.precision_at_10:.3f} | {trained} | "
            f"{result.images_per_second:.0f} |"
        )
    return rows


def fashion(
    work: Path,
    threads: int | None,
    ae_images: int,
    triplet_images: int,
    test_limit: int | None,
    reuse: bool,
) -> list[str]:
    unlabelled = fashion_mnist(work / "ae-data", split="train", limit=ae_images).root
    labelled = fashion_mnist(work / "triplet-data", split="train", limit=triplet_images).root
    seconds = train_all(
        unlabelled,
        labelled,
        work / "models",
        ae=ConvAutoencoder(image_size=32, latent_dim=128, width=16, epochs=8, threads=threads),
        bovw=BagOfVisualWords(
            words=256, image_size=128, grid_step=8, keypoints=200, max_images=5000
        ),
        head=fashion_head(threads),
        reuse=reuse,
    )
    test = fashion_mnist(work / "test-data", split="test", limit=test_limit)
    return table(test, work / "models", work, seconds)


def colour_photos(work: Path, threads: int | None, reuse: bool) -> list[str]:
    originals = skimage_originals()
    train_root, test_root = work / "train", work / "test"
    for seed in range(1, 6):
        copies = make_copy_set(originals, work / f"copies-{seed}", seed=seed, edits=TRAIN_EDITS)
        for pair in copies.copies:
            target = train_root / pair.original.stem / f"{seed}-{pair.copy.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(pair.copy, target)
    test = make_copy_set(originals, work / "copies-test", seed=7)
    for path in test.originals:
        (test_root / path.stem).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, test_root / path.stem / path.name)
    for pair in test.copies:
        shutil.copyfile(pair.copy, test_root / pair.original.stem / pair.copy.name)
    seconds = train_all(
        train_root,
        train_root,
        work / "models",
        ae=ConvAutoencoder(
            image_size=64,
            latent_dim=128,
            width=16,
            epochs=30,
            patience=5,
            batch_size=32,
            threads=threads,
        ),
        bovw=BagOfVisualWords(words=256),
        head=TripletHead(
            dim=256,
            hidden=(1024,),
            epochs=30,
            classes_per_batch=8,
            images_per_class=8,
            threads=threads,
        ),
        reuse=reuse,
    )
    return table(labelled_folder(test_root), work / "models", work, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/lookalike-learned-embeddings"))
    parser.add_argument("--threads", type=int, default=1, help="PyTorch training threads")
    parser.add_argument("--ae-images", type=int, default=20_000)
    parser.add_argument("--triplet-images", type=int, default=10_000)
    parser.add_argument("--test-limit", type=int, default=None, help="for a quick trial run")
    parser.add_argument("--skip-fashion", action="store_true")
    parser.add_argument("--skip-unseen", action="store_true", help="no unseen-classes run")
    parser.add_argument(
        "--reuse-models", action="store_true", help="evaluate models a previous run left in --work"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    if not args.skip_fashion:
        print("Fashion-MNIST: training on the train split", flush=True)
        rows = fashion(
            args.work / "fashion",
            args.threads,
            args.ae_images,
            args.triplet_images,
            args.test_limit,
            args.reuse_models,
        )
        print("\n".join(rows), flush=True)
        print(f"({time.perf_counter() - started:.0f} s so far)\n", flush=True)
    if not args.skip_unseen:
        print("Fashion-MNIST: a head trained on 7 classes, scored on the 3 others", flush=True)
        print("\n".join(unseen_classes.run(args.work / "unseen", threads=args.threads)))
        print(f"({time.perf_counter() - started:.0f} s so far)\n", flush=True)
    print("Colour photos: training on edited copies", flush=True)
    rows = colour_photos(args.work / "colour", args.threads, args.reuse_models)
    print("\n".join(rows))
    print(f"\nTotal: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
