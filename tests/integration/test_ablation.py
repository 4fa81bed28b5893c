"""The ablation on a real copy-detection set (scikit-image photos among real distractors),
through the real engine and query pipeline, with the fast embedders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import skimage.data
from PIL import Image

from lookalike.embedders.base import EmbedderSpec
from lookalike.engine import SearchEngine
from lookalike.errors import InvalidInputError
from lookalike.evaluation.ablation import (
    ABLATION_STEPS,
    OLD_RECIPE,
    AblationConfig,
    AblationOptions,
    AblationResult,
    QueryStages,
    configure,
    embedder_configs,
    run_ablation,
)
from lookalike.evaluation.ablation_report import write_ablation_report
from lookalike.evaluation.copies import skimage_originals
from lookalike.evaluation.datasets import Dataset, copy_detection, detect
from lookalike.evaluation.runner import EvalOptions, evaluate
from tests.conftest import FAST_EMBEDDER, GREY_DISTRACTORS
from tests.helpers import run_cli

OPTIONS = AblationOptions(workers=0, resamples=500, latency_queries=3)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Small originals (scikit-image's colour photos) and greyscale distractor photos."""
    root = tmp_path_factory.mktemp("ablation-data")
    originals, distractors = root / "originals", root / "distractors"
    originals.mkdir()
    distractors.mkdir()
    for name, image in skimage_originals():
        image.thumbnail((192, 192))
        image.save(originals / f"{name}.jpg", quality=92)
    for name in GREY_DISTRACTORS:
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").resize((160, 160)).save(
            distractors / f"{name}.jpg", quality=92
        )
    return originals, distractors


