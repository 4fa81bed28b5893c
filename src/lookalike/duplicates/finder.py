"""Finding duplicate pairs among an index's vectors and labelling each with a tier.

Candidates are each image's nearest neighbours (:func:`lookalike.grouping.nearest_neighbours`),
plus every pair of images with the same content hash. A pair is

- ``identical`` when the two files have the same bytes (content hash), whatever the score;
- ``same-picture`` when its cosine similarity reaches ``same_picture_cosine`` and the two
  pictures' perceptual hashes differ in at most ``same_picture_bits`` bits (where a hash is
  missing and cannot be computed: when the cosine alone reaches ``same_picture_alone``);
- ``edited-copy`` when its cosine reaches ``edited_copy``, or reaches ``agree_cosine`` with
  perceptual hashes within ``agree_bits`` bits (a picture whose layout survived: heavy JPEG,
  blur, colour changes), or stands out from both images' neighbourhoods: its cosine reaches
  ``contrast_floor`` and covers at least ``contrast`` of the way from the background to 1,
  ``cos - b >= contrast * (1 - b)``, where ``b`` is the larger of the two images' cosines
  with their ``background_rank``-th nearest neighbour (near-identical pictures, cosine >=
  ``same_picture_cosine``, counted once, so that many copies do not hide an edited one). A
  crop or a rotation of a photo stands out from everything else near it; two look-alike
  products or faces do not (their neighbourhood is crowded). With ``verify``, copy mode's
  geometric verification must confirm the pair. A pair no tier decides whose cosine reaches
  ``undecided_floor`` and that covers ``undecided_contrast`` of the way from its background
  to 1 (a looser contrast) is *undecided*: with a ``settle`` check (geometric verification
  with a strict acceptance) it is an edited copy when the check confirms it, otherwise not
  linked. Pairs whose images are already grouped together are not checked;
- ``similar-shot`` (only with ``include_similar``) when its cosine reaches ``similar_shot``.

The defaults were calibrated on edited copies of real photos among real distractors
(benchmarks/duplicate_tiers.py; README, "How the duplicate tiers were chosen").
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from lookalike.catalog_records import ImageRecord
from lookalike.duplicates.perceptual import hamming
from lookalike.duplicates.report import (
    DuplicateOptions,
    DuplicatePair,
    DuplicateReport,
    Tier,
    TieredGroup,
)
from lookalike.errors import InvalidInputError
from lookalike.grouping import PairCheck, nearest_neighbours, pairs_of

#: Perceptual hashes of images by id, computed where they are missing and can be; an id
#: absent from the answer has none (its pairs are then judged by the embedding alone).
PerceptualLookup = Callable[[Sequence[int]], Mapping[int, int]]

_COSINES = (
    "same_picture_cosine",
    "same_picture_alone",
    "edited_copy",
    "agree_cosine",
    "contrast_floor",
    "undecided_floor",
)


@dataclass(frozen=True)
class TierThresholds:
    """Where each tier starts: cosine similarities of the two images' vectors, and the most
    perceptual-hash bits two pictures may differ in to count as agreeing."""

    same_picture_cosine: float
    same_picture_bits: int
    same_picture_alone: float
    edited_copy: float
    agree_cosine: float
    agree_bits: int
    similar_shot: float
    #: The neighbour (1 = nearest) whose cosine is an image's background similarity; larger
    #: than a typical copy family.
    background_rank: int = 15
    #: How far above the background, as a fraction of the way to 1, an edited copy stands
    #: (1: the rule is off, and no neighbours beyond ``k`` are searched; otherwise twice
    #: ``background_rank`` are).
    contrast: float = 0.74
    contrast_floor: float = 0.8
    #: Undecided pairs (checked geometrically when asked): cosine from ``undecided_floor``
    #: below ``edited_copy``, standing ``undecided_contrast`` of the way above the background.
    undecided_floor: float = 0.7
    undecided_contrast: float = 0.3

    def __post_init__(self) -> None:
        for name in (*_COSINES, "similar_shot"):
            value = getattr(self, name)
            if not -1.0 <= value <= 1.0:
                raise InvalidInputError(f"{name} is a cosine similarity in -1..1, got {value}")
        for name in ("same_picture_bits", "agree_bits"):
            value = getattr(self, name)
            if not 0 <= value <= 64:
                raise InvalidInputError(f"{name} counts bits of a 64-bit hash (0..64), got {value}")
        if self.background_rank < 1:
            raise InvalidInputError(
                f"background_rank is a neighbour's rank (1 = nearest), got {self.background_rank}"
            )
        for name in ("contrast", "undecided_contrast"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidInputError(
                    f"{name} is a fraction of the way from the background to 1 (0..1), got {value}"
                )

    def lowest(self, include_similar: bool) -> float:
        """The lowest cosine at which any tier asked for can start."""
        low = min(
            self.edited_copy, self.agree_cosine, self.same_picture_cosine, self.contrast_floor
        )
        return min(low, self.similar_shot) if include_similar else low

    def with_threshold(self, threshold: float) -> TierThresholds:
        """A user's single threshold: where edited copies start, and no tier below it."""
        if not -1.0 <= threshold <= 1.0:
            raise InvalidInputError(f"threshold is a cosine similarity in -1..1, got {threshold}")
        return replace(
            self,
            same_picture_cosine=max(self.same_picture_cosine, threshold),
            same_picture_alone=max(self.same_picture_alone, threshold),
            edited_copy=threshold,
            agree_cosine=max(self.agree_cosine, threshold),
            contrast_floor=max(self.contrast_floor, threshold),
            undecided_floor=max(self.undecided_floor, threshold),
            similar_shot=min(self.similar_shot, threshold),
        )


