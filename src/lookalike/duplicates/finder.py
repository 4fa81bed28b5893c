"""Finding duplicate pairs among an index's vectors and labelling each with a tier.

Candidates are each image's nearest neighbours (:func:`lookalike.grouping.neighbour_pairs`),
plus every pair of images with the same content hash. A pair is

- ``identical`` when the two files have the same bytes (content hash), whatever the score;
- ``same-picture`` when its cosine similarity reaches ``same_picture_cosine`` and the two
  pictures' perceptual hashes differ in at most ``same_picture_bits`` bits (where a hash is
  missing and cannot be computed: when the cosine alone reaches ``same_picture_alone``);
- ``edited-copy`` when its cosine reaches ``edited_copy`` (and, with ``verify``, copy mode's
  geometric verification confirms it);
- ``similar-shot`` (only with ``include_similar``) when its cosine reaches ``similar_shot``.

The defaults were calibrated on edited copies of real photos among real distractors
(benchmarks/duplicate_tiers.py; README, "How the duplicate tiers were chosen").
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

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
from lookalike.grouping import PairCheck, neighbour_pairs

#: Perceptual hashes of images by id, computed where they are missing and can be; an id
#: absent from the answer has none (its pairs are then judged by the embedding alone).
PerceptualLookup = Callable[[Sequence[int]], Mapping[int, int]]


@dataclass(frozen=True)
class TierThresholds:
    """Where each tier starts: cosine similarities of the two images' vectors, and the most
    perceptual-hash bits a same picture may differ in."""

    same_picture_cosine: float
    same_picture_bits: int
    same_picture_alone: float
    edited_copy: float
    similar_shot: float

    def __post_init__(self) -> None:
        for name in ("same_picture_cosine", "same_picture_alone", "edited_copy", "similar_shot"):
            value = getattr(self, name)
            if not -1.0 <= value <= 1.0:
                raise InvalidInputError(f"{name} is a cosine similarity in -1..1, got {value}")
        if not 0 <= self.same_picture_bits <= 64:
            raise InvalidInputError(
                f"same_picture_bits counts bits of a 64-bit hash (0..64), got "
                f"{self.same_picture_bits}"
            )

    def lowest(self, include_similar: bool) -> float:
        """The lowest cosine at which any tier asked for starts."""
        return min(self.edited_copy, self.similar_shot) if include_similar else self.edited_copy


#: Calibrated defaults (benchmarks/duplicate_tiers.py, on its calibration split).
DEFAULT_TIERS = TierThresholds(
    same_picture_cosine=0.93,
    same_picture_bits=10,
    same_picture_alone=0.985,
    edited_copy=0.75,
    similar_shot=0.6,
)


def find_duplicates(
    ids: npt.NDArray[np.int64],
    vectors: npt.NDArray[np.float32],
    records: Mapping[int, ImageRecord],
    options: DuplicateOptions,
    *,
    confirm: PairCheck | None = None,
    dismissed: Collection[tuple[str, str]] = (),
    phashes: PerceptualLookup | None = None,
    tiers: TierThresholds = DEFAULT_TIERS,
) -> DuplicateReport:
    """Tiered duplicate pairs and their groups (largest first) among ``vectors`` (rows of
    ``ids``, unit length).

    ``options.threshold``, when given, replaces the edited-copy threshold. ``confirm`` checks
    the edited-copy pairs (geometric verification). ``dismissed``: content-hash pairs
    (a < b) a user said are not duplicates; they are left out and counted. ``phashes``: the
    images' perceptual hashes (None: same pictures are judged by the embedding alone)."""
    if options.k < 1:
        raise InvalidInputError(f"k must be at least 1, got {options.k}")
    if options.threshold is not None:
        if not -1.0 <= options.threshold <= 1.0:
            raise InvalidInputError(
                f"threshold is a cosine similarity in -1..1, got {options.threshold}"
            )
        tiers = TierThresholds(
            same_picture_cosine=max(tiers.same_picture_cosine, options.threshold),
            same_picture_bits=tiers.same_picture_bits,
            same_picture_alone=max(tiers.same_picture_alone, options.threshold),
            edited_copy=options.threshold,
            similar_shot=min(tiers.similar_shot, options.threshold),
        )
    first, second = _candidates(ids, vectors, records, options.k)
    scores = np.einsum("ij,ij->i", vectors[first], vectors[second])
    a_ids, b_ids = ids[first], ids[second]
    same = _same_bytes(a_ids, b_ids, records)
    keep = same | (scores >= tiers.lowest(options.include_similar))
    a_ids, b_ids, scores, same = a_ids[keep], b_ids[keep], scores[keep], same[keep]

    dismissed_count = 0
    if dismissed and len(a_ids):
        gone = _dismissed(a_ids, b_ids, records, set(dismissed))
        dismissed_count = int(gone.sum())
        a_ids, b_ids, scores, same = a_ids[~gone], b_ids[~gone], scores[~gone], same[~gone]

    tier = np.full(len(a_ids), Tier.SIMILAR_SHOT.rank, dtype=np.int64)
    tier[scores >= tiers.edited_copy] = Tier.EDITED_COPY.rank
    tier[_same_picture(a_ids, b_ids, scores, same, tiers, phashes)] = Tier.SAME_PICTURE.rank
    tier[same] = Tier.IDENTICAL.rank

    if confirm is not None:
        check = tier == Tier.EDITED_COPY.rank
        if check.any():
            passed = np.ones(len(a_ids), dtype=np.bool_)
            passed[check] = confirm(a_ids[check], b_ids[check])
            a_ids, b_ids, scores, tier = a_ids[passed], b_ids[passed], scores[passed], tier[passed]

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
    )


def _candidates(
    ids: npt.NDArray[np.int64],
    vectors: npt.NDArray[np.float32],
    records: Mapping[int, ImageRecord],
    k: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Row pairs (i < j): nearest neighbours, and rows whose files have the same bytes (each
    linked to the first of them, so many copies of one file cost no quadratic list)."""
    first, second = neighbour_pairs(vectors, k=k)
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


def _same_picture(
    a_ids: npt.NDArray[np.int64],
    b_ids: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
    same: npt.NDArray[np.bool_],
    tiers: TierThresholds,
    phashes: PerceptualLookup | None,
) -> npt.NDArray[np.bool_]:
    """Which pairs are the same picture: perceptual hashes close and cosine high, or, for a
    pair without both hashes, the cosine alone very high. Hashes are looked up only for the
    pairs whose cosine could make them a same picture."""
    out = np.zeros(len(a_ids), dtype=np.bool_)
    maybe = np.flatnonzero(~same & (scores >= tiers.same_picture_cosine))
    if not len(maybe):
        return out
    wanted = sorted(set(a_ids[maybe].tolist()) | set(b_ids[maybe].tolist()))
    known = phashes(wanted) if phashes is not None else {}
    for row in maybe.tolist():
        ha, hb = known.get(int(a_ids[row])), known.get(int(b_ids[row]))
        if ha is None or hb is None:
            out[row] = bool(scores[row] >= tiers.same_picture_alone)
        else:
            out[row] = int(hamming(ha, hb)) <= tiers.same_picture_bits
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
