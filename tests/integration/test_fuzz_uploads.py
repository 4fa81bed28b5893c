"""Fuzzing the decoder and the upload route with mutated real image files (Hypothesis,
derandomised): whatever the bytes, the decoder raises only ImageError and the server answers
only 2xx or 4xx, never a 5xx, never hangs."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from lookalike import SearchEngine
from lookalike.embedders.base import InputSpec
from lookalike.errors import ImageError, LookalikeError
from lookalike.imaging import load_prepared
from lookalike.web.app import create_app
from lookalike.web.settings import ServeSettings
from tests.conftest import FAST_EMBEDDER

SPEC = InputSpec(size=32, crop_fraction=1.0)
FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "TIFF")
#: Each decode of a small mutated file must finish well within this (a hang fails the test).
DECODE_SECONDS = 5.0


def _seeds() -> dict[str, bytes]:
    """Small real photos from scikit-image in each format."""
    import skimage.data

    photo = Image.fromarray(skimage.data.chelsea()).resize((96, 64))
    files = {}
    for kind in FORMATS:
        buffer = io.BytesIO()
        image = photo.convert("P") if kind == "GIF" else photo
        image.save(buffer, format=kind)
        files[kind] = buffer.getvalue()
    return files


SEEDS = _seeds()
#: File names and content types a client can send at all (no control characters).
HEADER_TEXT = st.characters(exclude_categories=("Cc", "Cs"))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real file with a few bytes flipped, a slice cut, bytes inserted or truncated."""
    data = bytearray(SEEDS[draw(st.sampled_from(FORMATS))])
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(("flip", "cut", "insert", "truncate", "header")))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "flip" and data:
            data[position] = draw(st.integers(0, 255))
        elif action == "header" and data:  # headers hold the sizes: hit them often
            spot = min(position, 40)
            data[spot] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[position : position + draw(st.integers(1, 64))]
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[position:]
    return bytes(data)


@settings(
    derandomize=True,
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(mutated())
def test_decoder_raises_only_image_errors(data: bytes) -> None:
    started = time.monotonic()
    try:
        pixels = load_prepared(data, SPEC, max_pixels=40_000_000)
    except ImageError:
        pass
    else:
        assert pixels.shape == (32, 32, 3) and pixels.dtype.name == "uint8"
    assert time.monotonic() - started < DECODE_SECONDS


@pytest.fixture(scope="module")
def client(small_photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    index = tmp_path_factory.mktemp("fuzz") / "small.idx"
    with SearchEngine.create(index, embedder=FAST_EMBEDDER) as engine:
        engine.index_folder(small_photos)
    with TestClient(create_app(ServeSettings(index=index)), base_url="http://127.0.0.1") as tc:
        yield tc


def _check(response_status: int, body: dict[str, object]) -> None:
    assert response_status < 500, body
    if response_status >= 400:
        assert set(body) == {"error", "detail"}


@settings(
    derandomize=True,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    data=mutated(), name=st.text(HEADER_TEXT, max_size=40), kind=st.text(HEADER_TEXT, max_size=30)
)
def test_upload_route_never_answers_5xx(
    client: TestClient, data: bytes, name: str, kind: str
) -> None:
    response = client.post("/api/search?k=3", files={"image": (name, data, kind or None)})
    _check(response.status_code, response.json())


def _envelope(boundary: bytes, part: bytes) -> bytes:
    return b"--" + boundary + b"\r\n" + part + b"\r\n--" + boundary + b"--\r\n"


@settings(
    derandomize=True,
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    boundary=st.binary(min_size=0, max_size=20),
    header_boundary=st.one_of(st.none(), st.binary(min_size=0, max_size=20)),
    part=st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda disposition, image: disposition + b"\r\n\r\n" + image,
            st.sampled_from(
                (
                    b'Content-Disposition: form-data; name="image"; filename="a.jpg"',
                    b'Content-Disposition: form-data; name="image"',
                    b"Content-Disposition: form-data",
                    b"Content-Disposition: attachment; name=\"image\"; filename*=UTF-8''%ff",
                    b"",
                )
            ),
            mutated(),
        ),
    ),
    cut=st.integers(0, 400),
)
def test_malformed_multipart_never_answers_5xx(
    client: TestClient, boundary: bytes, header_boundary: bytes | None, part: bytes, cut: int
) -> None:
    body = _envelope(boundary, part)
    body = body[: len(body) - cut] if cut < len(body) else body
    declared = boundary if header_boundary is None else header_boundary
    content_type = b"multipart/form-data; boundary=" + declared
    response = client.post(
        "/api/search",
        content=body,
        headers={b"content-type": content_type},
    )
    _check(response.status_code, response.json())


def test_library_errors_are_the_only_ones() -> None:
    """The decoder's contract the fuzzers check: ImageError is a LookalikeError."""
    assert issubclass(ImageError, LookalikeError)
    with pytest.raises(ImageError):
        load_prepared(SEEDS["PNG"][:50], SPEC)
