"""Finding duplicate pairs among an index's vectors and labelling each with a tier.

Placeholder tiers (to be calibrated): a pair whose cosine similarity reaches the threshold is
``identical`` when the two files have the same bytes and ``edited-copy`` otherwise.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np
import numpy.typing as npt

from lookalike.catalog_records import ImageRecord
from lookalike.duplicates.report import (
    DuplicateOptions,
    DuplicatePair,
    DuplicateReport,
    Tier,
    TieredGroup,
)
from lookalike.errors import InvalidInputError
from lookalike.grouping import PairCheck, neighbour_pairs

DEFAULT_THRESHOLD = 0.75


def find_duplicates(
    ids: npt.NDArray[np.int64],
    vectors: npt.NDArray[np.float32],
    records: Mapping[int, ImageRecord],
    options: DuplicateOptions,
    *,
    confirm: PairCheck | None = None,
    dismissed: Collection[tuple[str, str]] = (),
) -> DuplicateReport:
    """Tiered duplicate pairs and their groups (largest first) among ``vectors`` (rows of
    ``ids``, unit length). ``dismissed``: content-hash pairs (a < b) a user said are not
    duplicates; their pairs are left out and counted."""
    if options.k < 1:
        raise InvalidInputError(f"k must be at least 1, got {options.k}")
    threshold = DEFAULT_THRESHOLD if options.threshold is None else options.threshold
    first, second = neighbour_pairs(vectors, k=options.k)
    scores = np.einsum("ij,ij->i", vectors[first], vectors[second])
    keep = scores >= threshold
    first, second, scores = first[keep], second[keep], scores[keep]
    # Pairs a user dismissed go before verification: checking them would be wasted.
    left_out = 0
    if dismissed and len(first):
        pairs_now = zip(ids[first].tolist(), ids[second].tolist(), strict=True)
        keep = np.array([not _dismissed(a, b, records, dismissed) for a, b in pairs_now])
        left_out = int((~keep).sum())
        first, second, scores = first[keep], second[keep], scores[keep]
    if confirm is not None and len(first):
        keep = confirm(ids[first], ids[second])
        first, second, scores = first[keep], second[keep], scores[keep]
    pairs: list[DuplicatePair] = []
    for a, b, score in zip(ids[first].tolist(), ids[second].tolist(), scores.tolist(), strict=True):
        same = a in records and b in records and records[a].hash == records[b].hash
        low, high = min(a, b), max(a, b)
        pairs.append(
            DuplicatePair(low, high, float(score), Tier.IDENTICAL if same else Tier.EDITED_COPY)
        )
    groups = groups_of(pairs)
    return DuplicateReport(
        groups=groups,
        records={i: records[i] for g in groups for i in g.ids if i in records},
        images=len(ids),
        options=options,
        dismissed_pairs=left_out,
    )


def _dismissed(
    a: int, b: int, records: Mapping[int, ImageRecord], dismissed: Collection[tuple[str, str]]
) -> bool:
    """Whether a user said the contents of images ``a`` and ``b`` are not duplicates."""
    one, other = records.get(a), records.get(b)
    if one is None or other is None:
        return False
    low, high = sorted((one.hash, other.hash))
    return (low, high) in dismissed


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
