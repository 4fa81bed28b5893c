"""VectorCodec: int8 ranges, clipping, scoring without decoding, the ranges file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike.errors import IndexFormatError, InvalidInputError
from lookalike.vector_codec import VectorCodec, check_vector_dtype, learn_ranges


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    """The 512 pixel rows of a real photo as unit vectors (512-d)."""
    import skimage.data

    data = skimage.data.camera().astype(np.float32)
    return data / np.linalg.norm(data, axis=1, keepdims=True)


@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
def test_scoring_compact_blocks_equals_scoring_their_decoding(rows: np.ndarray, dtype: str) -> None:
    codec = VectorCodec(dtype).learn(rows[:300])  # type: ignore[arg-type]
    stored = codec.encode(rows)
    assert stored.dtype == np.dtype(dtype)
    queries = rows[::50]
    np.testing.assert_allclose(
        codec.dots(queries)(stored), queries @ codec.decode(stored).T, atol=2e-5
    )


def test_int8_codes_stay_within_half_a_step_and_clip_outside_the_ranges(rows: np.ndarray) -> None:
    codec = VectorCodec("int8").learn(rows[:300])
    assert codec.ranges is not None
    offset, scale = codec.ranges
    decoded = codec.decode(codec.encode(rows[:300]))
    assert (np.abs(decoded - rows[:300]) <= scale / 2 + 1e-7).all()
    outside = rows[:2].copy()
    outside[0, 0] = offset[0] + 1000 * scale[0]
    codes = codec.encode(outside)
    assert codes[0, 0] == 127
    assert decoded[0, 0] != codec.decode(codes)[0, 0]
    np.testing.assert_allclose(codec.decode(codes)[0, 0], offset[0] + 127 * scale[0], rtol=1e-6)


def test_ranges_learned_from_one_vector_still_encode_others(rows: np.ndarray) -> None:
    ranges = learn_ranges(rows[:1])
    assert (ranges[1] > 0).all()
    codec = VectorCodec("int8", ranges)
    decoded = codec.decode(codec.encode(rows[1:20]))
    # Clipped, but no dimension collapsed to a single value.
    assert float(np.mean(np.sum(decoded * rows[1:20], axis=1))) > 0.9


def test_ranges_file_round_trips_and_a_bad_one_names_itself(
    rows: np.ndarray, tmp_path: Path
) -> None:
    path = tmp_path / "quantiser.npy"
    codec = VectorCodec("int8").learn(rows)
    codec.save(path)
    loaded = VectorCodec.load("int8", path, rows.shape[1])
    assert loaded.ranges is not None and codec.ranges is not None
    np.testing.assert_array_equal(loaded.ranges, codec.ranges)
    assert VectorCodec.load("int8", tmp_path / "none.npy", rows.shape[1]).needs_ranges
    with pytest.raises(IndexFormatError, match=r"quantiser\.npy.*expected finite float32 \(2, 7\)"):
        VectorCodec.load("int8", path, 7)
    path.write_bytes(b"not numpy")
    with pytest.raises(IndexFormatError, match=r"quantiser\.npy: unreadable int8 ranges"):
        VectorCodec.load("int8", path, rows.shape[1])


def test_unknown_dtype_names_the_choices() -> None:
    with pytest.raises(InvalidInputError, match="one of float32, float16, int8, got 'bf16'"):
        check_vector_dtype("bf16")