#: Calibrated defaults (benchmarks/duplicate_tiers.py, on its calibration half).
DEFAULT_TIERS = TierThresholds(
    same_picture_cosine=0.98,
    same_picture_bits=4,
    same_picture_alone=0.985,
    edited_copy=0.92,
    agree_cosine=0.6,
    agree_bits=4,
    similar_shot=0.89,
)


def find_duplicates(
    ids: npt.NDArray[np.int64],
    vectors: npt.NDArray[np.float32],
    records: Mapping[int, ImageRecord],
    options: DuplicateOptions,
    *,
    confirm: PairCheck | None = None,
    settle: PairCheck | None = None,
    dismissed: Collection[tuple[str, str]] = (),
    phashes: PerceptualLookup | None = None,
    tiers: TierThresholds = DEFAULT_TIERS,
) -> DuplicateReport:
    """Tiered duplicate pairs and their groups (largest first) among ``vectors`` (rows of
    ``ids``, unit length).

    ``options.threshold``, when given, replaces the edited-copy threshold. ``confirm`` checks
    the edited-copy pairs (geometric verification); ``settle`` the undecided pairs (a strict
    geometric verification; without it they are not linked). ``dismissed``: content-hash pairs
    (a < b) a user said are not duplicates; they are left out and counted. ``phashes``: the
    images' perceptual hashes (None: same pictures are judged by the embedding alone)."""
    if options.k < 1:
        raise InvalidInputError(f"k must be at least 1, got {options.k}")
    if options.threshold is not None:
        tiers = tiers.with_threshold(options.threshold)
    density = tiers.contrast < 1.0 or settle is not None
    # Twice the background rank: room for near-identical copies, which count once.
    wanted = max(options.k, 2 * tiers.background_rank) if density else options.k
    neighbours = nearest_neighbours(vectors, k=wanted)
    first, second = _candidates(ids, neighbours[:, : options.k], records)
    scores = np.einsum("ij,ij->i", vectors[first], vectors[second])
    background = np.ones(len(vectors), dtype=np.float32)
    if density:
        # Only images in a pair that no cosine tier decides need their background.
        low = min(tiers.contrast_floor, tiers.undecided_floor if settle else 1.0)
        band = (scores >= low) & (scores < tiers.edited_copy)
        background = background_similarity(
            vectors,
            neighbours,
            tiers.background_rank,
            clusters=near_identical_clusters(
                len(vectors), first, second, scores, tiers.same_picture_cosine
            ),
            rows=np.unique(np.concatenate([first[band], second[band]])),
        )
    pair_background = np.maximum(background[first], background[second])
    a_ids, b_ids = ids[first], ids[second]
    same = _same_bytes(a_ids, b_ids, records)
    lowest = tiers.lowest(options.include_similar)
    keep = same | (scores >= (min(lowest, tiers.undecided_floor) if settle else lowest))
    a_ids, b_ids, scores, same = a_ids[keep], b_ids[keep], scores[keep], same[keep]
    pair_background, first, second = pair_background[keep], first[keep], second[keep]

    dismissed_count = 0
    if dismissed and len(a_ids):
        gone = _dismissed(a_ids, b_ids, records, set(dismissed))
        dismissed_count = int(gone.sum())
        a_ids, b_ids, scores, same = a_ids[~gone], b_ids[~gone], scores[~gone], same[~gone]
        pair_background, first, second = pair_background[~gone], first[~gone], second[~gone]

    look = ~same & (scores >= min(tiers.same_picture_cosine, tiers.agree_cosine))
    bits = _bits(a_ids, b_ids, look, phashes)
    known = bits >= 0
    same_picture = (scores >= tiers.same_picture_cosine) & (
        (known & (bits <= tiers.same_picture_bits))
        | (~known & (scores >= tiers.same_picture_alone))
    )
    edited = (
        (scores >= tiers.edited_copy)
        | (known & (bits <= tiers.agree_bits) & (scores >= tiers.agree_cosine))
        | (
            (tiers.contrast < 1.0)
            & (scores >= tiers.contrast_floor)
            & (scores - pair_background >= tiers.contrast * (1.0 - pair_background))
        )
    )
    similar = scores >= tiers.similar_shot if options.include_similar else np.zeros_like(same)
    tier = np.full(len(a_ids), -1, dtype=np.int64)
    tier[similar] = Tier.SIMILAR_SHOT.rank
    tier[edited] = Tier.EDITED_COPY.rank
    tier[same_picture] = Tier.SAME_PICTURE.rank
    tier[same] = Tier.IDENTICAL.rank

    if confirm is not None:
        check = tier == Tier.EDITED_COPY.rank
        if check.any():
            tier[np.flatnonzero(check)[~confirm(a_ids[check], b_ids[check])]] = -1
    undecided = settled = 0
    if settle is not None:
        grouped = _components(len(vectors), first[tier >= 0], second[tier >= 0])
        open_ = (
            (tier < 0)
            & (scores >= tiers.undecided_floor)
            & (scores < tiers.edited_copy)
            & (scores - pair_background >= tiers.undecided_contrast * (1.0 - pair_background))
            & (grouped[first] != grouped[second])
        )
        undecided = int(open_.sum())
        if undecided:
            rows = np.flatnonzero(open_)
            confirmed = rows[settle(a_ids[rows], b_ids[rows])]
            tier[confirmed] = Tier.EDITED_COPY.rank
            settled = len(confirmed)
    linked = tier >= 0
    a_ids, b_ids, scores, tier = a_ids[linked], b_ids[linked], scores[linked], tier[linked]

    ranked = list(Tier)
    pairs = [
        DuplicatePair(min(a, b), max(a, b), float(s), ranked[t])
        for a, b, s, t in zip(
            a_ids.tolist(), b_ids.tolist(), scores.tolist(), tier.tolist(), strict=True
        )
    ]
    groups = groups_of(pairs)
    return DuplicateReport(
        groups=groups,
        records={i: records[i] for g in groups for i in g.ids if i in records},
        images=len(ids),
        options=options,
        dismissed_pairs=dismissed_count,
        undecided_pairs=undecided,
        settled_pairs=settled,
    )


