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
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
from dev_sets import PHOTO_DIRS, STAMPS_DIR, _load, wallpaper_photos
from PIL import Image

from lookalike import SearchEngine
from lookalike.catalog_records import ImageRecord
from lookalike.duplicates.finder import (
    DEFAULT_TIERS,
    TierThresholds,
    background_similarity,
    find_duplicates,
    near_identical_clusters,
)
from lookalike.duplicates.perceptual import hamming
from lookalike.duplicates.report import DuplicateOptions, DuplicateReport, Tier
from lookalike.duplicates.stored_hashes import StoredPerceptualHashes
from lookalike.evaluation.copies import skimage_originals
from lookalike.evaluation.datasets import FASHION_MNIST_DIR, read_idx
from lookalike.evaluation.duplicate_set import VARIANT_TIERS, make_duplicate_set
from lookalike.grouping import (
    group_duplicates,
    nearest_neighbours,
    pair_precision_recall,
    pairs_of,
)
from lookalike.query.geometry import GeometricVerifier, PairGeometry, SimilarityAcceptance
from lookalike.store import IndexStore

FASHION_COUNT = 1000
ORIGINAL_WALLPAPERS = 40
#: The precision the chosen thresholds must reach on the calibration half (a margin above
#: the 99 % promised on unseen data).
CALIBRATION_PRECISION = 0.995
#: Same pictures and light edits (colour, heavy JPEG) share their perceptual hash; the
#: same-picture tier is chosen for this precision among duplicate pairs.
SAME_PICTURE_PRECISION = 0.9


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
    #: False for a source image that is itself a copy of an earlier one (the same picture
    #: shipped twice, in two packages or two folders): left out of every measurement.
    usable: bool = True


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
            items[i].usable
            and items[i].held_out == held_out
            and (similar or items[i].variant != "shot")
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


def variant_recall(
    report: DuplicateReport, items: dict[int, Item], in_run: set[int]
) -> dict[str, float]:
    """For each variant, the fraction of its files grouped with their original."""
    grouped = {i: n for n, g in enumerate(report.groups) for i in g.ids}
    originals = {it.family: i for i, it in items.items() if it.variant == "original"}
    hits: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for image_id, item in items.items():
        if item.family is None or item.variant == "original" or image_id not in in_run:
            continue
        total[item.variant] += 1
        hits[item.variant] += grouped.get(originals[item.family], -1) == grouped.get(image_id, -2)
    return {v: hits[v] / total[v] for v in total}


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


#: Source images (originals, distractors) whose hashes are this close repeat an earlier one.
REPEAT_BITS = 4


def drop_repeated_sources(items: dict[int, Item], lookup: StoredPerceptualHashes) -> dict[str, int]:
    """Mark source images that repeat an earlier one (and, for an original, its family) as
    unusable; the count by source."""
    sources = sorted(i for i, it in items.items() if it.variant in ("original", "distractor"))
    hashes = lookup(sources)
    kept: list[int] = []
    gone_families: set[str] = set()
    dropped: Counter[str] = Counter()
    for image_id in sources:
        value = hashes.get(image_id)
        if value is None:
            continue
        if kept and int(hamming(np.array(kept), value).min()) <= REPEAT_BITS:
            item = items[image_id]
            items[image_id] = replace(item, usable=False)
            dropped[item.source] += 1
            if item.family is not None:
                gone_families.add(item.family)
            continue
        kept.append(value)
    for image_id, item in items.items():
        if item.family in gone_families:
            items[image_id] = replace(item, usable=False)
    return dict(dropped)


def drop_stamp_variants(
    items: dict[int, Item], records: dict[int, ImageRecord], photos: list[Path], chosen: set[int]
) -> int:
    """Mark unusable the stamps that are copies or near-copies by construction: those the
    package ships mirrored (``*_mirror``) and its letters and symbols (``symbols/``: glyphs
    that differ by a stroke). Distractor files are numbered walls first, then stamps."""
    stamps = sorted(STAMPS_DIR.rglob("*.png")) if STAMPS_DIR.is_dir() else []
    first = len(photos) - len(chosen)
    count = 0
    for image_id, item in items.items():
        if item.source != "stamp":
            continue
        number = int(Path(records[image_id].path).name.split("-", 1)[0]) - first
        path = stamps[number]
        if "symbols" in path.relative_to(STAMPS_DIR).parts or "mirror" in path.stem:
            items[image_id] = replace(item, usable=False)
            count += 1
    return count


