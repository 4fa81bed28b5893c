"""Region search end to end: a box around part of the query, through the library, the CLI and
the REST API, on the gallery of real photos (8 colour originals, 210 real distractors).

The plumbing runs with the fast ``pixels`` embedder; the composite test of the issue (one
original pasted into a quarter of a canvas of other photos: found first only with its box)
runs with the default network and is marked heavy."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookalike import Box, ImageError, InvalidInputError, Region, SearchEngine
from lookalike.evaluation.copies import CopySet
from lookalike.index_options import IndexOptions
from lookalike.web.app import create_app
from lookalike.web.settings import ServeSettings
from tests.composites import composite
from tests.helpers import json_lines, run_cli

LOCAL = "http://127.0.0.1"
#: EXIF orientation 6: the stored pixels are shown turned a quarter clockwise.
ROTATED_90 = 6
#: Composite JPEGs: (file, the box around the pasted original, the original's file name).
Composites = list[tuple[Path, Box, str]]


def _composites(
    originals: tuple[Path, ...], folder: Path, *, rotated: bool = False, seed: int = 16
) -> Composites:
    """One composite JPEG per original: the original in quarter ``i % 4``, three other
    originals (a seeded choice) in the others; with ``rotated``, stored turned a quarter with
    EXIF orientation 6, so that viewers (and boxes) see the same upright canvas."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    photos = [Image.open(p).convert("RGB") for p in originals]
    made = []
    for i, original in enumerate(originals):
        pool = [j for j in range(len(originals)) if j != i]
        others = [photos[j] for j in rng.choice(pool, size=3, replace=False)]
        canvas, box = composite(photos[i], others, quarter=i % 4)
        path = folder / f"composite-{i}.jpg"
        if rotated:
            exif = Image.Exif()
            exif[0x0112] = ROTATED_90
            stored = canvas.transpose(Image.Transpose.ROTATE_90)
            stored.save(path, quality=90, exif=exif.tobytes())
        else:
            canvas.save(path, quality=90)
        made.append((path, box, original.name))
    return made


def _firsts(engine: SearchEngine, made: Composites, *, boxed: bool) -> int:
    """How many composites find their pasted original first."""
    hits = 0
    for path, box, name in made:
        (result,) = engine.search([path], k=3, box=box if boxed else None)
        hits += Path(result.matches[0].path).name == name
    return hits


@pytest.fixture(scope="module")
def composites(copy_set: CopySet, tmp_path_factory: pytest.TempPathFactory) -> Composites:
    return _composites(copy_set.originals, tmp_path_factory.mktemp("composites"))


@pytest.fixture(scope="module")
def engine(fast_gallery_index: Path) -> Iterator[SearchEngine]:
    with SearchEngine.open(fast_gallery_index) as opened:
        yield opened


# -- the library ---------------------------------------------------------------------------------


def test_a_box_finds_the_pasted_original_in_every_composite(
    engine: SearchEngine, composites: Composites
) -> None:
    n = len(composites)
    with_box = _firsts(engine, composites, boxed=True)
    without_box = _firsts(engine, composites, boxed=False)
    assert with_box == n and without_box < n, f"with box {with_box}/{n}, without {without_box}/{n}"
    (result,) = engine.search([Region(composites[0][0], composites[0][1])], k=3)
    assert result.box == composites[0][1] and result.query == str(composites[0][0])
    assert result.to_json()["box"] == composites[0][1].to_json()


def test_a_box_over_the_whole_image_changes_nothing(
    engine: SearchEngine, composites: Composites
) -> None:
    path = composites[1][0]
    with Image.open(path) as image:
        whole = Box(0, 0, image.width, image.height)
    (plain,) = engine.search([path], k=10)
    (boxed,) = engine.search([path], k=10, box=whole)
    assert [m.id for m in boxed.matches] == [m.id for m in plain.matches]
    assert [m.score for m in boxed.matches] == pytest.approx([m.score for m in plain.matches])
    assert plain.box is None and boxed.box == whole


def test_an_exif_rotated_query_is_boxed_as_it_is_shown(
    engine: SearchEngine, copy_set: CopySet, tmp_path: Path
) -> None:
    rotated = _composites(copy_set.originals, tmp_path, rotated=True)
    with Image.open(rotated[0][0]) as stored:
        assert stored.size == (768, 1024)  # stored on its side; shown 1024 x 768
    n = len(rotated)
    hits = _firsts(engine, rotated, boxed=True)
    assert hits == n, f"{hits}/{n} rotated composites found their original with the box"
    # The same boxes read in the stored pixels' frame point at other photos, or leave the image.
    unrotated = tmp_path / "as-stored.jpg"
    misses = 0
    for path, box, name in rotated:
        with Image.open(path) as stored:
            stored.convert("RGB").save(unrotated)  # the pixels, without the orientation
        try:
            (result,) = engine.search([unrotated], k=1, box=box)
        except InvalidInputError:
            misses += 1
            continue
        misses += Path(result.matches[0].path).name != name
    assert misses == n


