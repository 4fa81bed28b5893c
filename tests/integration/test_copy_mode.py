"""Copy mode: geometric verification re-ranks candidates so that edited copies (crops,
mirrors, rotations, text, heavy JPEG) find their original first, on real photos."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookalike import SearchEngine
from lookalike.errors import InvalidInputError
from lookalike.evaluation.copies import CopySet
from lookalike.query.geometry import DEFAULT_MIN_INLIERS, GeometricVerifier, load_grey
from lookalike.search_options import SearchOptions
from lookalike.web.app import create_app
from lookalike.web.settings import ServeSettings
from tests.conftest import FAST_EMBEDDER, GREY_DISTRACTORS
from tests.helpers import json_lines, run_cli

#: Edits that raw pixels do not see through (conftest.FAST_EDITS are those they do).
HARD_EDITS = ("crop60", "hflip", "rotate15", "border_text", "combo")
VERIFIED_PHOTOS = ("immunohistochemistry", "motorcycle_left", "rocket")
LOCAL = "http://127.0.0.1"


@pytest.fixture(scope="module")
def photos(copy_set: CopySet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The eight originals among ten unrelated greyscale photos."""
    import skimage.data

    root = tmp_path_factory.mktemp("copy-mode")
    (root / "originals").mkdir()
    for path in copy_set.originals:
        shutil.copy(path, root / "originals" / path.name)
    (root / "others").mkdir()
    for name in GREY_DISTRACTORS:
        image = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        image.save(root / "others" / f"{name}.jpg", quality=92)
    return root