#: Pairs scored for calibration: every candidate pair down to cosine 0.5, hashes looked up.
PROBE = TierThresholds(0.5, 0, 1.0, 0.5, 0.5, 0, 0.5, contrast=1.0)
#: The density rule's grid: background ranks, contrasts, floors.
BACKGROUND_RANKS = (10, 15, 20, 30)
CONTRASTS = np.arange(0.30, 0.98, 0.02)
CONTRAST_FLOORS = (0.6, 0.7, 0.8)


def pair_backgrounds(
    scored: Scored,
    ids: npt.NDArray[np.int64],
    vectors: npt.NDArray[np.float32],
    rank: int,
    near_identical: float,
) -> npt.NDArray[np.float32]:
    """For each scored pair, the larger of its two images' background similarities (as the
    finder computes them)."""
    neighbours = nearest_neighbours(vectors, k=2 * rank)
    first, second = pairs_of(neighbours[:, :10])
    scores = np.einsum("ij,ij->i", vectors[first], vectors[second])
    clusters = near_identical_clusters(len(vectors), first, second, scores, near_identical)
    background = background_similarity(vectors, neighbours, rank, clusters=clusters)
    row = {int(i): n for n, i in enumerate(ids.tolist())}
    a = np.array([row[int(i)] for i in scored.first], dtype=np.int64)
    b = np.array([row[int(i)] for i in scored.second], dtype=np.int64)
    return np.maximum(background[a], background[b])


@dataclass(frozen=True)
class Scored:
    """The calibration half's candidate pairs: ids, cosine, differing hash bits (-1: none)."""

    first: npt.NDArray[np.int64]
    second: npt.NDArray[np.int64]
    cos: npt.NDArray[np.float64]
    bits: npt.NDArray[np.int64]
    identical: npt.NDArray[np.bool_]
    truth: list[Tier | None]


def scored_pairs(
    ids: npt.NDArray[np.int64],
    vectors: npt.NDArray[np.float32],
    records: dict[int, ImageRecord],
    items: dict[int, Item],
    lookup: StoredPerceptualHashes,
) -> Scored:
    probe = run(ids, vectors, records, lookup, PROBE, include_similar=True)
    pairs = [p for g in probe.groups for p in g.pairs]
    known = lookup(sorted({i for p in pairs for i in (p.first, p.second)}))
    return Scored(
        np.array([p.first for p in pairs], dtype=np.int64),
        np.array([p.second for p in pairs], dtype=np.int64),
        np.array([p.score for p in pairs]),
        np.array(
            [
                int(hamming(known[p.first], known[p.second]))
                if p.first in known and p.second in known
                else -1
                for p in pairs
            ],
            dtype=np.int64,
        ),
        np.array([p.tier is Tier.IDENTICAL for p in pairs]),
        [truth_tier(items[p.first], items[p.second]) for p in pairs],
    )


