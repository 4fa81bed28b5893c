"""`lookalike index --ray local` gives the same index as local indexing."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from lookalike import SearchEngine
from lookalike.evaluation.copies import CopySet
from tests.helpers import run_cli

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.skipif(
        importlib.util.find_spec("ray") is None, reason="ray is not installed (the ray extra)"
    ),
]


def test_ray_indexing_equals_local_indexing(copy_set: CopySet, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(copy_set.root / "originals", photos / "originals")
    for pair in copy_set.copies[:24]:
        shutil.copy(pair.copy, photos / pair.copy.name)
    (photos / "broken.jpg").write_text("not an image")
    with_ray = run_cli(
        "index",
        photos,
        "--index",
        tmp_path / "ray.idx",
        "--ray",
        "local",
        "--workers",
        "2",
        "--batch-size",
        "8",
        "--json",
        timeout=600,
    )
    assert with_ray.returncode == 0, with_ray.stderr[-2000:]
    local = run_cli("index", photos, "--index", tmp_path / "local.idx", "--json")
    assert local.returncode == 0, local.stderr
    assert not (tmp_path / "ray.idx" / "shards").exists() or not any(
        (tmp_path / "ray.idx" / "shards").iterdir()
    )
    with (
        SearchEngine.open(tmp_path / "ray.idx") as ray_engine,
        SearchEngine.open(tmp_path / "local.idx") as local_engine,
    ):
        ray_paths, ray_vectors = ray_engine.export_vectors()
        local_paths, local_vectors = local_engine.export_vectors()
    assert len(ray_paths) == 32 and sorted(ray_paths) == sorted(local_paths)
    np.testing.assert_allclose(
        ray_vectors[np.argsort(ray_paths)], local_vectors[np.argsort(local_paths)], atol=1e-5
    )
    assert '"broken.jpg"' not in with_ray.stdout and "not an image" in with_ray.stdout