def test_copy_mode_verifies_against_the_region(
    engine: SearchEngine, composites: Composites
) -> None:
    path, box, name = composites[2]
    decoded = engine.pipeline.decode([Region(path, box)], verify=True)
    assert decoded.grey is not None
    height, width = decoded.grey[0].shape
    assert width / height == pytest.approx(box.size[0] / box.size[1], rel=0.02)
    (result,) = engine.search([path], k=5, box=box, verify=True)
    top = result.matches[0]
    assert Path(top.path).name == name and result.box == box
    assert top.inliers is not None and engine.pipeline.verifier.is_copy(top.inliers), top
    others = [m.inliers for m in result.matches[1:] if m.inliers is not None]
    assert all(not engine.pipeline.verifier.is_copy(i) for i in others), others


def test_more_like_this_for_a_region_of_an_indexed_image(engine: SearchEngine) -> None:
    record, _ = engine.record(5)
    with Image.open(record.path) as image:
        box = Box(0, 0, image.width // 2, image.height // 2)
    plain = engine.search_by_id(record.id, k=10)
    boxed = engine.search_by_id(record.id, k=10, box=box)
    assert record.id not in [m.id for m in boxed.matches]
    assert boxed.query == record.path and boxed.box == box and plain.box is None
    assert [m.id for m in boxed.matches] != [m.id for m in plain.matches]
    (region,) = engine.search([Region(record.path, box)], k=11)
    assert [m.id for m in boxed.matches] == [m.id for m in region.matches if m.id != record.id][:10]


def test_region_errors_name_the_file_the_box_and_the_fix(
    small_photos: Path, tmp_path: Path, composites: Composites, engine: SearchEngine
) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(small_photos, photos)
    with SearchEngine.create(tmp_path / "i.idx", embedder="pixels") as small:
        small.index_folder(photos, options=IndexOptions(workers=0))
        gone = small.record_by_path(str((photos / "things" / "coffee.jpg").resolve()))
        (photos / "things" / "coffee.jpg").unlink()
        with pytest.raises(ImageError, match=r"coffee\.jpg: file not found"):
            small.search_by_id(gone.id, box=Box(0, 0, 100, 100))
    path, box, _ = composites[0]
    with pytest.raises(InvalidInputError, match=r"composite-0\.jpg: box 0,0,2000,100 .* 1024x768"):
        engine.search([path], box=Box(0, 0, 2000, 100))
    with pytest.raises(InvalidInputError, match="already a Region"):
        engine.search([Region(path, box)], box=box)


# -- the CLI -------------------------------------------------------------------------------------


def test_cli_box_searches_the_region_and_reports_it(
    fast_gallery_index: Path, composites: Composites
) -> None:
    path, box, name = composites[3]
    result = run_cli("search", path, "--index", fast_gallery_index, "--box", box.text(), "--json")
    assert result.returncode == 0, result.stderr
    (line,) = json_lines(result.stdout)
    assert line["box"] == box.to_json()
    assert Path(str(line["matches"][0]["path"])).name == name  # type: ignore[index]
    table = run_cli("search", path, "--index", fast_gallery_index, "--box", box.text(), "-k", "1")
    assert table.returncode == 0 and f"(box {box.text()})" in table.stdout and name in table.stdout


@pytest.mark.parametrize(
    ("box", "says"),
    [
        ("10,20,300", "--box: box '10,20,300': expected four numbers x0,y0,x1,y1"),
        ("300,20,10,200", "x1 must be greater than x0"),
        (
            "0,0,1100,200",
            "composite-0.jpg: box 0,0,1100,200 is not inside the image, which is 1024x768",
        ),
        ("0,0,20,200", "composite-0.jpg: box 0,0,20,200 is 20x200 pixels, too small"),
    ],
)
def test_cli_bad_box_exits_2_naming_the_query_and_its_size(
    fast_gallery_index: Path, composites: Composites, box: str, says: str
) -> None:
    result = run_cli("search", composites[0][0], "--index", fast_gallery_index, f"--box={box}")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert says in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


# -- the REST API --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(fast_gallery_index: Path) -> Iterator[TestClient]:
    settings = ServeSettings(index=fast_gallery_index)
    with TestClient(create_app(settings), base_url=LOCAL) as test_client:
        yield test_client


def _upload(path: Path) -> dict[str, tuple[str, bytes, str]]:
    return {"image": (path.name, path.read_bytes(), "image/jpeg")}


def test_rest_search_with_a_box(client: TestClient, composites: Composites) -> None:
    path, box, name = composites[4]
    boxed = client.post(f"/api/search?k=3&box={box.text()}", files=_upload(path))
    assert boxed.status_code == 200, boxed.text
    body = boxed.json()
    assert body["box"] == box.to_json() and body["matches"][0]["name"] == name
    plain = client.post("/api/search?k=3", files=_upload(path)).json()
    assert plain["box"] is None
    whole = client.post("/api/search?k=3&box=0,0,1024,768", files=_upload(path)).json()
    assert [m["id"] for m in whole["matches"]] == [m["id"] for m in plain["matches"]]
    copy = client.post(f"/api/search?k=3&verify=true&box={box.text()}", files=_upload(path))
    assert copy.status_code == 200 and copy.json()["matches"][0]["inliers"] >= 15


def test_rest_more_like_this_with_a_box(client: TestClient) -> None:
    image_id = 3
    info = client.get(f"/api/images/{image_id}/info").json()
    plain = client.get(f"/api/search/{image_id}?k=5").json()
    boxed = client.get(f"/api/search/{image_id}?k=5&box=0,0,64,64")
    assert boxed.status_code == 200, boxed.text
    body = boxed.json()
    assert body["box"] == [0, 0, 64, 64] and plain["box"] is None
    assert body["query"] == plain["query"] == info["path"]
    assert image_id not in [m["id"] for m in body["matches"]]
    assert [m["id"] for m in body["matches"]] != [m["id"] for m in plain["matches"]]


def test_rest_more_like_this_for_a_region_of_a_file_that_is_gone(
    small_photos: Path, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(small_photos, photos)
    index = tmp_path / "small.idx"
    with SearchEngine.create(index, embedder="pixels") as small:
        small.index_folder(photos, options=IndexOptions(workers=0))
        kept = small.record_by_path(str((photos / "animals" / "chelsea.jpg").resolve())).id
        gone = small.record_by_path(str((photos / "things" / "coffee.jpg").resolve())).id
    (photos / "things" / "coffee.jpg").unlink()
    with TestClient(create_app(ServeSettings(index=index)), base_url=LOCAL) as small_client:
        copy = small_client.get(f"/api/search/{kept}?k=3&verify=true&box=0,0,200,200")
        assert copy.status_code == 200 and copy.json()["box"] == [0, 0, 200, 200]
        assert all("inliers" in m and m["id"] != kept for m in copy.json()["matches"])
        response = small_client.get(f"/api/search/{gone}?box=0,0,100,100")
        assert small_client.get(f"/api/search/{gone}").status_code == 200  # its vector is kept
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail == "things/coffee.jpg: file not found"  # named, without the server's paths


@pytest.mark.parametrize(
    ("box", "says"),
    [
        ("1,2,3", "expected four numbers"),
        ("50,50,40,90", "x1 must be greater than x0"),
        ("0,0,1100,200", "box 0,0,1100,200 is not inside the image, which is 1024x768"),
        ("0,0,31,200", "too small for the network; make both sides at least 32 pixels"),
    ],
)
def test_rest_bad_box_is_a_400_naming_the_box_and_the_fix(
    client: TestClient, composites: Composites, box: str, says: str
) -> None:
    response = client.post(f"/api/search?box={box}", files=_upload(composites[0][0]))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "InvalidInputError"
    assert says in response.json()["detail"]
    by_id = client.get(f"/api/search/1?box={box}")
    assert by_id.status_code == 400 and by_id.json()["error"] == "InvalidInputError"


# -- the test: composites, the default network -------------------------------------------


@pytest.mark.heavy
def test_composites_find_their_original_first_only_with_the_box(
    gallery_index: Path, copy_set: CopySet, tmp_path: Path
) -> None:
    made = _composites(copy_set.originals, tmp_path, seed=16)
    n = len(made)
    with SearchEngine.open(gallery_index) as network:
        with_box = _firsts(network, made, boxed=True)
        without_box = _firsts(network, made, boxed=False)
    assert with_box == n and without_box < n, f"with box {with_box}/{n}, without {without_box}/{n}"