def linked_groups(
    scored: Scored, links: npt.NDArray[np.bool_], ids: npt.NDArray[np.int64]
) -> list[list[int]]:
    """Connected components of the linked pairs, as id lists of two or more."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    row = {int(i): n for n, i in enumerate(ids.tolist())}
    a = np.array([row[int(i)] for i in scored.first[links]], dtype=np.int64)
    b = np.array([row[int(i)] for i in scored.second[links]], dtype=np.int64)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(ids), len(ids)))
    _, labels = connected_components(graph, directed=False)
    members: dict[int, list[int]] = {}
    for n, label in enumerate(labels.tolist()):
        members.setdefault(label, []).append(int(ids[n]))
    return [m for m in members.values() if len(m) > 1]


def calibrate(
    ids: npt.NDArray[np.int64],
    vectors: npt.NDArray[np.float32],
    records: dict[int, ImageRecord],
    items: dict[int, Item],
    lookup: StoredPerceptualHashes,
) -> tuple[TierThresholds, list[str]]:
    """Thresholds from the calibration half (the README says the rule of each)."""
    notes: list[str] = []
    copy_ids, copy_vectors = subset(ids, vectors, items, held_out=False, similar=False)
    scored = scored_pairs(copy_ids, copy_vectors, records, items, lookup)
    cos, bits, identical = scored.cos, scored.bits, scored.identical
    agree = bits >= 0
    # Edited copies: the cosine alone, or a lower cosine with agreeing hashes; the
    # combination whose groups reach the precision with the highest recall (ties: the
    # strictest).
    best: tuple[float, float, float, int, float, float] | None = None
    for edited in np.arange(0.80, 0.995, 0.01):
        for agree_bits in range(0, 12, 2):
            for agree_cos in np.arange(0.50, 0.95, 0.05):
                links = (
                    identical
                    | (cos >= edited)
                    | (agree & (bits <= agree_bits) & (cos >= agree_cos))
                )
                groups = linked_groups(scored, links, copy_ids)
                precision, recall = group_scores(groups, items, copy_ids)
                if precision < CALIBRATION_PRECISION:
                    continue
                key = (recall, float(edited), float(agree_cos), -agree_bits, precision, 0.0)
                if best is None or key > best:
                    best = key
    assert best is not None
    recall, edited, agree_cos, neg_bits, precision, _ = best
    edited, agree_cos, agree_bits = round(edited, 3), round(agree_cos, 3), -neg_bits
    notes.append(
        f"edited_copy {edited}, or agree_cosine {agree_cos} with at most {agree_bits} bits: "
        f"groups' pairwise precision {precision:.4f}, recall {recall:.4f}"
    )
    # Same picture: among non-identical candidate pairs, the bits and cosine that label the
    # most same-picture pairs at a precision of 98 % (ties: fewer bits, higher cosine).
    same = np.array([t is Tier.SAME_PICTURE for t in scored.truth])
    pick: tuple[int, int, float] = (-1, 0, 1.0)
    for b in range(0, 13):
        for c in np.arange(0.85, 0.996, 0.005):
            chosen = ~identical & agree & (bits <= b) & (cos >= c)
            good = chosen.any() and same[chosen].mean() >= SAME_PICTURE_PRECISION
            if good and int(same[chosen].sum()) > pick[0]:
                pick = (int(same[chosen].sum()), b, round(float(c), 3))
    found, sp_bits, sp_cos = pick
    notes.append(
        f"same_picture: at most {sp_bits} bits and cosine >= {sp_cos}: {found} of "
        f"{int(same.sum())} same-picture candidate pairs at >= "
        f"{SAME_PICTURE_PRECISION:.0%} precision"
    )
    alone = 1.0
    for c in np.arange(0.995, 0.85, -0.005):
        chosen = ~identical & (cos >= c)
        if not chosen.any() or same[chosen].mean() < SAME_PICTURE_PRECISION:
            break
        alone = round(float(c), 3)
    notes.append(f"same_picture_alone {alone}: lowest cosine keeping that precision alone")
    # Density: with those links, the background rank, contrast and floor whose groups reach
    # the precision with the highest recall (ties: the highest contrast, then floor).
    old_links = identical | (cos >= edited) | (agree & (bits <= agree_bits) & (cos >= agree_cos))
    dense: tuple[float, float, float, int, float] | None = None
    for rank in BACKGROUND_RANKS:
        background = pair_backgrounds(scored, copy_ids, copy_vectors, rank, sp_cos)
        for contrast in CONTRASTS:
            for floor in CONTRAST_FLOORS:
                stands = (cos >= floor) & (cos - background >= contrast * (1.0 - background))
                groups = linked_groups(scored, old_links | stands, copy_ids)
                precision, recall = group_scores(groups, items, copy_ids)
                if precision < CALIBRATION_PRECISION:
                    continue
                key = (recall, round(float(contrast), 3), floor, -rank, precision)
                if dense is None or key > dense:
                    dense = key
    assert dense is not None
    recall, contrast, floor, neg_rank, precision = dense
    notes.append(
        f"density: background rank {-neg_rank}, contrast {contrast}, floor {floor}: "
        f"groups' pairwise precision {precision:.4f}, recall {recall:.4f}"
    )
    # Similar shots: the lowest cosine at which the groups with shots keep 95 % precision.
    shot_ids, shot_vectors = subset(ids, vectors, items, held_out=False, similar=True)
    with_shots = scored_pairs(shot_ids, shot_vectors, records, items, lookup)
    base = (
        with_shots.identical
        | (with_shots.cos >= edited)
        | ((with_shots.bits >= 0) & (with_shots.bits <= agree_bits) & (with_shots.cos >= agree_cos))
    )
    shot_background = pair_backgrounds(with_shots, shot_ids, shot_vectors, -neg_rank, sp_cos)
    base |= (with_shots.cos >= floor) & (
        with_shots.cos - shot_background >= contrast * (1.0 - shot_background)
    )
    similar = edited
    for t in np.arange(edited, 0.5, -0.01):
        groups = linked_groups(with_shots, base | (with_shots.cos >= t), shot_ids)
        precision, recall = group_scores(groups, items, shot_ids)
        if precision < 0.95:
            break
        similar = round(float(t), 3)
    notes.append(f"similar_shot {similar}: lowest cosine keeping 95 % precision with shots")
    tiers = TierThresholds(
        sp_cos,
        sp_bits,
        max(alone, sp_cos),
        edited,
        agree_cos,
        agree_bits,
        similar,
        background_rank=-neg_rank,
        contrast=contrast,
        contrast_floor=floor,
    )
    return tiers, notes


#: Extra same-picture copies per held-out family for the large-family check: (scale, JPEG
#: quality; 0 = PNG). With the family's 11 copies, 19 copies of one photo: more than the
#: background rank, so the family crowds its own neighbourhood.
EXTRA_COPIES = (
    (0.3, 90),
    (0.4, 85),
    (0.6, 80),
    (0.75, 95),
    (0.9, 60),
    (1.0, 50),
    (0.8, 0),
    (0.5, 0),
)
#: Ids of the extra copies' index are shifted by this much (they are numbered from 1 too).
EXTRA_ID_OFFSET = 1_000_000


def large_families(
    work: Path,
    ids: npt.NDArray[np.int64],
    vectors: npt.NDArray[np.float32],
    records: dict[int, ImageRecord],
    items: dict[int, Item],
    lookup: StoredPerceptualHashes,
    tiers: TierThresholds,
) -> dict[str, object]:
    """The held-out half again, each family grown by :data:`EXTRA_COPIES` resized and
    re-encoded copies of its original (indexed into ``work/extra-index`` once): precision,
    recall and recall by variant with the density rule and without."""
    extra_dir, extra_index = work / "extra", work / "extra-index"
    originals = {
        it.family: records[i] for i, it in items.items() if it.variant == "original" and it.held_out
    }
    if not extra_index.exists():
        for family, record in originals.items():
            folder = extra_dir / family
            folder.mkdir(parents=True, exist_ok=True)
            with Image.open(record.path) as image:
                rgb = image.convert("RGB")
            for number, (scale, quality) in enumerate(EXTRA_COPIES):
                size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
                copy = rgb.resize(size, Image.Resampling.LANCZOS)
                if quality:
                    copy.save(folder / f"{family}__extra{number}.jpg", quality=quality)
                else:
                    copy.save(folder / f"{family}__extra{number}.png")
        with SearchEngine.create(extra_index) as engine:
            engine.index_folder(extra_dir)
    store = IndexStore.open(extra_index)
    extra_records = {
        r.id + EXTRA_ID_OFFSET: replace(r, id=r.id + EXTRA_ID_OFFSET)
        for r in store.catalog.all_records()
    }
    extra_ids, extra_vectors = store.load_vectors()
    extra_ids = extra_ids + EXTRA_ID_OFFSET
    extra_lookup = StoredPerceptualHashes(
        store, {r.id - EXTRA_ID_OFFSET: r for r in extra_records.values()}
    )

    def both(wanted: Sequence[int]) -> dict[int, int]:
        mine = [i for i in wanted if i < EXTRA_ID_OFFSET]
        theirs = [i - EXTRA_ID_OFFSET for i in wanted if i >= EXTRA_ID_OFFSET]
        found = dict(lookup(mine))
        found.update({i + EXTRA_ID_OFFSET: h for i, h in extra_lookup(theirs).items()})
        return found

    all_items = dict(items)
    for image_id, record in extra_records.items():
        all_items[image_id] = Item(Path(record.path).parent.name, "extra", "family", True)
    held_ids, held_vectors = subset(ids, vectors, items, held_out=True, similar=False)
    grown_ids = np.concatenate([held_ids, extra_ids])
    grown_vectors = np.concatenate([held_vectors, extra_vectors])
    grown_records = records | extra_records
    out: dict[str, object] = {}
    for name, chosen in (("with density", tiers), ("without", replace(tiers, contrast=1.0))):
        options = DuplicateOptions()
        report = find_duplicates(
            grown_ids, grown_vectors, grown_records, options, phashes=both, tiers=chosen
        )
        precision, recall = group_scores([g.ids for g in report.groups], all_items, grown_ids)
        by_variant = variant_recall(report, all_items, set(grown_ids.tolist()))
        out[name] = {"precision": precision, "recall": recall, "grouped_by_variant": by_variant}
        print(
            f"  {name}: precision {precision:.4f}, recall {recall:.4f}; by variant: "
            + ", ".join(f"{k} {v:.2f}" for k, v in by_variant.items() if v < 1.0)
        )
    store.close()
    return out


#: The undecided band's grid: cosine floors and the looser contrasts.
UNDECIDED_FLOORS = (0.65, 0.7, 0.75)
UNDECIDED_CONTRASTS = (0.3, 0.4, 0.5)


class Settle:
    """The undecided pairs' check, as the library's: a strict geometric verification of the
    two files; each pair's geometry remembered (the grid asks again), fresh ones timed."""

    def __init__(self, records: dict[int, ImageRecord], acceptance: SimilarityAcceptance) -> None:
        self.records = records
        self.acceptance = acceptance
        self.verifier = GeometricVerifier()
        self.known: dict[tuple[int, int], PairGeometry | None] = {}
        self.fresh = 0
        self.seconds = 0.0
        #: The pairs the last call linked.
        self.linked: list[tuple[int, int]] = []

    def __call__(
        self, first: npt.NDArray[np.int64], second: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.bool_]:
        out = []
        self.linked = []
        for a, b in zip(first.tolist(), second.tolist(), strict=True):
            if (a, b) not in self.known:
                start = time.perf_counter()
                found = self.verifier.pair_geometry(self.records[a].path, self.records[b].path)
                self.seconds += time.perf_counter() - start
                self.fresh += 1
                self.known[(a, b)] = found
            out.append(self.acceptance.accepts(self.known[(a, b)]))
            if out[-1]:
                self.linked.append((a, b))
        return np.array(out, dtype=np.bool_)