@pytest.fixture(scope="module")
def dataset(folders: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    originals, distractors = folders
    return copy_detection(originals, tmp_path_factory.mktemp("copies"), distractors=distractors)


@pytest.fixture(scope="module")
def result(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> AblationResult:
    configs = embedder_configs([FAST_EMBEDDER, "colour-histogram"])
    return run_ablation(dataset, configs, tmp_path_factory.mktemp("ablation"), options=OPTIONS)


def test_distractors_join_the_gallery_but_never_the_queries(dataset: Dataset) -> None:
    distractors = [i for i in dataset.items if i.group.startswith("distractor:")]
    assert len(distractors) == len(GREY_DISTRACTORS)
    assert all(not i.query and i.gallery and i.path.is_file() for i in distractors)
    assert len(dataset.queries()) == 8 * 9 and len(dataset.gallery()) == 8 * 10 + 10
    assert all(i.path.resolve().is_relative_to(dataset.root.resolve()) for i in dataset.items)


def test_every_configuration_is_scored_on_the_same_queries(result: AblationResult) -> None:
    first, second = result.rows
    assert result.compared == ("recall_at_1", "map", "ns")
    assert first.differences == {} and set(second.differences) == set(result.compared)
    for row in result.rows:
        assert row.scores.queries == 72 and len(row.per_query.hit1) == 72
        assert row.ms_per_image > 0 and row.ms_per_query > 0
    # Raw pixels see through JPEG, colour and downscale edits (a third of the copies) at least.
    assert first.scores.recall_at_1 > 0.3
    for metric, interval in second.differences.items():
        assert interval.low <= interval.mean <= interval.high, metric
        mean = second.per_query.values(metric) - first.per_query.values(metric)
        assert interval.mean == pytest.approx(float(mean.mean()))


def test_the_ablation_ranks_like_the_embedder_comparison(
    dataset: Dataset, result: AblationResult, tmp_path: Path
) -> None:
    """With no re-ranking stage, the pipeline's shortlist plus the cosine tail is the plain
    cosine ranking: the same figures as `lookalike evaluate` without --ablation."""
    (plain,) = evaluate(dataset, [FAST_EMBEDDER], tmp_path, options=EvalOptions(workers=0))
    ours = result.rows[0].scores
    assert ours.map == pytest.approx(plain.scores.map)
    assert ours.recall_at_1 == plain.scores.recall_at_1
    assert ours.precision_at_10 == pytest.approx(plain.scores.precision_at_10)


def test_the_report_shows_rows_intervals_and_costs(result: AblationResult, tmp_path: Path) -> None:
    files = write_ablation_report(result, tmp_path, seconds=1.0, with_plots=False)
    data = json.loads(files.json.read_text())
    assert data["kind"] == "ablation" and data["compared"] == ["recall_at_1", "map", "ns"]
    rows = data["results"]
    assert [r["configuration"] for r in rows] == ["pixels", "colour-histogram"]
    assert rows[0]["spec"] == {"name": "pixels", "params": {}} and rows[0]["difference"] == {}
    interval = rows[1]["difference"]["map"]
    assert interval["low"] <= interval["mean"] <= interval["high"] and interval["resamples"] == 500
    assert all(r["ms_per_image"] > 0 and r["ms_per_query"] > 0 for r in rows)
    markdown = files.markdown.read_text()
    assert "| pixels | pixels | - |" in markdown and "(reference)" in markdown
    interval_text = r"[+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\]"
    assert re.search(r"\| colour-histogram \|.*" + interval_text, markdown)
    assert "ms/image" in markdown and "ms/query" in markdown
    assert "Δ R@1 [95 % CI]" in files.html.read_text()


def test_the_table_starts_with_the_old_recipe_and_each_stage_is_switched_by_configure(
    tmp_path: Path,
) -> None:
    assert ABLATION_STEPS[0].embedder == OLD_RECIPE == EmbedderSpec("efficientnet-lite0", {})
    labels = [c.label for c in ABLATION_STEPS]
    assert len(set(labels)) == len(labels)
    keys = [(c.embedder.key(), c.stages) for c in ABLATION_STEPS]
    assert len(set(keys)) == len(keys)  # no step measured twice
    with SearchEngine.create(tmp_path / "index", embedder=FAST_EMBEDDER) as engine:
        plain = configure(engine.pipeline, QueryStages())
        assert plain.index_stages(None) == ()
        both = configure(engine.pipeline, QueryStages(expansion=True, hubness=True))
        names = [type(stage).__name__ for stage in both.index_stages(None)]
        assert names == ["QueryExpansion", "HubnessCorrection"]
        only = configure(engine.pipeline, QueryStages(hubness=True))
        assert [type(stage).__name__ for stage in only.index_stages(None)] == ["HubnessCorrection"]
    with pytest.raises(InvalidInputError, match="label"):
        AblationConfig(" ", OLD_RECIPE)


def test_cli_ablation_on_copies_among_distractors(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    originals, distractors = folders
    out = tmp_path / "report"
    result = run_cli(
        "evaluate", originals, "--kind", "copies", "--distractors", distractors, "--ablation",
        "-e", FAST_EMBEDDER, "-e", "colour-histogram", "--out", out, "--no-plots", "--workers", "0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Ablation" in result.stdout and "(reference)" in result.stdout
    assert "ms/query" in result.stdout and "95 %" in result.stdout
    data = json.loads((out / "results.json").read_text())
    assert data["dataset"]["gallery"] == 90 and len(data["results"]) == 2
    with pytest.raises(InvalidInputError, match="--kind copies"):
        detect(originals, tmp_path, distractors=distractors)


@pytest.mark.heavy
def test_the_ablation_table_runs_on_copies_among_distractors(
    dataset: Dataset, tmp_path: Path
) -> None:
    """Every step of the table, the real network included, on the small copy set."""
    result = run_ablation(dataset, ABLATION_STEPS, tmp_path, options=OPTIONS)
    rows = {row.config.label: row for row in result.rows}
    assert list(rows) == [c.label for c in ABLATION_STEPS]
    old = result.rows[0]
    assert old.config.embedder == OLD_RECIPE and old.dim == 1280
    # The network finds most copies' originals first, clearly more than raw pixels do.
    assert old.scores.recall_at_1 >= 0.8
    assert rows["raw pixels (baseline)"].differences["map"].high < 0.0
