"""`lookalike duplicates` groups the edited copies of each photo, and nothing else."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lookalike import SearchEngine
from lookalike.evaluation.copies import CopySet
from lookalike.grouping import group_duplicates, pair_precision_recall
from tests.conftest import FAST_EMBEDDER, GREY_DISTRACTORS
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def dup_photos(copy_set: CopySet, gallery: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Originals, their 72 copies, and the 10 unrelated greyscale photos."""
    photos = tmp_path_factory.mktemp("dups") / "photos"
    shutil.copytree(copy_set.root, photos)
    for name in GREY_DISTRACTORS:
        shutil.copy(gallery / "distractors" / f"{name}.jpg", photos / f"{name}.jpg")
    return photos


@pytest.fixture(scope="module")
def dup_index(dup_photos: Path) -> Path:
    """The duplicates folder indexed with the default network."""
    index = dup_photos.parent / "dups.idx"
    with SearchEngine.create(index) as engine:
        engine.index_folder(dup_photos)
    return index


@pytest.fixture(scope="module")
def fast_dup_index(dup_photos: Path) -> Path:
    """The duplicates folder indexed with the fast pixels embedder."""
    index = dup_photos.parent / "dups-pixels.idx"
    with SearchEngine.create(index, embedder=FAST_EMBEDDER) as engine:
        engine.index_folder(dup_photos)
    return index


@pytest.mark.heavy
def test_grouping_precision_and_recall_on_the_copy_set(dup_index: Path) -> None:
    with SearchEngine.open(dup_index) as engine:
        groups = engine.duplicates(threshold=0.75)
        paths, _ = engine.export_vectors()
        ids = engine.vector_index().ids
    truth = {
        int(i): Path(p).stem.split("__")[0]
        for i, p in zip(ids, paths, strict=True)
        if Path(p).stem.split("__")[0] not in GREY_DISTRACTORS
    }
    precision, recall = pair_precision_recall([[r.id for r in g] for g in groups], truth)
    print(
        f"\nduplicate grouping at 0.75: {len(groups)} groups, pairwise precision "
        f"{precision:.3f}, recall {recall:.3f}"
    )
    assert precision >= 0.99 and recall >= 0.9
    grouped = {Path(r.path).stem for g in groups for r in g}
    assert not grouped & set(GREY_DISTRACTORS)  # unrelated photos stay alone


def test_cli_writes_csv_and_json(fast_dup_index: Path, copy_set: CopySet, tmp_path: Path) -> None:
    # Raw pixels of any two photos are alike (all values are positive): only near-exact copies
    # pass a threshold this high.
    result = run_cli(
        "duplicates",
        "--index",
        fast_dup_index,
        "--threshold",
        "0.98",
        "--csv",
        tmp_path / "g.csv",
        "--json",
        tmp_path / "g.json",
    )
    assert result.returncode == 0, result.stderr
    assert "groups holding" in result.stdout
    with (tmp_path / "g.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    data = json.loads((tmp_path / "g.json").read_text())
    assert len(rows) == sum(len(g["members"]) for g in data["groups"]) and data["images"] == 90
    assert {r["group"] for r in rows} == {str(i) for i in range(1, len(data["groups"]) + 1)}
    assert data["threshold"] == 0.98
    groups = [{Path(r["path"]).stem for r in group["members"]} for group in data["groups"]]
    assert all(sum(r["keep"] for r in group["members"]) == 1 for group in data["groups"])
    assert {r["tier"] for r in rows} <= {"identical", "same-picture", "edited-copy"}
    for original in copy_set.originals:
        # JPEG quality 15 and a quarter-size copy keep the pixels: they join their original.
        name = original.stem
        expected = {name, f"{name}__jpeg15", f"{name}__downscale4"}
        assert any(expected <= group for group in groups), (name, groups)
    originals = {p.stem for p in copy_set.originals}
    for group in groups:
        # Copies never join another photo's group. (Raw pixels do group the greyscale
        # distractors with each other: telling those apart is the network's job.)
        names = {stem.split("__")[0] for stem in group}
        assert len(names & originals) <= 1 and (not names & originals or names <= originals), group
    csv_groups: dict[str, set[str]] = {}
    for row in rows:
        csv_groups.setdefault(row["group"], set()).add(Path(row["path"]).stem)
    assert sorted(map(sorted, csv_groups.values())) == sorted(map(sorted, groups))


def test_exact_duplicates_and_chains_on_synthetic_vectors() -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((50, 32)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    vectors = np.concatenate([base, base[:5]])  # rows 50..54 duplicate rows 0..4
    groups = group_duplicates(np.arange(100, 155), vectors, threshold=0.99)
    assert sorted(g.ids for g in groups) == [(100 + i, 150 + i) for i in range(5)]
    assert all(g.min_score == pytest.approx(1.0, abs=1e-5) for g in groups)
    assert group_duplicates(np.arange(1), vectors[:1]) == []
