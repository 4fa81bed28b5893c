"""`Explanation`: why a result matches a query, as two heatmaps (and optional overlays)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lookalike.explain.overlays import data_url
from lookalike.region import Box

#: Decimals of heat values in JSON answers (a heatmap is a picture, not a measurement).
HEAT_DECIMALS = 3


@dataclass(frozen=True)
class Explanation:
    """Which parts of a query and a result agree.

    Each heatmap covers its WHOLE image as a viewer shows it (rows from the top, at most
    ``HEATMAP_SIDE`` cells on the long side, in the image's proportions), values 0..1 with
    maximum 1 (all zeros if nothing agrees); with a region query (``box``) the query heatmap
    is zero outside the box. ``score``: the cosine similarity of the two descriptors the
    heatmaps split up (the search's score, before any re-ranking). Overlays: PNG bytes of each
    image (long side at most 512 pixels) with its heatmap blended on top, when asked for.
    """

    query_heatmap: npt.NDArray[np.float32]
    result_heatmap: npt.NDArray[np.float32]
    query_size: tuple[int, int]
    result_size: tuple[int, int]
    score: float
    result_id: int
    box: Box | None = None
    query_overlay: bytes | None = None
    result_overlay: bytes | None = None

    def to_json(self) -> dict[str, object]:
        """The REST answer's fields (overlays as PNG data URLs, or null)."""
        return {
            "query_heatmap": _rows(self.query_heatmap),
            "result_heatmap": _rows(self.result_heatmap),
            "query_size": list(self.query_size),
            "result_size": list(self.result_size),
            "score": self.score,
            "box": None if self.box is None else self.box.to_json(),
            "query_overlay": None if self.query_overlay is None else data_url(self.query_overlay),
            "result_overlay": None
            if self.result_overlay is None
            else data_url(self.result_overlay),
        }


def _rows(heat: npt.NDArray[np.float32]) -> list[list[float]]:
    rounded: list[list[float]] = np.round(heat.astype(np.float64), HEAT_DECIMALS).tolist()
    return rounded


__all__ = ["HEAT_DECIMALS", "Explanation"]
