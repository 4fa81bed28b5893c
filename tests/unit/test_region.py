"""The region of a query image: parsing, checking against the image, cutting it out."""

from __future__ import annotations

import pytest
from PIL import Image

from lookalike.errors import InvalidInputError
from lookalike.region import MIN_BOX_SIDE, Box


def test_parse_reads_four_numbers_with_spaces_and_fractions() -> None:
    assert Box.parse(" 10, 20.5,110 ,220") == Box(10, 20.5, 110, 220)
    assert Box.parse("10,20,110,220").size == (100, 200)
    assert Box.parse(Box(1, 2, 40, 50).text()) == Box(1, 2, 40, 50)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("10,20,110", "expected four numbers"),
        ("a,b,c,d", "expected four numbers"),
        ("", "expected four numbers"),
        ("110,20,10,220", "x1 must be greater than x0"),
        ("10,220,110,20", "y1 must be greater than y0"),
        ("10,10,10,50", "x1 must be greater than x0"),
        ("nan,0,50,50", "finite"),
    ],
)
def test_parse_refuses_bad_text_with_the_fix(text: str, says: str) -> None:
    with pytest.raises(InvalidInputError, match=says):
        Box.parse(text)


def test_check_refuses_a_box_outside_the_image_naming_its_size() -> None:
    with pytest.raises(InvalidInputError, match=r"q\.jpg: box 0,0,401,100 .* 400x300"):
        Box(0, 0, 401, 100).check(400, 300, name="q.jpg")
    with pytest.raises(InvalidInputError, match="not inside"):
        Box(-1, 0, 100, 100).check(400, 300)
    Box(0, 0, 400, 300).check(400, 300)  # the whole image is a region


def test_check_refuses_a_region_too_small_for_the_network() -> None:
    side = MIN_BOX_SIDE
    Box(0, 0, side, side).check(400, 300)
    with pytest.raises(InvalidInputError, match=f"at least {side} pixels"):
        Box(0, 0, side - 1, 200).check(400, 300)


def test_crop_cuts_out_exactly_the_region() -> None:
    image = Image.new("RGB", (400, 300), (0, 0, 0))
    image.paste((255, 0, 0), (100, 50, 200, 150))
    region = Box(100, 50, 200, 150).crop(image)
    assert region.size == (100, 100)
    assert region.getextrema() == ((255, 255), (0, 0), (0, 0))
    assert Box(0, 0, 200, 100).scaled(0.5, 0.5) == Box(0, 0, 100, 50)
