"""What a reader caches per catalog generation (the image count, the product field, asked on
every search) follows commits made by a writer in another engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lookalike import SearchEngine
from lookalike.catalog import PRODUCT_FIELD_SETTING
from lookalike.store import IndexStore
from tests.conftest import FAST_EMBEDDER


def test_a_readers_count_and_product_field_follow_another_engines_commits(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(0)
    index = tmp_path / "idx"
    with SearchEngine.create(index, embedder=FAST_EMBEDDER) as writer:
        dim = writer.info().dim
        vectors = rng.standard_normal((30, dim)).astype(np.float32)
        writer.add_vectors([f"a/{i}" for i in range(20)], vectors[:20])
        reader = SearchEngine.open(index)
        assert len(reader) == 20 and reader.collection.product_field() is None
        assert len(reader) == 20  # asked again: the same generation, no new count
        writer.add_vectors([f"b/{i}" for i in range(10)], vectors[20:])
        assert len(reader) == 30
    store = IndexStore.open(index, writable=True)
    with store.catalog.transaction():
        store.catalog.set_setting(PRODUCT_FIELD_SETTING, "sku")
    store.close()
    assert reader.collection.product_field() == "sku"
    assert reader.pipeline.matches.product_field() == "sku"
    reader.close()
