"""Narrowing a search: by label, by folder, by numeric metadata ranges; and ordering the
results by a metadata field ("similar products, cheapest first")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from lookalike.catalog_records import ImageRecord
from lookalike.errors import InvalidInputError


@dataclass(frozen=True)
class NumericRange:
    """``low <= value <= high``; either bound may be None (open)."""

    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        if self.low is not None and self.high is not None and self.low > self.high:
            raise InvalidInputError(f"range is empty: minimum {self.low} > maximum {self.high}")

    def holds(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


@dataclass(frozen=True)
class SearchFilter:
    """Which indexed images may be returned. Empty means all of them."""

    labels: frozenset[str] = frozenset()
    folder: str | None = None
    ranges: Mapping[str, NumericRange] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.labels and self.folder is None and not self.ranges

    def mask(
        self,
        ids: npt.NDArray[np.int64],
        records: Mapping[int, ImageRecord],
        metadata: Mapping[int, Mapping[str, object]],
    ) -> npt.NDArray[np.bool_]:
        """True for each id (in order) that passes every condition."""
        prefix = None if self.folder is None else self.folder.rstrip("/") + "/"
        keep = np.ones(len(ids), dtype=bool)
        for i, image_id in enumerate(ids.tolist()):
            record = records.get(image_id)
            if record is None:
                keep[i] = False
                continue
            wrong_label = bool(self.labels) and record.label not in self.labels
            outside = prefix is not None and not record.path.startswith(prefix)
            if wrong_label or outside:
                keep[i] = False
            elif self.ranges:
                fields = metadata.get(image_id, {})
                keep[i] = all(r.holds(fields.get(name)) for name, r in self.ranges.items())
        return keep


def sort_key(field_name: str, metadata: Mapping[str, object]) -> tuple[int, float]:
    """Numeric fields ascending; images without the field last."""
    value = metadata.get(field_name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return (1, 0.0)
    return (0, float(value))
