"""A photo archive's formats end to end: a folder mixing JPEGs with HEIC, AVIF and DNG files
(real files of real photos, stored turned with orientation tags) is indexed, searched by file
and by upload, verified in copy mode, thumbnailed and explained like JPEGs; damaged files are
skipped with their names."""

from __future__ import annotations

import io
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookalike import SearchEngine
from lookalike.evaluation.copies import skimage_originals
from lookalike.web.app import create_app
from lookalike.web.settings import ServeSettings
from tests.archive_files import avif_bytes, correlation, heic_bytes, write_dng
from tests.conftest import FAST_EMBEDDER

LOCAL = "http://127.0.0.1"


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {name: np.asarray(image) for name, image in skimage_originals()}


@pytest.fixture(scope="module")
def archive(
    small_photos: Path, photos: dict[str, np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """small_photos' six JPEGs, three other photos as HEIC, AVIF and DNG (each stored turned,
    the DNG with a camera-style preview), and two damaged files."""
    root = tmp_path_factory.mktemp("archive") / "photos"
    shutil.copytree(small_photos, root)
    phone = root / "phone"
    phone.mkdir()
    (phone / "hubble.heic").write_bytes(
        heic_bytes(photos["hubble_deep_field"], orientation=6, taken="2022:07:14 09:15:00")
    )
    (phone / "tissue.avif").write_bytes(avif_bytes(photos["immunohistochemistry"], orientation=3))
    camera = root / "camera"
    camera.mkdir()
    grey = np.asarray(Image.open(io.BytesIO(_png_of_camera())).convert("RGB"))
    write_dng(camera / "cameraman.dng", grey, orientation=8, preview_side=256)
    (phone / "broken.heic").write_bytes(heic_bytes(photos["coffee"])[:3000])
    (camera / "broken.nef").write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    return root


def _png_of_camera() -> bytes:
    from skimage import data

    out = io.BytesIO()
    Image.fromarray(data.camera()).save(out, format="PNG")  # type: ignore[no-untyped-call]
    return out.getvalue()


@pytest.fixture(scope="module")
def archive_index(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("indexes") / "archive.idx"
    with SearchEngine.create(directory, embedder=FAST_EMBEDDER) as engine:
        report = engine.index_folder(archive)
    assert report.added == 9, report
    skipped = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(skipped) == {"broken.heic", "broken.nef"}
    assert "damaged or truncated HEIC/HEIF" in skipped["broken.heic"]
    assert "cannot read this camera RAW file" in skipped["broken.nef"]
    return directory


def test_mixed_folder_is_indexed_and_each_file_finds_itself(
    archive: Path, archive_index: Path
) -> None:
    files = [archive / "phone" / "hubble.heic", archive / "phone" / "tissue.avif"]
    files.append(archive / "camera" / "cameraman.dng")
    with SearchEngine.open(archive_index) as engine:
        assert len(engine) == 9
        results = engine.search(files, k=2)
    for path, result in zip(files, results, strict=True):
        top = result.matches[0]
        assert Path(top.path).name == path.name and top.score > 0.999
        assert result.matches[1].score < 0.95  # and nothing else looks like it


def test_heic_avif_and_dng_copies_find_their_jpeg_originals(
    archive_index: Path, photos: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """Queries from outside the index, stored turned: each finds its JPEG at rank 1, also in
    copy mode (the verifier decodes the query the same way)."""
    queries = {
        "chelsea.jpg": tmp_path / "cat.heic",
        "coffee.jpg": tmp_path / "cup.avif",
        "rocket.jpg": tmp_path / "launch.dng",
    }
    queries["chelsea.jpg"].write_bytes(heic_bytes(photos["chelsea"], orientation=6))
    queries["coffee.jpg"].write_bytes(avif_bytes(photos["coffee"], orientation=8))
    write_dng(queries["rocket.jpg"], photos["rocket"], orientation=6)
    with SearchEngine.open(archive_index) as engine:
        plain = engine.search(list(queries.values()), k=3)
        verified = engine.search(list(queries.values()), k=3, verify=True)
    for original, result, checked in zip(queries, plain, verified, strict=True):
        assert Path(result.matches[0].path).name == original, result
        top = checked.matches[0]
        assert Path(top.path).name == original
        assert top.inliers is not None and top.inliers > 20, checked


@pytest.fixture(scope="module")
def client(archive_index: Path) -> Iterator[TestClient]:
    with TestClient(create_app(ServeSettings(index=archive_index)), base_url=LOCAL) as test:
        yield test


def test_heic_upload_searches_and_heic_thumbnail_is_an_upright_jpeg(
    client: TestClient, archive: Path, archive_index: Path, photos: dict[str, np.ndarray]
) -> None:
    upload = heic_bytes(photos["chelsea"], orientation=8)
    response = client.post(
        "/api/search?k=3", files={"image": ("IMG_0001.HEIC", upload, "image/heic")}
    )
    assert response.status_code == 200, response.text
    assert response.json()["matches"][0]["name"] == "chelsea.jpg"

    with SearchEngine.open(archive_index) as engine:
        heic_id = engine.record_by_path(str((archive / "phone" / "hubble.heic").resolve())).id
        dng_id = engine.record_by_path(str((archive / "camera" / "cameraman.dng").resolve())).id
    cameraman = np.asarray(Image.open(io.BytesIO(_png_of_camera())).convert("RGB"))
    for image_id, upright in ((heic_id, photos["hubble_deep_field"]), (dng_id, cameraman)):
        thumb = client.get(f"/api/images/{image_id}/thumbnail?size=128")
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        with Image.open(io.BytesIO(thumb.content)) as image:
            assert image.format == "JPEG" and max(image.size) == 128
            pixels = np.asarray(image.convert("RGB"))
        # Upright: the photo's proportions, and its pixels, not those turned half a turn.
        assert (pixels.shape[1] > pixels.shape[0]) == (upright.shape[1] > upright.shape[0])
        turned = correlation(pixels, upright[::-1, ::-1].copy())
        assert correlation(pixels, upright) > max(0.6, turned + 0.2)


@pytest.mark.heavy
def test_real_network_finds_and_explains_heic_and_dng_queries(
    gallery_index: Path, gallery: Path, photos: dict[str, np.ndarray], tmp_path: Path
) -> None:
    heic = tmp_path / "cat.heic"
    heic.write_bytes(heic_bytes(photos["chelsea"], orientation=6))
    dng = write_dng(tmp_path / "cat.dng", photos["chelsea"], orientation=8, preview_side=320)
    original = str((gallery / "originals" / "chelsea.jpg").resolve())
    with SearchEngine.open(gallery_index) as engine:
        results = engine.search([heic, dng], k=1)
        assert [r.matches[0].path for r in results] == [original, original]
        chelsea = engine.record_by_path(original).id
        for query, size in ((heic, (451, 300)), (dng, (450, 300))):
            explanation = engine.explain(query, chelsea)
            assert explanation.query_size == size
            rows, cols = explanation.query_heatmap.shape
            assert cols > rows  # the heatmap lies on the upright picture
            assert explanation.score > 0.8


def test_without_the_archive_extra_such_files_are_skipped_with_the_hint(
    photos: dict[str, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulated: importing pillow-heif and rawpy fails, as where they are not installed."""
    from lookalike import image_formats

    folder = tmp_path / "card"
    folder.mkdir()
    Image.fromarray(photos["coffee"]).save(folder / "cup.jpg", quality=90)
    (folder / "cat.heic").write_bytes(heic_bytes(photos["chelsea"]))
    write_dng(folder / "rocket.dng", photos["rocket"], preview_side=128)
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    monkeypatch.setitem(sys.modules, "rawpy", None)
    monkeypatch.setattr(image_formats, "_heif_registered", False)
    with SearchEngine.create(tmp_path / "card.idx", embedder=FAST_EMBEDDER) as engine:
        report = engine.index_folder(folder)
    assert report.added == 1
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    hint = "install the archive extra (pip install 'lookalike[archive]')"
    assert reasons == {
        "cat.heic": f"HEIC/HEIF needs pillow-heif: {hint}",
        "rocket.dng": f"camera RAW needs rawpy: {hint}",
    }
