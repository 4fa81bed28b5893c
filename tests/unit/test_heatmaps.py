"""The arithmetic of explanations: agreement of two feature maps, and placing a grid on the
whole image (whole-image inputs, the classic centre square, a region)."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.explain.heatmaps import agreement, heatmap_shape, mass_inside, place, seen_rect
from lookalike.input_spec import InputSpec
from lookalike.region import Box

WHOLE = InputSpec(size=256, resize="whole", max_size=512)
CROP = InputSpec(size=224)


def test_agreement_lights_the_shared_location_and_scores_the_cosine() -> None:
    rng = np.random.default_rng(3)
    query = rng.uniform(0, 0.1, (4, 5, 16)).astype(np.float32)
    result = rng.uniform(0, 0.1, (3, 3, 16)).astype(np.float32)
    shared = np.zeros(16, dtype=np.float32)
    shared[7] = 5.0
    query[1, 3] += shared
    result[2, 0] += shared
    agreed = agreement(query, result)
    assert np.unravel_index(agreed.query.argmax(), agreed.query.shape) == (1, 3)
    assert np.unravel_index(agreed.result.argmax(), agreed.result.shape) == (2, 0)
    g_q, g_r = query.reshape(-1, 16).mean(0), result.reshape(-1, 16).mean(0)
    cosine = g_q @ g_r / np.linalg.norm(g_q) / np.linalg.norm(g_r)
    assert agreed.score == pytest.approx(float(cosine), rel=1e-5)
    assert (agreed.query >= 0).all() and (agreed.result >= 0).all()


def test_whole_image_grid_covers_the_image_in_its_proportions() -> None:
    grid = np.zeros((8, 12), dtype=np.float32)
    grid[0, 11] = 2.0  # top-right cell
    heat = place(grid, 1200, 800, seen_rect(1200, 800, WHOLE))
    assert heat.shape == heatmap_shape(1200, 800) == (43, 64)
    assert heat.max() == pytest.approx(1.0)
    assert mass_inside(heat, 1200, 800, Box(1100, 0, 1200, 100)) > 0.5


def test_classic_crop_leaves_zeros_outside_the_centre_square() -> None:
    seen = seen_rect(800, 600, CROP)
    side = 600 * 0.875
    assert (seen.x0, seen.y0, seen.x1) == pytest.approx(
        (400 - side / 2, 300 - side / 2, 400 + side / 2)
    )
    heat = place(np.ones((7, 7), dtype=np.float32), 800, 600, seen)
    assert heat[:, :6].max() == 0 and heat[:, -6:].max() == 0 and heat[24, 32] == 1.0
    assert mass_inside(heat, 800, 600, seen) == pytest.approx(1.0)


def test_a_region_gets_the_grid_and_the_rest_zeros() -> None:
    box = Box(0, 0, 400, 300)
    heat = place(np.ones((3, 4), dtype=np.float32), 800, 600, seen_rect(800, 600, WHOLE, box))
    assert heat.shape == (48, 64)
    assert heat[:24, :32].min() == 1.0 and heat[24:, :].max() == 0 and heat[:, 32:].max() == 0


def test_nothing_agreeing_is_all_zeros_and_small_images_keep_their_size() -> None:
    heat = place(np.zeros((2, 2), dtype=np.float32), 40, 30, Box(0, 0, 40, 30))
    assert heat.shape == (30, 40) and heat.max() == 0.0