@pytest.fixture(scope="module")
def index(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("copy-mode-index") / "photos.idx"
    with SearchEngine.create(directory, embedder=FAST_EMBEDDER) as engine:
        engine.index_folder(photos)
    return directory


def hard_copies(copy_set: CopySet) -> list[tuple[Path, str, str]]:
    """(copy, original's file name, edit) for the copies raw pixels do not see through, of
    three photos whose originals raw pixels still rank within the top 10 (kept few: each
    verified candidate costs milliseconds)."""
    return [
        (p.copy, p.original.name, p.edit)
        for p in copy_set.copies
        if p.edit in HARD_EDITS and p.original.stem in VERIFIED_PHOTOS
    ]


def test_verify_puts_every_edited_copys_original_first(index: Path, copy_set: CopySet) -> None:
    queries = hard_copies(copy_set)
    with SearchEngine.open(index) as engine:
        plain = engine.search([str(q) for q, _, _ in queries], k=3)
        verified = engine.search([str(q) for q, _, _ in queries], k=3, verify=True, verify_top=10)
    missed = [
        q.name
        for (q, name, _), r in zip(queries, plain, strict=True)
        if Path(r.matches[0].path).name != name
    ]
    assert missed, "raw pixels should miss some crops, mirrors or rotations"
    assert all(m.inliers is None for r in plain for m in r.matches)
    for (query, name, edit), result in zip(queries, verified, strict=True):
        top = result.matches[0]
        assert Path(top.path).name == name, (query.name, result.matches)
        assert top.inliers is not None and top.inliers >= DEFAULT_MIN_INLIERS, (edit, top)
        # The others are checked too, and are not copies.
        assert all(
            m.inliers is not None and m.inliers < DEFAULT_MIN_INLIERS for m in result.matches[1:]
        ), result.matches
        assert [m.rank for m in result.matches] == [1, 2, 3]


def test_a_mirrored_copy_verifies_through_the_mirror_image(copy_set: CopySet) -> None:
    (pair,) = [p for p in copy_set.copies if p.edit == "hflip" and "astronaut" in p.copy.name]
    verifier = GeometricVerifier()
    query = verifier.query_features(load_grey(pair.copy, verifier.side))
    original = verifier.file_features(str(pair.original))
    assert original is not None and query.mirrored is not None
    assert verifier.match(query.direct, original) < DEFAULT_MIN_INLIERS
    assert verifier.match(query.mirrored, original) >= 4 * DEFAULT_MIN_INLIERS
    assert verifier.inliers(query, str(pair.original)) == verifier.match(query.mirrored, original)
    blind = GeometricVerifier(mirror=False)
    unmirrored = blind.query_features(load_grey(pair.copy, blind.side))
    assert not blind.is_copy(blind.inliers(unmirrored, str(pair.original)))


def test_a_candidate_whose_file_is_gone_or_broken_stays_unverified(
    copy_set: CopySet, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in copy_set.originals[:4]:
        shutil.copy(path, folder / path.name)
    with SearchEngine.create(tmp_path / "i.idx", embedder=FAST_EMBEDDER) as engine:
        engine.index_folder(folder)
        gone, broken = sorted(folder.iterdir())[1:3]
        gone.unlink()
        broken.write_bytes(b"not a jpeg any more")
        query = next(
            p.copy
            for p in copy_set.copies
            if p.original.name == copy_set.originals[0].name and p.edit == "crop60"
        )
        (result,) = engine.search([str(query)], k=4, verify=True)
    by_name = {Path(m.path).name: m for m in result.matches}
    assert by_name[gone.name].inliers is None
    assert by_name[broken.name].inliers is None
    assert result.matches[0].path.endswith(copy_set.originals[0].name)
    assert result.matches[0].inliers is not None and result.matches[0].inliers > 50


def test_more_like_this_verifies_against_the_indexed_file(index: Path) -> None:
    with SearchEngine.open(index) as engine:
        found = engine.search_by_id(1, k=3, verify=True, verify_top=3)
    assert [m.rank for m in found.matches] == [1, 2, 3]
    assert all(m.id != 1 and m.inliers is not None for m in found.matches)


def test_decoded_queries_without_images_are_refused_in_copy_mode(
    index: Path, copy_set: CopySet
) -> None:
    with SearchEngine.open(index) as engine:
        decoded = engine.pipeline.decode([str(copy_set.copies[0].copy)])
        with pytest.raises(InvalidInputError, match="verify=True"):
            engine.pipeline.search_decoded(decoded, SearchOptions(verify=True))
        with pytest.raises(InvalidInputError, match="verify_top"):
            engine.search([str(copy_set.copies[0].copy)], verify=True, verify_top=0)


def test_cli_search_verify(index: Path, copy_set: CopySet) -> None:
    mirrored = next(p for p in copy_set.copies if p.edit == "hflip" and "chelsea" in p.copy.name)
    result = run_cli("search", mirrored.copy, "--index", index, "-k", "2", "--verify", "--json")
    assert result.returncode == 0, result.stderr
    (found,) = json_lines(result.stdout)
    matches = found["matches"]
    assert isinstance(matches, list)
    assert Path(matches[0]["path"]).name == mirrored.original.name
    assert matches[0]["inliers"] >= DEFAULT_MIN_INLIERS
    table = run_cli(
        "search", mirrored.copy, "--index", index, "-k", "2", "--verify", "--verify-top", "5"
    )
    assert table.returncode == 0, table.stderr
    assert "inliers" in table.stdout and mirrored.original.name in table.stdout


@pytest.fixture(scope="module")
def client(index: Path) -> Iterator[TestClient]:
    with TestClient(create_app(ServeSettings(index=index)), base_url=LOCAL) as test_client:
        yield test_client


def test_rest_search_verify(client: TestClient, copy_set: CopySet) -> None:
    rotated = next(p for p in copy_set.copies if p.edit == "rotate15" and "coffee" in p.copy.name)
    upload = {"image": ("copy.jpg", rotated.copy.read_bytes(), "image/jpeg")}
    answer = client.post("/api/search", params={"verify": "true", "k": 3}, files=upload)
    assert answer.status_code == 200, answer.text
    matches = answer.json()["matches"]
    assert matches[0]["name"] == rotated.original.name
    assert matches[0]["inliers"] >= DEFAULT_MIN_INLIERS
    plain = client.post("/api/search", params={"k": 3}, files=upload).json()["matches"]
    assert all(m["inliers"] is None for m in plain)
    by_id = client.get(f"/api/search/{matches[0]['id']}", params={"verify": "true", "k": 2})
    assert by_id.status_code == 200, by_id.text
    assert all(isinstance(m["inliers"], int) for m in by_id.json()["matches"])
    too_many = client.post("/api/search", params={"verify": "true", "verify_top": 0}, files=upload)
    assert too_many.status_code == 422
    schema = json.dumps(client.get("/openapi.json").json())
    assert "verify_top" in schema and "inliers" in schema
    page, script = client.get("/").text, client.get("/static/app.js").text
    assert 'id="verify"' in page and 'p.set("verify", "true")' in script


def test_duplicates_verify_drops_pairs_that_are_not_the_same_picture(
    copy_set: CopySet, tmp_path: Path
) -> None:
    import numpy as np
    import skimage.data

    folder = tmp_path / "photos"
    folder.mkdir()
    for pair in copy_set.copies:
        if pair.edit in ("jpeg15", "colour") and pair.original.name < "d":
            shutil.copy(pair.original, folder / pair.original.name)
            shutil.copy(pair.copy, folder / pair.copy.name)
    faces = skimage.data.lfw_subset()
    for i, face in enumerate(faces[:20]):
        pixels = np.clip(face * 255.0, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).resize((100, 100)).convert("RGB").save(folder / f"face{i}.jpg")
    index = tmp_path / "d.idx"
    with SearchEngine.create(index, embedder=FAST_EMBEDDER) as engine:
        engine.index_folder(folder)
        plain = engine.duplicate_scan(threshold=0.9)
        scan = engine.duplicate_scan(threshold=0.9, verify=True)
    # Different faces look alike to raw pixels; verification drops those pairs.
    assert plain.dropped_pairs == 0 and any("face" in r.path for g in plain.groups for r in g)
    assert scan.verified_pairs > scan.dropped_pairs > 0
    assert not any("face" in r.path for g in scan.groups for r in g), scan.groups
    assert len(scan.groups) == 3  # astronaut, chelsea, coffee: each with its two copies
    checked = run_cli(
        "duplicates",
        "--index",
        index,
        "--threshold",
        "0.9",
        "--verify",
        "--json",
        tmp_path / "checked.json",
    )
    assert checked.returncode == 0, checked.stderr
    after = json.loads((tmp_path / "checked.json").read_text())
    assert after["dropped_pairs"] == scan.dropped_pairs
    assert f"{scan.dropped_pairs} dropped" in checked.stdout
    names = [
        {Path(r["path"]).name.split("__")[0].removesuffix(".jpg") for r in g["members"]}
        for g in after["groups"]
    ]
    assert sorted(len(group) for group in names) == [1, 1, 1], names
