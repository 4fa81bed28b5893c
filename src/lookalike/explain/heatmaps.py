"""Heatmaps from two feature maps: how much each location of one image agrees with the other.

Pure functions. A location's heat is the product of two things:
- its part of the two images' cosine similarity: the dot product of its location descriptor
  (``Recipe.decompose``: the descriptor split over the locations) with the other image's
  descriptor, clipped at zero; summed over the locations (before clipping) it gives back the
  score, so it says where the score comes from;
- how well it is matched by some location of the other image: the best cosine between its
  descriptor and theirs, to the power MATCH_POWER. The first alone also lights up whatever is
  generically "photo-like" (skies, textures shared with many images); this keeps the parts the
  other image really holds.
Measured on the scikit-image photos (tests/integration/test_explain.py, README): the share of
the result heatmap's mass inside a 50% crop's rectangle (25% of the area) was 0.45 on average
with the contribution alone, 0.31 with the best match alone, 0.60 with the product (power 4);
for an original pasted into one quarter of a canvas of other photos, the query heatmap's share
in that quarter was 0.46, 0.46 and 0.95.
The grid is then placed on the whole image as a viewer shows it: the part the network saw
(the whole image, a region of it, or the classic centre square) gets the grid, the rest zeros.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lookalike.input_spec import InputSpec
from lookalike.region import Box

Grid = npt.NDArray[np.float32]

#: Cells on the long side of a heatmap as answers report it (the short side in proportion):
#: finer than any feature grid (7 to 16 cells), small enough for a JSON answer.
HEATMAP_SIDE = 64
#: Power of a location's best-match cosine in its heat (see above; 1, 2, 4 measured, 4 best).
MATCH_POWER = 4


@dataclass(frozen=True)
class Agreement:
    """Each image's heat over its own feature grid, and their cosine similarity."""

    query: Grid
    result: Grid
    score: float


def agreement(query_map: Grid, result_map: Grid) -> Agreement:
    """Heat of each location of two location-descriptor maps (rows, cols, c), same c."""
    q = query_map.reshape(-1, query_map.shape[-1]).astype(np.float32, copy=False)
    r = result_map.reshape(-1, result_map.shape[-1]).astype(np.float32, copy=False)
    g_q, g_r = q.mean(axis=0), r.mean(axis=0)
    scale = max(float(np.linalg.norm(g_q) * np.linalg.norm(g_r)), 1e-12)
    # einsum's own loops, not BLAS: right after the network runs, a multithreaded BLAS
    # product of these small matrices took 20-300 ms here (its threads waking among the
    # network's), einsum 2-7 ms.
    cosines = np.einsum("ic,jc->ij", _unit(q), _unit(r))
    best_q = np.maximum(cosines.max(axis=1), 0.0) ** MATCH_POWER
    best_r = np.maximum(cosines.max(axis=0), 0.0) ** MATCH_POWER
    heat_q = (np.maximum(q @ g_r / scale, 0.0) * best_q).reshape(query_map.shape[:2])
    heat_r = (np.maximum(r @ g_q / scale, 0.0) * best_r).reshape(result_map.shape[:2])
    return Agreement(heat_q.astype(np.float32), heat_r.astype(np.float32), float(g_q @ g_r / scale))


def _unit(rows: Grid) -> Grid:
    unit: Grid = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    return unit


def seen_rect(width: int, height: int, spec: InputSpec, region: Box | None = None) -> Box:
    """The rectangle of a ``width`` x ``height`` image the network saw: the region (default the
    whole image), or its centre square as the classic crop cuts it."""
    area = region or Box(0, 0, width, height)
    if spec.whole:
        return area
    w, h = area.size
    side = min(w, h) * spec.crop_fraction
    left, top = area.x0 + (w - side) / 2, area.y0 + (h - side) / 2
    return Box(left, top, left + side, top + side)


def heatmap_shape(width: int, height: int, side: int = HEATMAP_SIDE) -> tuple[int, int]:
    """(rows, columns) of the heatmap of a ``width`` x ``height`` image."""
    long = min(side, max(width, height))
    scale = long / max(width, height)
    return max(1, round(height * scale)), max(1, round(width * scale))


def place(grid: Grid, width: int, height: int, seen: Box, side: int = HEATMAP_SIDE) -> Grid:
    """``grid`` (covering ``seen``) on the whole ``width`` x ``height`` image: bilinear inside
    ``seen``, zeros outside, maximum 1 (all zeros where nothing agrees)."""
    rows, cols = heatmap_shape(width, height, side)
    down = _weights(rows, height, seen.y0, seen.y1, grid.shape[0])
    across = _weights(cols, width, seen.x0, seen.x1, grid.shape[1])
    heat = (down @ grid.astype(np.float32) @ across.T).astype(np.float32)
    top = float(heat.max(initial=0.0))
    return heat / top if top > 0 else np.zeros_like(heat)


def _weights(cells: int, extent: int, start: float, stop: float, grid: int) -> Grid:
    """(cells, grid) bilinear weights sampling a grid spread over [start, stop) of an axis of
    ``extent`` pixels at the centres of ``cells`` equal cells; rows outside are zero."""
    weights = np.zeros((cells, grid), dtype=np.float32)
    centres = (np.arange(cells) + 0.5) * (extent / cells)
    for cell, x in enumerate(centres):
        if not start <= x < stop:
            continue
        u = min(max((x - start) / (stop - start) * grid - 0.5, 0.0), grid - 1.0)
        low = math.floor(u)
        high = min(low + 1, grid - 1)
        weights[cell, low] += 1.0 - (u - low)
        weights[cell, high] += u - low
    return weights


def mass_inside(heat: Grid, width: int, height: int, rect: Box) -> float:
    """The share of a heatmap's total that lies inside ``rect`` (pixels of the image it
    covers), by cell centres: how concentrated an explanation is on a part of the image."""
    rows, cols = heat.shape
    ys = (np.arange(rows) + 0.5) * (height / rows)
    xs = (np.arange(cols) + 0.5) * (width / cols)
    inside = np.outer((ys >= rect.y0) & (ys < rect.y1), (xs >= rect.x0) & (xs < rect.x1))
    total = float(heat.sum())
    return float(heat[inside].sum()) / total if total > 0 else 0.0


__all__ = [
    "HEATMAP_SIDE",
    "Agreement",
    "agreement",
    "heatmap_shape",
    "mass_inside",
    "place",
    "seen_rect",
]
