"""Serving an index's searches from Milvus (milvus-lite here) gives the built-in results."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from lookalike import SearchEngine
from lookalike.evaluation.copies import CopySet
from tests.helpers import json_lines, run_cli

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.skipif(
        importlib.util.find_spec("pymilvus") is None
        or importlib.util.find_spec("milvus_lite") is None,
        reason="pymilvus and milvus-lite are not installed (the milvus extra)",
    ),
]


def test_engine_searches_through_milvus(
    gallery_index: Path, copy_set: CopySet, tmp_path: Path
) -> None:
    queries = [str(p.copy) for p in copy_set.copies[::6]]
    with SearchEngine.open(gallery_index) as engine:
        built_in = engine.search(queries, k=5)
        report = engine.attach_milvus(str(tmp_path / "milvus.db"))
        assert report.upserted == 218
        remote = engine.search(queries, k=5)
        again = engine.attach_milvus(str(tmp_path / "milvus.db"))
        assert again.upserted == 0 and again.unchanged == 218
    for a, b in zip(built_in, remote, strict=True):
        assert [m.path for m in a.matches] == [m.path for m in b.matches]
        for x, y in zip(a.matches, b.matches, strict=True):
            assert x.score == pytest.approx(y.score, abs=1e-4)
    cli = run_cli(
        "search",
        copy_set.copies[0].copy,
        "--index",
        gallery_index,
        "--milvus",
        tmp_path / "cli-milvus.db",
        "--json",
        "-k",
        "3",
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    top = json_lines(cli.stdout)[0]["matches"][0]
    assert Path(top["path"]).name == copy_set.copies[0].original.name
