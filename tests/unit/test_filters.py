"""Search filters: labels, folders, numeric ranges, and sorting by a metadata field."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.catalog_records import ImageRecord
from lookalike.errors import InvalidInputError
from lookalike.filters import NumericRange, SearchFilter, sort_key


def _record(image_id: int, path: str, label: str | None) -> ImageRecord:
    return ImageRecord(image_id, path, 100, 1, f"h{image_id}", label, 1, image_id)


RECORDS = {
    1: _record(1, "/shop/shoes/red.jpg", "shoes"),
    2: _record(2, "/shop/shoes/blue.jpg", "shoes"),
    3: _record(3, "/shop/hats/cap.jpg", "hats"),
    4: _record(4, "/shop/hatstand.jpg", None),
    5: _record(5, "/elsewhere/x.jpg", "shoes"),
}
METADATA: dict[int, dict[str, object]] = {
    1: {"price": 30, "title": "red shoe"},
    2: {"price": 12.5},
    3: {"price": "ask"},  # text where a number is expected: never in range
    4: {"price": True},  # a boolean is not a number either
}
IDS = np.array([1, 2, 3, 4, 5, 99], dtype=np.int64)  # 99: not in the catalog (removed since)


def _kept(search_filter: SearchFilter) -> list[int]:
    mask = search_filter.mask(IDS, RECORDS, METADATA)
    assert mask.dtype == np.bool_ and mask.shape == IDS.shape
    return IDS[mask].tolist()


def test_an_empty_filter_keeps_every_known_image() -> None:
    assert SearchFilter().empty
    assert _kept(SearchFilter()) == [1, 2, 3, 4, 5]


def test_labels() -> None:
    only_shoes = SearchFilter(labels=frozenset({"shoes"}))
    assert not only_shoes.empty
    assert _kept(only_shoes) == [1, 2, 5]
    assert _kept(SearchFilter(labels=frozenset({"shoes", "hats"}))) == [1, 2, 3, 5]
    assert _kept(SearchFilter(labels=frozenset({"socks"}))) == []


def test_folder_is_a_folder_not_a_string_prefix() -> None:
    assert _kept(SearchFilter(folder="/shop/hats")) == [3]  # not /shop/hatstand.jpg
    assert _kept(SearchFilter(folder="/shop/hats/")) == [3]
    assert _kept(SearchFilter(folder="/shop")) == [1, 2, 3, 4]


def test_numeric_ranges_keep_only_numbers_inside_them() -> None:
    assert _kept(SearchFilter(ranges={"price": NumericRange(low=10, high=30)})) == [1, 2]
    assert _kept(SearchFilter(ranges={"price": NumericRange(high=20)})) == [2]
    assert _kept(SearchFilter(ranges={"price": NumericRange(low=30)})) == [1]  # bounds inclusive
    assert _kept(SearchFilter(ranges={"weight": NumericRange(low=0)})) == []  # nobody has it


def test_conditions_combine_with_and() -> None:
    combined = SearchFilter(
        labels=frozenset({"shoes"}), folder="/shop", ranges={"price": NumericRange(high=100)}
    )
    assert _kept(combined) == [1, 2]


def test_numeric_range_holds() -> None:
    closed = NumericRange(1.5, 2.5)
    assert [closed.holds(v) for v in (1.5, 2, 2.5, 1.49, 2.51)] == [True, True, True, False, False]
    assert not closed.holds("2") and not closed.holds(None) and not closed.holds(True)
    assert NumericRange().holds(-1e300) and NumericRange().holds(0)
    assert NumericRange(2, 2).holds(2.0)


def test_an_empty_range_is_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"minimum 5\.0 > maximum 1\.0"):
        NumericRange(5.0, 1.0)


def test_sort_key_orders_numbers_ascending_and_missing_values_last() -> None:
    rows = {
        "a": {"price": 9},
        "b": {"price": 2.5},
        "c": {},
        "d": {"price": "n/a"},
        "e": {"price": -1},
    }
    order = sorted(rows, key=lambda name: sort_key("price", rows[name]))
    assert order[:3] == ["e", "b", "a"] and set(order[3:]) == {"c", "d"}
    assert sort_key("price", {"price": 3}) == (0, 3.0)
    assert sort_key("price", {"price": False}) == (1, 0.0)