def undecided_variants(
    ids: npt.NDArray[np.int64],
    vectors: npt.NDArray[np.float32],
    records: dict[int, ImageRecord],
    items: dict[int, Item],
    lookup: StoredPerceptualHashes,
    tiers: TierThresholds,
) -> dict[str, object]:
    """Undecided pairs verified geometrically: the band chosen on the calibration half (the
    highest recall at the calibration precision, then the most true copy pairs linked by the
    check, since group recall saturates; ties: fewest pairs checked), then every variant on
    the held-out half beside the defaults, with pairs checked and time per pair."""
    acceptance = SimilarityAcceptance()
    out: dict[str, object] = {"acceptance": asdict(acceptance)}
    choice: tuple[float, int, int, float, float] | None = None
    for name, held_out in (("calibration", False), ("held-out", True)):
        copy_ids, copy_vectors = subset(ids, vectors, items, held_out=held_out, similar=False)
        settle = Settle(records, acceptance)
        rows: dict[str, object] = {}
        print(f"\n{name} half, undecided pairs verified (floor, contrast: P, R, checked, linked):")
        for floor in UNDECIDED_FLOORS:
            for contrast in UNDECIDED_CONTRASTS:
                chosen = replace(tiers, undecided_floor=floor, undecided_contrast=contrast)
                report = find_duplicates(
                    copy_ids,
                    copy_vectors,
                    records,
                    DuplicateOptions(),
                    phashes=lookup,
                    tiers=chosen,
                    settle=settle,
                )
                precision, recall = group_scores([g.ids for g in report.groups], items, copy_ids)
                by_variant = variant_recall(report, items, set(copy_ids.tolist()))
                right = sum(truth_tier(items[a], items[b]) is not None for a, b in settle.linked)
                rows[f"{floor}/{contrast}"] = {
                    "true_linked": right,
                    "precision": precision,
                    "recall": recall,
                    "checked": report.undecided_pairs,
                    "linked": report.settled_pairs,
                    "grouped_by_variant": by_variant,
                }
                print(
                    f"  {floor:.2f}, {contrast:.2f}: {precision:.4f}, {recall:.4f}, "
                    f"{report.undecided_pairs} checked, {report.settled_pairs} linked "
                    f"({right} true); "
                    + ", ".join(f"{k} {v:.2f}" for k, v in by_variant.items() if v < 1.0)
                )
                if not held_out and precision >= CALIBRATION_PRECISION:
                    key = (recall, right, -report.undecided_pairs, floor, contrast)
                    if choice is None or key > choice:
                        choice = key
        per_pair = 1000 * settle.seconds / max(settle.fresh, 1)
        print(
            f"  {settle.fresh} distinct pairs verified in {settle.seconds:.1f} s: "
            f"{per_pair:.0f} ms per pair (cold file features, loaded machine)"
        )
        out[name] = {"variants": rows, "ms_per_pair": per_pair, "images": len(copy_ids)}
        if choice is not None and not held_out:
            out["chosen"] = {"undecided_floor": choice[3], "undecided_contrast": choice[4]}
            print(f"  chosen: floor {choice[3]}, contrast {choice[4]}")
    # The whole set (both halves, shots in): pairs checked and the finder's time, with the
    # check and without, side by side (a fresh verifier: file features cold).
    keep = np.array([items[i].usable for i in ids.tolist()])
    every_ids, every_vectors = ids[keep], vectors[keep]
    settle = Settle(records, acceptance)
    timed: dict[str, float] = {}
    for label, check in (("without", None), ("with", settle)):
        start = time.perf_counter()
        report = find_duplicates(
            every_ids,
            every_vectors,
            records,
            DuplicateOptions(),
            phashes=lookup,
            tiers=tiers,
            settle=check,
        )
        timed[label] = time.perf_counter() - start
    print(
        f"\nall {len(every_ids)} images: {report.undecided_pairs} undecided pairs checked "
        f"({report.undecided_pairs / len(every_ids):.3f} per image), {report.settled_pairs} "
        f"linked; finder {timed['with']:.1f} s with the check, {timed['without']:.1f} s "
        f"without ({1000 * settle.seconds / max(settle.fresh, 1):.0f} ms per pair)"
    )
    out["all_images"] = {
        "images": len(every_ids),
        "checked": report.undecided_pairs,
        "linked": report.settled_pairs,
        "seconds_with": timed["with"],
        "seconds_without": timed["without"],
    }
    return out


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
    repeated = drop_repeated_sources(items, lookup)
    repeated["stamp (symbols, mirrored)"] = drop_stamp_variants(items, records, photos, chosen)
    print(
        f"{len(ids)} images: {sum(1 for i in items.values() if i.family)} in {len(families)} "
        f"families ({len(held)} held out), {sum(1 for i in items.values() if not i.family)} "
        f"distractors; perceptual hashes stored at index time: {stored - lookup.computed}, "
        f"computed lazily: {lookup.computed}; left out as repeats within the source data "
        f"(perceptual hash within {REPEAT_BITS} bits of an earlier source image): {repeated}"
    )
    tiers, notes = calibrate(ids, vectors, records, items, lookup)
    print("calibration half:")
    for note in notes:
        print("  " + note)
    print(f"chosen: {asdict(tiers)}; the library's defaults: {asdict(DEFAULT_TIERS)}")

    results: dict[str, object] = {"tiers": asdict(tiers), "notes": notes}
    for name, held_out in (("calibration", False), ("held-out", True)):
        copy_ids, copy_vectors = subset(ids, vectors, items, held_out=held_out, similar=False)
        start = time.perf_counter()
        report = run(copy_ids, copy_vectors, records, lookup, tiers)
        seconds = time.perf_counter() - start
        precision, recall = group_scores([g.ids for g in report.groups], items, copy_ids)
        no_density = replace(tiers, contrast=1.0)
        previous = run(copy_ids, copy_vectors, records, lookup, no_density)
        prev_p, prev_r = group_scores([g.ids for g in previous.groups], items, copy_ids)
        old = group_duplicates(copy_ids, copy_vectors, threshold=0.75)
        old_p, old_r = group_scores([g.ids for g in old], items, copy_ids)
        same_cut = group_duplicates(copy_ids, copy_vectors, threshold=tiers.edited_copy)
        cut_p, cut_r = group_scores([g.ids for g in same_cut], items, copy_ids)
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
        in_shots = set(shot_ids.tolist())
        shots_by_default = {
            label: variant_recall(run(shot_ids, shot_vectors, records, lookup, t), items, in_shots)
            for label, t in (("with", tiers), ("without", no_density))
        }
        print(f"\n{name} half: {len(copy_ids)} images (similar shots left out)")
        print(
            f"  tiers (default):      copy pairs precision {precision:.4f}, "
            f"recall {recall:.4f} ({seconds:.2f} s)"
        )
        print(
            f"  without the density rule (the previous defaults): copy pairs precision "
            f"{prev_p:.4f}, recall {prev_r:.4f}"
        )
        print(f"  single cosine 0.75:   copy pairs precision {old_p:.4f}, recall {old_r:.4f}")
        print(
            f"  single cosine {tiers.edited_copy}:   copy pairs precision {cut_p:.4f}, "
            f"recall {cut_r:.4f} (no perceptual hashes)"
        )
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
        by_variant = variant_recall(report, items, set(copy_ids.tolist()))
        by_variant_before = variant_recall(previous, items, set(copy_ids.tolist()))
        print(
            "  grouped with the original, by variant (without the density rule): "
            + ", ".join(f"{k} {v:.2f} ({by_variant_before[k]:.2f})" for k, v in by_variant.items())
        )
        print(
            f"  --include-similar (shots added): precision {sp:.4f}, recall {sr:.4f}; "
            f"shots grouped with their original {shots['recall_grouped']:.3f}, "
            f"labelled similar-shot {shots['recall_same_tier']:.3f}"
        )
        print(
            "  another shot grouped with its original by default (no --include-similar): "
            f"{shots_by_default['with']['shot']:.2f} "
            f"({shots_by_default['without']['shot']:.2f} without the density rule)"
        )
        results[name] = {
            "tiers": {"precision": precision, "recall": recall},
            "without_density": {"precision": prev_p, "recall": prev_r},
            "grouped_by_variant_without_density": by_variant_before,
            "single_0.75": {"precision": old_p, "recall": old_r},
            "single_edited_copy": {"precision": cut_p, "recall": cut_r},
            "per_tier": table,
            "false_sources": dict(false),
            "grouped_by_variant": by_variant,
            "include_similar": {"precision": sp, "recall": sr, "shots": shots},
        }
    print(
        f"\nheld-out half, each family grown by {len(EXTRA_COPIES)} same-picture copies "
        f"({12 + len(EXTRA_COPIES) - 1} copies of one photo; variants below 1.00 shown):"
    )
    results["large_families"] = large_families(work, ids, vectors, records, items, lookup, tiers)
    results["undecided"] = undecided_variants(ids, vectors, records, items, lookup, tiers)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
