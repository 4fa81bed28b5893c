"""Option objects check themselves: a bad value fails where it is made, naming the field, the
value and what is allowed, before any work starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lookalike import IndexOptions, InvalidInputError
from lookalike.web.settings import ServeSettings


def test_default_index_options_are_valid() -> None:
    assert IndexOptions().batch_size == 32
    IndexOptions(workers=0, pca_dim=0, rerank=0, index_type="hnsw", whiten=True)


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("workers", -1, "0 (none) or more"),
        ("batch_size", 0, "at least 1"),
        ("commit_every", 0, "at least 1"),
        ("max_pixels", 0, "at least 1"),
        ("pca_dim", -2, "0 (none) or more"),
        ("rerank", -1, "0 (none) or more"),
    ],
)
def test_index_options_refuse_out_of_range_numbers(field: str, value: int, allowed: str) -> None:
    options: dict[str, Any] = {field: value}
    with pytest.raises(InvalidInputError) as caught:
        IndexOptions(**options)
    assert str(caught.value) == f"IndexOptions.{field} must be {allowed}, got {value}"


def test_index_options_refuse_an_unknown_index_type() -> None:
    with pytest.raises(InvalidInputError, match=r"index_type.*auto, exact, hnsw.*'ivf'"):
        IndexOptions(index_type="ivf")


def test_batch_size_zero_is_refused_before_any_division() -> None:
    with pytest.raises(InvalidInputError, match="batch_size"):
        IndexOptions(batch_size=0)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"max_upload_bytes": 10}, "max_upload_bytes"),
        ({"max_k": 0, "default_k": 1}, "max_k"),
        ({"default_k": 0}, "default_k"),
        ({"default_k": 300}, "default_k"),
        ({"thumbnail_sizes": ()}, "thumbnail_sizes"),
        ({"thumbnail_sizes": (128, 0)}, "thumbnail_sizes"),
        ({"threads": 0}, "threads"),
    ],
)
def test_serve_settings_refuse_bad_values(options: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInputError, match=f"ServeSettings.{field}"):
        ServeSettings(index=Path("shop.idx"), **options)


def test_default_serve_settings_are_valid() -> None:
    settings = ServeSettings(index=Path("shop.idx"))
    assert settings.default_k <= settings.max_k and not settings.allow_writes
