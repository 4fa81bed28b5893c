"""The index-type registry: every type by name, and which structure each one searches."""

from __future__ import annotations

import pytest

from lookalike import InvalidInputError
from lookalike.indexes.registry import ANN_THRESHOLD, INDEX_TYPES, resolve_index_type


def test_the_three_types_are_registered_by_name() -> None:
    assert list(INDEX_TYPES) == ["auto", "exact", "hnsw"]
    for name, kind in INDEX_TYPES.items():
        assert resolve_index_type(name) is kind and kind.name == name and kind.summary


@pytest.mark.parametrize("name", list(INDEX_TYPES))
def test_every_type_searches_exactly_until_a_graph_is_built(name: str) -> None:
    kind = resolve_index_type(name)
    for count in (0, 10, ANN_THRESHOLD, 10 * ANN_THRESHOLD):
        assert kind.structure(count, graph_saved=False) == "exact"


def test_auto_switches_to_the_graph_at_the_threshold() -> None:
    auto = resolve_index_type("auto")
    assert not auto.wants_graph(ANN_THRESHOLD - 1) and auto.wants_graph(ANN_THRESHOLD)
    assert auto.structure(ANN_THRESHOLD - 1, graph_saved=True) == "exact"
    assert auto.structure(ANN_THRESHOLD, graph_saved=True) == "hnsw"


def test_exact_never_and_hnsw_always_want_the_graph() -> None:
    assert not resolve_index_type("exact").wants_graph(10 * ANN_THRESHOLD)
    assert resolve_index_type("hnsw").wants_graph(0)
    assert resolve_index_type("hnsw").structure(1, graph_saved=True) == "hnsw"


def test_unknown_type_names_the_choices() -> None:
    with pytest.raises(InvalidInputError, match=r"auto, exact, hnsw.*'ivf'"):
        resolve_index_type("ivf")
