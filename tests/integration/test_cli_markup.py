"""Untrusted text (file paths, labels) is printed as it is, never read as console markup."""

from __future__ import annotations

from pathlib import Path

import pytest

from lookalike.evaluation.copies import skimage_originals
from tests.conftest import FAST_EMBEDDER
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def bracket_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Photos in a folder `bad[` holding `x].jpg` and a `[bold]` file: a Rich markup trap,
    plus a truncated file whose skip reason names it."""
    root = tmp_path_factory.mktemp("markup")
    folder = root / "bad["
    folder.mkdir()
    photos = dict(skimage_originals())
    photos["chelsea"].save(folder / "x].jpg", quality=90)
    photos["chelsea"].save(folder / "[bold]copy.jpg", quality=90)
    photos["coffee"].save(root / "[link=x]coffee.jpg", quality=90)
    (folder / "[red]broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return root


def test_index_search_duplicates_print_bracketed_paths(
    bracket_folder: Path, tmp_path: Path
) -> None:
    index = tmp_path / "idx"
    indexed = run_cli("index", bracket_folder, "--index", index, "--embedder", FAST_EMBEDDER, "-q")
    assert indexed.returncode == 0, indexed.stderr
    assert "3 added" in indexed.stdout and "1 skipped" in indexed.stdout
    assert "[red]broken.jpg" in indexed.stdout  # shown literally, not as a colour

    query = bracket_folder / "bad[" / "x].jpg"
    found = run_cli("search", query, "--index", index, "-k", "3")
    assert found.returncode == 0, found.stderr
    assert "x].jpg" in found.stdout and "[bold]copy.jpg" in found.stdout
    assert "[link=x]coffee.jpg" in found.stdout

    groups = run_cli("duplicates", "--index", index, "--threshold", "0.99")
    assert groups.returncode == 0, groups.stderr
    assert "1 groups" in groups.stdout
    assert "bad[" in groups.stdout and "[bold]copy.jpg" in groups.stdout

    missing = run_cli("search", bracket_folder / "[nope]", "--index", index)
    assert missing.returncode == 2 and "[nope]" in missing.stderr
