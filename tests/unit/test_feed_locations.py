"""The pure parts of the feed downloader: where a location points, which format bytes are, how
long to wait before a retry."""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from PIL import Image

from lookalike.evaluation.copies import skimage_originals
from lookalike.feeds.locations import (
    BadLocationError,
    Location,
    normalise_url,
    parse_location,
    resolve_redirect,
)
from lookalike.feeds.retry_policy import backoff_delay, retry_after_seconds, retry_delay
from lookalike.feeds.sniffing import SNIFF_BYTES, image_extension


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("http://Shop.Example/a b/é.jpg", "http://shop.example/a%20b/%C3%A9.jpg"),
        ("https://shop.example/img?name=blue shoe&w=800", None),
        ("http://shop.example/already%20encoded%2Fslash.jpg", None),
        ("http://shop.example/100%.jpg", "http://shop.example/100%25.jpg"),
        ("http://bücher.example:8080/x.jpg#zoom", "http://xn--bcher-kva.example:8080/x.jpg"),
        ("HTTPS://shop.example", "https://shop.example/"),
    ],
)
def test_urls_are_percent_encoded_as_servers_expect(given: str, sent: str | None) -> None:
    expected = sent or given.replace(" ", "%20")
    assert normalise_url(given) == expected
    assert normalise_url(expected) == expected  # idempotent: nothing is encoded twice


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "ftp://shop.example/a.jpg",
        "javascript:alert(1)",
        "data:image/png;base64,iVBORw0KGgo=",
        "mailto:shop@shop.example",
        "http:///a.jpg",
        "http://shop.example:99999/a.jpg",
        "file://other-host/a.jpg",
    ],
)
def test_other_locations_are_refused(text: str) -> None:
    with pytest.raises(BadLocationError):
        parse_location(text)


def test_local_files_and_file_urls_are_paths() -> None:
    assert parse_location("photos/a b.jpg") == Location(path=Path("photos/a b.jpg"))
    assert parse_location("file:///data/a%20b.jpg") == Location(path=Path("/data/a b.jpg"))
    assert parse_location("file://localhost/data/x.jpg").path == Path("/data/x.jpg")
    assert parse_location("https://shop.example/x.jpg").host == "shop.example:443"
    assert parse_location("http://shop.example:81/x.jpg").host == "shop.example:81"
    assert parse_location("//cdn.example/x y.jpg").url == "https://cdn.example/x%20y.jpg"


def test_redirects_resolve_against_the_url_they_came_from() -> None:
    base = "http://shop.example/a/b.jpg"
    assert resolve_redirect(base, "c d.jpg") == "http://shop.example/a/c%20d.jpg"
    assert resolve_redirect(base, "//cdn.example/x.jpg") == "http://cdn.example/x.jpg"
    with pytest.raises(BadLocationError):
        resolve_redirect(base, "file:///etc/passwd")  # a server cannot send us to local files


def encoded(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def test_formats_are_told_from_their_bytes() -> None:
    photo = skimage_originals()[0][1].resize((64, 48))
    expected = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp"}
    expected |= {"TIFF": "tif", "AVIF": "avif"}
    for fmt, ext in expected.items():
        assert image_extension(encoded(photo, fmt)[:SNIFF_BYTES]) == ext, fmt
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"
    assert image_extension(heic) == "heic"
    mp4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    for other in (b"<!doctype html><html>", b"", b"%PDF-1.7", mp4, b'{"error": 404}'):
        assert image_extension(other) is None, other


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert retry_after_seconds("120", now=now) == 120.0
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert retry_after_seconds(later, now=now) == 90.0
    earlier = format_datetime(now - timedelta(seconds=90), usegmt=True)
    assert retry_after_seconds(earlier, now=now) == 0.0
    assert retry_after_seconds("soon", now=now) is None
    assert retry_after_seconds(None) is None


def test_backoff_is_full_jitter_doubling_and_seeded() -> None:
    waits = [backoff_delay(attempt, 0.5, random.Random(1)) for attempt in range(4)]
    assert waits == [backoff_delay(attempt, 0.5, random.Random(1)) for attempt in range(4)]
    rng = random.Random(2)
    for attempt in range(4):
        samples = [backoff_delay(attempt, 0.5, rng) for _ in range(500)]
        assert min(samples) >= 0 and max(samples) < 0.5 * 2**attempt
        assert max(samples) > 0.9 * 0.5 * 2**attempt  # the whole range is used
    assert retry_delay(0, retry_after=3600, base=0.5, max_retry_after=60, rng=rng) == 60
    assert retry_delay(5, retry_after=2, base=0.5, max_retry_after=60, rng=rng) == 2
