"""Random access to vectors by id, over several parts (segments), in the order asked."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.errors import InvalidInputError
from lookalike.indexes.hnsw import Projection
from lookalike.vector_table import VectorTable


def test_take_returns_rows_in_the_order_asked_across_parts() -> None:
    first = np.arange(12, dtype=np.float32).reshape(4, 3)
    second = -np.arange(6, dtype=np.float32).reshape(2, 3) - 1
    ids = np.array([2, 5, 7, 8, 11, 40], dtype=np.int64)
    part = np.array([0, 1, 0, 0, 1, 0], dtype=np.int64)
    row = np.array([3, 1, 0, 2, 0, 1], dtype=np.int64)
    table = VectorTable(ids, part, row, [first, second])
    got = table.take([40, 2, 11, 5, 2])
    np.testing.assert_array_equal(
        got, np.stack([first[1], first[3], second[0], second[1], first[3]])
    )
    assert table.take([]).shape == (0, 3)
    with pytest.raises(InvalidInputError, match=r"\[3, 99\]"):
        table.take([2, 3, 99])


def test_table_of_arrays_in_any_id_order() -> None:
    vectors = np.eye(4, dtype=np.float32)
    table = VectorTable.of(np.array([30, 10, 20, 0], dtype=np.int64), vectors)
    np.testing.assert_array_equal(table.take([10, 0, 30]), vectors[[1, 3, 0]])
    with pytest.raises(InvalidInputError, match="sorted"):
        VectorTable(np.array([3, 1]), np.zeros(2, np.int64), np.arange(2), [vectors])


def test_whitened_projection_gives_each_component_unit_variance() -> None:
    rng = np.random.default_rng(7)
    scales = np.array([20.0, 5.0, 1.0, 0.2, 0.05, 0.01], dtype=np.float32)
    vectors = (rng.standard_normal((4000, 6)) * scales).astype(np.float32)
    plain = Projection.fit(vectors, 3)
    white = Projection.fit(vectors, 3, whiten=True)
    centred = vectors - white.mean
    np.testing.assert_allclose((centred @ white.axes).var(axis=0, ddof=1), 1.0, rtol=1e-3)
    variances = (centred @ plain.axes).var(axis=0, ddof=1)
    np.testing.assert_allclose(variances, scales[:3] ** 2, rtol=0.1)
    # Outputs are unit vectors in both cases (cosine search in the reduced space).
    np.testing.assert_allclose(np.linalg.norm(white(vectors[:10]), axis=1), 1.0, rtol=1e-5)
