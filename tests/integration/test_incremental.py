"""Re-indexing embeds only what changed, follows renames by content, and drops deleted files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike import IndexOptions, SearchEngine
from lookalike.errors import InvalidInputError
from tests.conftest import FAST_EMBEDDER

OPTIONS = IndexOptions(workers=1, commit_every=4)


@pytest.fixture()
def photos(small_photos: Path, tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    shutil.copytree(small_photos, root)
    return root


def _paths(engine: SearchEngine) -> set[str]:
    return {
        Path(m.path).name
        for r in engine.search_vectors(np.ones((1, engine.manifest.dim), np.float32), k=1000)
        for m in r
    }


def test_second_run_embeds_nothing(photos: Path, tmp_path: Path) -> None:
    with SearchEngine.create(tmp_path / "idx", embedder=FAST_EMBEDDER) as engine:
        first = engine.index_folder(photos, options=OPTIONS)
        second = engine.index_folder(photos, options=OPTIONS)
    assert (first.added, first.embedded) == (6, 6)
    assert (second.added, second.embedded, second.unchanged, second.removed) == (0, 0, 6, 0)


def test_new_changed_touched_deleted_files(photos: Path, tmp_path: Path) -> None:
    with SearchEngine.create(tmp_path / "idx", embedder=FAST_EMBEDDER) as engine:
        engine.index_folder(photos, options=OPTIONS)
        before = engine.search([str(photos / "things" / "coffee.jpg")], k=1)[0].matches[0]

        # A new photo, a changed photo, a touched photo (same bytes, new mtime), a deleted one.
        Image.open(photos / "animals" / "chelsea.jpg").rotate(90).save(
            photos / "things" / "new.jpg"
        )
        Image.open(photos / "animals" / "astronaut.jpg").transpose(
            Image.Transpose.FLIP_TOP_BOTTOM
        ).save(photos / "things" / "coffee.jpg")
        os.utime(photos / "things" / "rocket.jpg", ns=(1, 1_000_000_000))
        (photos / "things" / "retina.jpg").unlink()

        report = engine.index_folder(photos, options=OPTIONS)
        assert (report.added, report.updated, report.removed, report.embedded) == (1, 1, 1, 2)
        assert report.unchanged == 4  # chelsea, astronaut, motorcycle, touched rocket
        assert len(engine) == 6
        assert "retina.jpg" not in _paths(engine)
        after = engine.search([str(photos / "things" / "coffee.jpg")], k=1)[0].matches[0]
        assert after.path == before.path and after.score > 0.99
        assert after.id != before.id  # the changed file was embedded again

        # The changed file's old vector is gone: the old coffee photo no longer matches it.
        again = engine.index_folder(photos, options=OPTIONS)
        assert again.embedded == 0


def test_renamed_and_moved_files_keep_their_vectors(photos: Path, tmp_path: Path) -> None:
    with SearchEngine.create(tmp_path / "idx", embedder=FAST_EMBEDDER) as engine:
        engine.index_folder(photos, options=OPTIONS)
        old = engine.search([str(photos / "animals" / "chelsea.jpg")], k=1)[0].matches[0]
        (photos / "pets").mkdir()
        (photos / "animals" / "chelsea.jpg").rename(photos / "pets" / "cat.jpg")
        report = engine.index_folder(photos, options=OPTIONS)
        assert (report.renamed, report.embedded, report.removed, report.added) == (1, 0, 0, 0)
        new = engine.search([str(photos / "pets" / "cat.jpg")], k=1)[0].matches[0]
        assert new.id == old.id
        assert new.path == str((photos / "pets" / "cat.jpg").resolve())
        assert new.label == "pets"


def test_duplicate_content_shares_the_vector_without_embedding(
    photos: Path, tmp_path: Path
) -> None:
    with SearchEngine.create(tmp_path / "idx", embedder=FAST_EMBEDDER) as engine:
        engine.index_folder(photos, options=OPTIONS)
        shutil.copy(photos / "things" / "rocket.jpg", photos / "things" / "rocket-copy.jpg")
        report = engine.index_folder(photos, options=OPTIONS)
        assert (report.added, report.embedded) == (1, 0)
        matches = engine.search([str(photos / "things" / "rocket.jpg")], k=2)[0].matches
        assert {Path(m.path).name for m in matches} == {"rocket.jpg", "rocket-copy.jpg"}
        assert matches[0].score == pytest.approx(matches[1].score)


def test_indexing_one_folder_leaves_another_alone(photos: Path, tmp_path: Path) -> None:
    with SearchEngine.create(tmp_path / "idx", embedder=FAST_EMBEDDER) as engine:
        engine.index_folder(photos / "animals", options=OPTIONS)
        report = engine.index_folder(photos / "things", options=OPTIONS)
        assert report.removed == 0
        assert len(engine) == 6


def test_remove_by_file_and_folder_and_unknown_path(photos: Path, tmp_path: Path) -> None:
    with SearchEngine.create(tmp_path / "idx", embedder=FAST_EMBEDDER) as engine:
        engine.index_folder(photos, options=OPTIONS)
        with pytest.raises(InvalidInputError, match=r"not in the index: .*nowhere\.jpg"):
            engine.remove([photos / "animals" / "chelsea.jpg", photos / "nowhere.jpg"])
        assert len(engine) == 6  # nothing removed when one path is unknown
        assert engine.remove([photos / "animals" / "chelsea.jpg"]) == 1
        assert engine.remove([photos / "things"]) == 4
        assert _paths(engine) == {"astronaut.jpg"}
