"""The re-ranking settings through each front end: `lookalike index` records them, `lookalike
info` shows them, `lookalike search` and the REST API override them per search."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fastapi.testclient import TestClient

from lookalike import SearchEngine
from lookalike.web.app import create_app
from lookalike.web.settings import ServeSettings
from tests.conftest import FAST_EMBEDDER
from tests.helpers import json_lines, run_cli


def _index_with_both_stages(photos: Path, tmp_path: Path) -> Path:
    """``photos`` indexed by `lookalike index` with raw pixels and both stages recorded."""
    index = tmp_path / "idx"
    made = run_cli(
        "index", photos, "--index", index, "--embedder", FAST_EMBEDDER, "--workers", "0",
        "--hubness", "--expansion", "-q",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return index


def test_cli_records_shows_and_overrides_the_stages(small_photos: Path, tmp_path: Path) -> None:
    index = _index_with_both_stages(small_photos, tmp_path)
    assert (index / "neighbours.npz").is_file()
    shown = run_cli("info", "--index", index, "--json")
    reranking = json.loads(shown.stdout)["reranking"]
    assert reranking["hubness"] is True and reranking["expansion"] is True
    query = next(small_photos.rglob("coffee.jpg"))
    found = run_cli(
        "search", query, "--index", index, "--json", "-k", "3", "--no-hubness", "--no-expansion"
    )
    assert found.returncode == 0, found.stderr
    (result,) = json_lines(found.stdout)
    assert result["matches"][0]["path"] == str(query)  # type: ignore[index]
    with SearchEngine.open(index) as engine:
        plain = engine.search([query], k=3, hubness=False, expansion=False)[0]
    assert [m["id"] for m in result["matches"]] == [m.id for m in plain.matches]  # type: ignore[union-attr]


def test_rest_api_searches_take_the_switches(fast_gallery_index: Path, tmp_path: Path) -> None:
    index = tmp_path / "gallery.idx"
    shutil.copytree(fast_gallery_index, index)
    settings = ServeSettings(index=index)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        info = client.get("/api/info").json()
        assert info["reranking"]["hubness"] is False
        plain = client.get("/api/search/1", params={"k": 5}).json()
        both = client.get(
            "/api/search/1", params={"k": 5, "hubness": "true", "expansion": "true"}
        ).json()
        assert len(both["matches"]) == 5 and 1 not in [m["id"] for m in both["matches"]]
        off = client.get("/api/search/1", params={"k": 5, "hubness": "false"}).json()
        assert off["matches"] == plain["matches"]  # the index records both off


def test_cli_table_says_when_the_stages_reorder_matches_out_of_score_order(
    small_photos: Path, tmp_path: Path
) -> None:
    """With both stages on, raw pixels rank chelsea's matches out of score order (a hub is
    moved down) but not coffee's: the table says why under the first only, and not at all when
    the stages are off."""
    index = _index_with_both_stages(small_photos, tmp_path)
    note = "so ranks and scores can disagree (--no-expansion --no-hubness ranks by score)"
    for name, stages, reordered in [
        ("chelsea.jpg", [], True),
        ("coffee.jpg", [], False),
        ("chelsea.jpg", ["--no-expansion", "--no-hubness"], False),
    ]:
        query = next(small_photos.rglob(name))
        args = ["search", query, "--index", index, "-k", "6", *stages]
        scores = [m["score"] for m in json_lines(run_cli(*args, "--json").stdout)[0]["matches"]]  # type: ignore[union-attr]
        assert (scores != sorted(scores, reverse=True)) is reordered, (name, stages, scores)
        shown = run_cli(*args)
        assert shown.returncode == 0, shown.stderr
        assert (note in " ".join(shown.stdout.split())) is reordered, shown.stdout