def _bits(
    a_ids: npt.NDArray[np.int64],
    b_ids: npt.NDArray[np.int64],
    wanted: npt.NDArray[np.bool_],
    phashes: PerceptualLookup | None,
) -> npt.NDArray[np.int64]:
    """Perceptual-hash bits that differ for the ``wanted`` pairs; -1 where a hash is missing
    (or not wanted). Hashes are looked up only for the wanted pairs' images."""
    out = np.full(len(a_ids), -1, dtype=np.int64)
    rows = np.flatnonzero(wanted)
    if phashes is None or not len(rows):
        return out
    known = phashes(np.unique(np.concatenate([a_ids[rows], b_ids[rows]])).tolist())
    if not known:
        return out
    pa = [known.get(i) for i in a_ids[rows].tolist()]
    pb = [known.get(i) for i in b_ids[rows].tolist()]
    both = np.array([x is not None and y is not None for x, y in zip(pa, pb, strict=True)])
    ha = np.array([0 if x is None else x for x in pa], dtype=np.int64)
    hb = np.array([0 if y is None else y for y in pb], dtype=np.int64)
    out[rows[both]] = hamming(ha[both], hb[both])
    return out


#: Rows re-scored at a time (a block's neighbours' vectors are gathered in memory).
_BLOCK = 2048


def background_similarity(
    vectors: npt.NDArray[np.float32],
    neighbours: npt.NDArray[np.int64],
    rank: int,
    *,
    clusters: npt.NDArray[np.int64] | None = None,
    rows: npt.NDArray[np.int64] | None = None,
) -> npt.NDArray[np.float32]:
    """Each row's cosine with its ``rank``-th nearest neighbour (1 = nearest), re-scored with
    the full vectors (the neighbours of a large collection come from a reduced space), where
    pictures of one of ``clusters`` (a label per row: near-identical pictures) count once and
    the row's own cluster not at all, so twenty resized copies of a photo crowd neither it nor
    its crop. Only ``rows`` (default: all) are computed; 1.0 for the others and for a row with
    too few neighbours, so no pair of it stands out."""
    n = len(vectors)
    out = np.ones(n, dtype=np.float32)
    if n == 0 or neighbours.shape[1] < rank:
        return out
    cluster = np.arange(n, dtype=np.int64) if clusters is None else clusters
    wanted = np.arange(n, dtype=np.int64) if rows is None else rows
    width = neighbours.shape[1]
    earlier = np.tril(np.ones((width, width), dtype=np.bool_), k=-1)  # [j, i]: i before j
    for start in range(0, len(wanted), _BLOCK):
        block = wanted[start : start + _BLOCK]
        found = neighbours[block]
        safe = np.maximum(found, 0)
        sims = np.einsum("ij,ikj->ik", vectors[block], vectors[safe])
        sims[found < 0] = -np.inf
        order = np.argsort(-sims, axis=1, kind="stable")
        sims = np.take_along_axis(sims, order, axis=1)
        labels = cluster[np.take_along_axis(safe, order, axis=1)]
        repeated = ((labels[:, :, None] == labels[:, None, :]) & earlier).any(axis=2)
        counted = np.isfinite(sims) & ~repeated & (labels != cluster[block, None])
        hit = counted & (np.cumsum(counted, axis=1) == rank)
        reached = hit.any(axis=1)
        out[block[reached]] = sims[hit]
    return out


