"""Calibrating the duplicate tiers: real photos and their copies of every tier among real
distractors, embedded with the default network; thresholds chosen on one half of the photos
(and of the distractors), precision and recall reported on the other half, beside the old
single-threshold grouping (cosine 0.75) in the same run.

Originals: scikit-image's colour photos and every other wallpaper photo (Debian wallpaper and
background packages), long side 1,024 px; each gets the variants of
lookalike.evaluation.duplicate_set (identical, 3 same-picture, 7 edited, 1 similar shot).
Distractors (>= 2,000): the other wallpapers, tuxpaint stamps, Fashion-MNIST test images
(upscaled to 224 px), scikit-image's greyscale photos and LFW faces.

Usage: python benchmarks/duplicate_tiers.py [--workdir DIR] [--seed 0] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from dev_sets import PHOTO_DIRS, STAMPS_DIR, _load, wallpaper_photos
from PIL import Image

from lookalike import SearchEngine
from lookalike.catalog_records import ImageRecord
from lookalike.duplicates.finder import DEFAULT_TIERS, TierThresholds, find_duplicates
from lookalike.duplicates.perceptual import hamming
from lookalike.duplicates.report import DuplicateOptions, DuplicateReport, Tier
from lookalike.duplicates.stored_hashes import StoredPerceptualHashes
from lookalike.evaluation.copies import skimage_originals
from lookalike.evaluation.datasets import FASHION_MNIST_DIR, read_idx
from lookalike.evaluation.duplicate_set import VARIANT_TIERS, make_duplicate_set
from lookalike.grouping import group_duplicates, pair_precision_recall
from lookalike.store import IndexStore

FASHION_COUNT = 1000
ORIGINAL_WALLPAPERS = 40
#: The precision the chosen thresholds must reach on the calibration half (a margin above
#: the 99 % promised on unseen data).
CALIBRATION_PRECISION = 0.995


def distractor_files(staging: Path) -> list[Path]:
    """Real images unrelated to the originals, written under ``staging`` where they need
    converting (Fashion-MNIST, scikit-image), the stamps as they are."""
    import skimage.data

    staging.mkdir(parents=True, exist_ok=True)
    files = sorted(STAMPS_DIR.rglob("*.png")) if STAMPS_DIR.is_dir() else []
    images = read_idx(FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz")[:FASHION_COUNT]
    for number, pixels in enumerate(images):
        path = staging / f"fmnist{number:05d}.png"
        if not path.exists():
            Image.fromarray(pixels).resize((224, 224), Image.Resampling.BICUBIC).save(path)
        files.append(path)
    for name in ("camera", "coins", "moon", "page", "text", "clock", "brick", "grass", "gravel"):
        path = staging / f"{name}.jpg"
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(path, quality=92)
        files.append(path)
    for number, face in enumerate(skimage.data.lfw_subset()):
        path = staging / f"face{number:03d}.jpg"
        pixels = np.clip(face * 255.0, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).resize((100, 100), Image.Resampling.BICUBIC).save(path, quality=92)
        files.append(path)
    return files


def source_of(path: str) -> str:
    name = Path(path).name.split("-", 1)[-1]
    for prefix, source in (
        ("fmnist", "fashion-mnist"),
        ("face", "lfw-face"),
        ("wall", "wallpaper"),
    ):
        if name.startswith(prefix):
            return source
    return "stamp" if name.endswith(".png") else "skimage-grey"


@dataclass(frozen=True)
class Item:
    """What one indexed image is: its family (None: a distractor), variant and split."""

    family: str | None
    variant: str
    source: str
    held_out: bool


def truth_tier(a: Item, b: Item) -> Tier | None:
    """The tier a pair truly is (None: not a duplicate): the weaker of the two members'
    tiers relative to their original."""
    if a.family is None or a.family != b.family:
        return None
    ranks = [0 if i.variant == "original" else VARIANT_TIERS[i.variant].rank for i in (a, b)]
    return list(Tier)[max(ranks)]


def subset(
    ids: npt.NDArray[np.int64],
    vectors: npt.NDArray[np.float32],
    items: dict[int, Item],
    *,
    held_out: bool,
    similar: bool,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    keep = np.array(
        [
            items[i].held_out == held_out and (similar or items[i].variant != "shot")
            for i in ids.tolist()
        ]
    )
    return ids[keep], vectors[keep]


def group_scores(
    groups: Sequence[Sequence[int]], items: dict[int, Item], ids: npt.NDArray[np.int64]
) -> tuple[float, float]:
    truth = {i: items[i].family for i in ids.tolist() if items[i].family is not None}
    return pair_precision_recall(groups, {k: v for k, v in truth.items() if v is not None})


def pair_table(
    report: DuplicateReport, items: dict[int, Item], in_run: set[int]
) -> dict[str, dict[str, float]]:
    """Per tier: pairs labelled with it, how many are truly that tier (precision), and the
    recall of original-member pairs of that tier (the pair reported, with that tier)."""
    labelled: Counter[Tier] = Counter()
    right: Counter[Tier] = Counter()
    direct: dict[tuple[int, int], Tier] = {}
    for group in report.groups:
        for pair in group.pairs:
            labelled[pair.tier] += 1
            right[pair.tier] += truth_tier(items[pair.first], items[pair.second]) == pair.tier
            direct[(pair.first, pair.second)] = pair.tier
    grouped = {i: n for n, g in enumerate(report.groups) for i in g.ids}
    originals = {it.family: i for i, it in items.items() if it.variant == "original"}
    wanted: Counter[Tier] = Counter()
    tiered: Counter[Tier] = Counter()
    found: Counter[Tier] = Counter()
    for image_id, item in items.items():
        if item.family is None or item.variant == "original" or image_id not in in_run:
            continue
        tier = VARIANT_TIERS[item.variant]
        original = originals[item.family]
        wanted[tier] += 1
        key = (min(original, image_id), max(original, image_id))
        tiered[tier] += direct.get(key) == tier
        found[tier] += grouped.get(original, -1) == grouped.get(image_id, -2)
    table = {}
    for tier in Tier:
        table[tier.value] = {
            "labelled": labelled[tier],
            "precision": right[tier] / labelled[tier] if labelled[tier] else 1.0,
            "pairs_with_original": wanted[tier],
            "recall_same_tier": tiered[tier] / wanted[tier] if wanted[tier] else 1.0,
            "recall_grouped": found[tier] / wanted[tier] if wanted[tier] else 1.0,
        }
    return table


def run(
    ids: npt.NDArray[np.int64],
    vectors: npt.NDArray[np.float32],
    records: dict[int, ImageRecord],
    lookup: StoredPerceptualHashes,
    tiers: TierThresholds,
    *,
    include_similar: bool = False,
    threshold: float | None = None,
) -> DuplicateReport:
    options = DuplicateOptions(include_similar=include_similar, threshold=threshold)
    return find_duplicates(ids, vectors, records, options, phashes=lookup, tiers=tiers)


def calibrate(
    ids: npt.NDArray[np.int64],
    vectors: npt.NDArray[np.float32],
    records: dict[int, ImageRecord],
    items: dict[int, Item],
    lookup: StoredPerceptualHashes,
) -> tuple[TierThresholds, list[str]]:
    """Thresholds from the calibration half (see the README for the rule of each)."""
    notes: list[str] = []
    copy_ids, copy_vectors = subset(ids, vectors, items, held_out=False, similar=False)
    # Candidate pairs, scored once: cosine, Hamming distance, truth.
    probe = run(copy_ids, copy_vectors, records, lookup, DEFAULT_TIERS, threshold=0.5)
    pairs = [p for g in probe.groups for p in g.pairs]
    known = lookup([i for p in pairs for i in (p.first, p.second)])
    cos = np.array([p.score for p in pairs])
    bits = np.array(
        [
            int(hamming(known[p.first], known[p.second]))
            if p.first in known and p.second in known
            else 64
            for p in pairs
        ]
    )
    truth = [truth_tier(items[p.first], items[p.second]) for p in pairs]
    same = np.array([t == Tier.SAME_PICTURE for t in truth])
    identical = np.array([t == Tier.IDENTICAL for t in truth])
    # Edited copy: the lowest cosine whose grouping reaches the precision on this half.
    edited = 0.99
    for t in np.arange(0.60, 0.99, 0.005):
        groups = [
            g.ids
            for g in run(
                copy_ids, copy_vectors, records, lookup, DEFAULT_TIERS, threshold=float(t)
            ).groups
        ]
        precision, recall = group_scores(groups, items, copy_ids)
        if precision >= CALIBRATION_PRECISION:
            edited = round(float(t), 3)
            notes.append(
                f"edited_copy {edited}: calibration precision {precision:.4f}, recall {recall:.4f}"
            )
            break
    # Same picture: the bits and cosine that label the most same-picture pairs with a
    # precision of 1 among the candidate pairs of this half (ties: fewer bits, higher cosine).
    best = (-1.0, 0, 1.0)
    for b in range(0, 25):
        for c in np.arange(0.80, 0.995, 0.005):
            chosen = (bits <= b) & (cos >= c) & ~identical
            if not chosen.any() or same[chosen].mean() < 1.0:
                continue
            score = float(same[chosen].sum())
            if score > best[0]:
                best = (score, b, round(float(c), 3))
    _, sp_bits, sp_cos = best
    notes.append(
        f"same_picture bits <= {sp_bits}, cosine >= {sp_cos}: {int(best[0])} of "
        f"{int(same.sum())} same-picture candidate pairs, no other pair"
    )
    # Same picture without hashes: the lowest cosine above which every non-identical pair
    # is a same picture.
    others = ~same & ~identical
    alone = round(float(max(cos[others].max(initial=0.0) + 0.005, sp_cos)), 3)
    notes.append(f"same_picture_alone {alone}: above the highest other pair's cosine")
    # Similar shot: the lowest cosine at which the grouping with shots still reaches 95 %.
    shot_ids, shot_vectors = subset(ids, vectors, items, held_out=False, similar=True)
    similar = edited
    for t in np.arange(edited, 0.40, -0.01):
        tiers = TierThresholds(sp_cos, sp_bits, alone, edited, float(t))
        groups = [
            g.ids
            for g in run(
                shot_ids, shot_vectors, records, lookup, tiers, include_similar=True
            ).groups
        ]
        precision, recall = group_scores(groups, items, shot_ids)
        if precision < 0.95:
            break
        similar = round(float(t), 3)
    notes.append(f"similar_shot {similar}: lowest cosine keeping 95 % precision with shots")
    return TierThresholds(sp_cos, sp_bits, alone, edited, similar), notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-tiers"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    work: Path = args.workdir
    photos = wallpaper_photos(PHOTO_DIRS)
    chosen = set(range(0, len(photos), 2)[:ORIGINAL_WALLPAPERS])
    set_dir, index_dir = work / "set", work / "index"
    if not index_dir.exists():
        shutil.rmtree(set_dir, ignore_errors=True)
        originals = list(skimage_originals())
        staging = work / "staging"
        staging.mkdir(parents=True, exist_ok=True)
        extra: list[Path] = []
        for number, path in enumerate(photos):
            image = _load(path, 1024)
            if number in chosen:
                originals.append((f"wall{number:03d}", image))
            else:
                target = staging / f"wall{number:03d}.jpg"
                image.save(target, quality=92)
                extra.append(target)
        made = make_duplicate_set(
            originals, extra + distractor_files(staging), set_dir, seed=args.seed
        )
        start = time.perf_counter()
        with SearchEngine.create(index_dir) as engine:
            report = engine.index_folder(set_dir)
        print(
            f"indexed {report.added} images ({len(made.families)} families, "
            f"{len(made.distractors)} distractors) in {time.perf_counter() - start:.0f} s"
        )
    store = IndexStore.open(index_dir)
    records = {r.id: r for r in store.catalog.all_records()}
    ids, vectors = store.load_vectors()
    rng = np.random.default_rng(args.seed)
    families = sorted(
        {Path(r.path).parent.name for r in records.values() if "/families/" in r.path}
    )
    held = set(rng.permutation(families)[: len(families) // 2].tolist())
    flips = rng.random(len(ids)) < 0.5
    items: dict[int, Item] = {}
    for row, image_id in enumerate(ids.tolist()):
        path = records[image_id].path
        if "/families/" in path:
            family = Path(path).parent.name
            stem = Path(path).stem
            variant = stem.split("__", 1)[1] if "__" in stem else "original"
            items[image_id] = Item(family, variant, "family", family in held)
        else:
            items[image_id] = Item(None, "distractor", source_of(path), bool(flips[row]))
    lookup = StoredPerceptualHashes(store, records)
    stored = len(lookup(ids.tolist()))
    print(
        f"{len(ids)} images: {sum(1 for i in items.values() if i.family)} in {len(families)} "
        f"families ({len(held)} held out), {sum(1 for i in items.values() if not i.family)} "
        f"distractors; perceptual hashes stored at index time: {stored - lookup.computed}, "
        f"computed lazily: {lookup.computed}"
    )
    tiers, notes = calibrate(ids, vectors, records, items, lookup)
    print("calibration half:")
    for note in notes:
        print("  " + note)
    print(f"chosen: {asdict(tiers)}")

    results: dict[str, object] = {"tiers": asdict(tiers), "notes": notes}
    for name, held_out in (("calibration", False), ("held-out", True)):
        copy_ids, copy_vectors = subset(ids, vectors, items, held_out=held_out, similar=False)
        start = time.perf_counter()
        report = run(copy_ids, copy_vectors, records, lookup, tiers)
        seconds = time.perf_counter() - start
        precision, recall = group_scores([g.ids for g in report.groups], items, copy_ids)
        old = group_duplicates(copy_ids, copy_vectors, threshold=0.75)
        old_p, old_r = group_scores([g.ids for g in old], items, copy_ids)
        table = pair_table(report, items, set(copy_ids.tolist()))
        false = Counter(
            items[i].source
            for g in report.groups
            for p in g.pairs
            if truth_tier(items[p.first], items[p.second]) is None
            for i in (p.first, p.second)
        )
        shot_ids, shot_vectors = subset(ids, vectors, items, held_out=held_out, similar=True)
        with_shots = run(shot_ids, shot_vectors, records, lookup, tiers, include_similar=True)
        shots = pair_table(with_shots, items, set(shot_ids.tolist()))[Tier.SIMILAR_SHOT.value]
        sp, sr = group_scores([g.ids for g in with_shots.groups], items, shot_ids)
        print(f"\n{name} half: {len(copy_ids)} images (similar shots left out)")
        print(
            f"  tiers (default):      copy pairs precision {precision:.4f}, "
            f"recall {recall:.4f} ({seconds:.2f} s)"
        )
        print(f"  single cosine 0.75:   copy pairs precision {old_p:.4f}, recall {old_r:.4f}")
        print(
            "  per tier: labelled, precision, recall (pair with its original, that tier / grouped)"
        )
        for tier_name, row in table.items():
            print(
                f"    {tier_name:13s} {row['labelled']:5.0f} {row['precision']:.3f}   "
                f"{row['recall_same_tier']:.3f} / {row['recall_grouped']:.3f} "
                f"of {row['pairs_with_original']:.0f}"
            )
        print(f"  false pairs' images by source: {dict(false)}")
        print(
            f"  --include-similar (shots added): precision {sp:.4f}, recall {sr:.4f}; "
            f"shots grouped with their original {shots['recall_grouped']:.3f}, "
            f"labelled similar-shot {shots['recall_same_tier']:.3f}"
        )
        results[name] = {
            "tiers": {"precision": precision, "recall": recall},
            "single_0.75": {"precision": old_p, "recall": old_r},
            "per_tier": table,
            "false_sources": dict(false),
            "include_similar": {"precision": sp, "recall": sr, "shots": shots},
        }
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
