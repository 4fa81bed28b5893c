"""What one feed sync did: counts, rates, and every image that failed with its reason."""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from lookalike.durable import write_bytes

#: The reason given when a fetched file cannot be decoded (the fetcher's reasons are its own).
DECODE_ERROR = "decode-error"
#: The reason given for a row whose image cell is empty.
NO_IMAGE = "no-image"


@dataclass(frozen=True)
class FeedFailure:
    """An image (or a row without one) that is not in the index after this run."""

    product: str
    url: str
    reason: str
    detail: str


@dataclass(frozen=True)
class FeedReport:
    """One sync of a feed. ``added``: images new to the index; ``updated``: indexed images
    whose content changed and were embedded again; ``metadata_updated``: images whose fields
    changed (not embedded again); ``removed``: images of rows or URLs gone from the feed;
    ``unchanged``: images kept as they were; ``downloaded``: bodies fetched over the network;
    ``from_cache``: images answered by the download cache; ``shared``: images whose file
    another row of the feed already indexes (indexed once, under the first row);
    ``failed_before``: of the failures, images that failed in an earlier run and were not
    tried again."""

    rows: int
    images: int
    added: int
    updated: int
    metadata_updated: int
    removed: int
    unchanged: int
    downloaded: int
    from_cache: int
    shared: int
    embedded: int
    failures: tuple[FeedFailure, ...]
    seconds: float
    failed_before: int = 0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    def failure_counts(self) -> dict[str, int]:
        """Failures by reason, commonest first."""
        return dict(Counter(f.reason for f in self.failures).most_common())

    def to_json(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "images": self.images,
            "added": self.added,
            "updated": self.updated,
            "metadata_updated": self.metadata_updated,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "downloaded": self.downloaded,
            "from_cache": self.from_cache,
            "shared": self.shared,
            "embedded": self.embedded,
            "failed": self.failure_counts(),
            "failed_before": self.failed_before,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second, 2),
            "images_per_second": round(self.images_per_second, 2),
        }


FAILURE_COLUMNS = ("id", "url", "reason", "detail")


def write_failures(report: FeedReport, target: Path) -> None:
    """Write the failures as CSV (id, url, reason, detail), durably."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(FAILURE_COLUMNS)
    for f in report.failures:
        writer.writerow((f.product, f.url, f.reason, f.detail))
    write_bytes(target, text.getvalue().encode("utf-8"))


__all__ = ["DECODE_ERROR", "NO_IMAGE", "FeedFailure", "FeedReport", "write_failures"]