def near_identical_clusters(
    n: int,
    first: npt.NDArray[np.int64],
    second: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
    threshold: float,
) -> npt.NDArray[np.int64]:
    """A label per row: rows linked by pairs scoring at least ``threshold`` share one."""
    near = scores >= threshold
    return _components(n, first[near], second[near])


def _components(
    n: int, first: npt.NDArray[np.int64], second: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Connected components of ``n`` rows linked by the pairs: each row's smallest member."""
    label = np.arange(n, dtype=np.int64)
    while len(first):
        low = np.minimum(label[first], label[second])
        before = label.copy()
        np.minimum.at(label, first, low)
        np.minimum.at(label, second, low)
        label = label[label]
        if np.array_equal(label, before):
            break
    return label


def _candidates(
    ids: npt.NDArray[np.int64],
    neighbours: npt.NDArray[np.int64],
    records: Mapping[int, ImageRecord],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Row pairs (i < j): nearest neighbours, and rows whose files have the same bytes (each
    linked to the first of them, so many copies of one file cost no quadratic list)."""
    first, second = pairs_of(neighbours)
    by_hash: dict[str, int] = {}
    extra_a: list[int] = []
    extra_b: list[int] = []
    for row, image_id in enumerate(ids.tolist()):
        record = records.get(image_id)
        if record is None or not record.hash:
            continue
        head = by_hash.setdefault(record.hash, row)
        if head != row:
            extra_a.append(head)
            extra_b.append(row)
    if not extra_a:
        return first, second
    n = max(len(ids), 1)
    codes = np.concatenate([first * n + second, np.asarray(extra_a) * n + np.asarray(extra_b)])
    codes = np.unique(codes)
    return codes // n, codes % n


def _same_bytes(
    a_ids: npt.NDArray[np.int64], b_ids: npt.NDArray[np.int64], records: Mapping[int, ImageRecord]
) -> npt.NDArray[np.bool_]:
    def digest(i: int) -> str:
        record = records.get(i)
        return record.hash if record is not None else ""

    return np.array(
        [
            bool(digest(a)) and digest(a) == digest(b)
            for a, b in zip(a_ids.tolist(), b_ids.tolist(), strict=True)
        ],
        dtype=np.bool_,
    )


def _dismissed(
    a_ids: npt.NDArray[np.int64],
    b_ids: npt.NDArray[np.int64],
    records: Mapping[int, ImageRecord],
    dismissed: set[tuple[str, str]],
) -> npt.NDArray[np.bool_]:
    out = np.zeros(len(a_ids), dtype=np.bool_)
    for row, (a, b) in enumerate(zip(a_ids.tolist(), b_ids.tolist(), strict=True)):
        ra, rb = records.get(a), records.get(b)
        if ra is not None and rb is not None:
            out[row] = (min(ra.hash, rb.hash), max(ra.hash, rb.hash)) in dismissed
    return out


def groups_of(pairs: list[DuplicatePair]) -> list[TieredGroup]:
    """Connected components of the pairs, largest first (ties: smallest first id)."""
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        parent.setdefault(i, i)
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for pair in pairs:
        ra, rb = root(pair.first), root(pair.second)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[int, list[int]] = {}
    for i in list(parent):
        members.setdefault(root(i), []).append(i)
    linked: dict[int, list[DuplicatePair]] = {}
    for pair in pairs:
        linked.setdefault(root(pair.first), []).append(pair)
    groups = [
        TieredGroup(
            ids=tuple(sorted(rows)),
            pairs=tuple(sorted(linked[r], key=lambda p: (p.first, p.second))),
            tier=max((p.tier for p in linked[r]), key=lambda t: t.rank),
        )
        for r, rows in members.items()
    ]
    groups.sort(key=lambda g: (-len(g.ids), g.ids[0]))
    return groups
