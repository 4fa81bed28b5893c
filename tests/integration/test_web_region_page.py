"""The page's region box and heatmaps in a real headless Chromium (Debian's, driven by
Playwright; nothing downloaded) against a real `lookalike serve` with the default network on
the gallery index (8 colour originals among 210 distractors).

The query is a composite of four real photos, one per quarter; boxing the quarter that holds
`coffee` must bring coffee's original first. Screenshots are kept in the folder named by the
environment variable LOOKALIKE_ARTIFACTS if it is set, else in each test's pytest tmp dir."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from lookalike.evaluation.copies import skimage_originals
from lookalike.region import Box
from tests.composites import CANVAS
from tests.composites import composite as composite_with
from tests.helpers import CHROMIUM, served_copy, wait_until

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (CI installs it)"
    ),
]

#: The composite: coffee in the bottom-right quarter, three other originals around it.
TARGET, OTHERS, QUARTER = "coffee", ("astronaut", "chelsea", "rocket"), 3
WIDTH, HEIGHT = CANVAS
#: The keyboard step of the page: 1 % of the image's long side (Shift: 10 %).
STEP = round(max(WIDTH, HEIGHT) / 100)

ORIENTATION = 0x0112  # the EXIF tag
FIRST_NAME = "document.querySelector('#results > li .name')?.textContent"


@pytest.fixture(scope="module")
def composite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Box]:
    """The composite query and the box around the pasted target."""
    photos = dict(skimage_originals())
    image, box = composite_with(photos[TARGET], [photos[name] for name in OTHERS], QUARTER)
    path = tmp_path_factory.mktemp("composite") / "four-photos.jpg"
    image.save(path, quality=92)
    return path, box


@pytest.fixture(scope="module")
def server(gallery_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served_copy(gallery_index, tmp_path_factory.mktemp("served")) as url:
        yield url


class Requests:
    """The API requests a page sends, in order."""

    def __init__(self, page: Any) -> None:
        self.seen: list[tuple[str, str]] = []
        page.on("request", lambda r: self.seen.append((r.method, r.url)))

    def to(self, path: str) -> list[tuple[str, dict[str, list[str]]]]:
        found = []
        for method, url in self.seen:
            parts = urlsplit(url)
            if parts.path.startswith(path):
                found.append((method, parse_qs(parts.query)))
        return found

    def boxes(self) -> list[tuple[float, ...] | None]:
        """The box of each search request, None for a search of the whole image."""
        return [
            tuple(float(v) for v in query["box"][0].split(",")) if "box" in query else None
            for _, query in self.to("/api/search")
        ]


def _open(browser: Any, server: str, upload: Path, **context: Any) -> tuple[Any, Requests]:
    page = browser.new_page(**({"viewport": {"width": 1280, "height": 900}} | context))
    requests = Requests(page)
    page.goto(server)
    page.wait_for_selector("#index-info:has-text('218 images')")
    page.set_input_files("#file", str(upload))
    page.locator("#results > li").first.wait_for()
    wait_until(page, "!!document.querySelector('#query-preview').naturalWidth")
    return page, requests


def _names(page: Any) -> list[str]:
    names: list[str] = page.locator("#results > li .name").all_inner_texts()
    return names


def _searches_settle(page: Any, requests: Requests, count: int) -> None:
    """Wait for the ``count``-th search request, then for its answer on the page (the status
    says "Searching…" from the moment a request is sent until its answer is shown)."""
    deadline = time.monotonic() + 30
    while len(requests.boxes()) < count:
        assert time.monotonic() < deadline, f"only {len(requests.boxes())} searches were sent"
        page.wait_for_timeout(50)
    wait_until(page, "document.querySelector('#status').textContent.includes(' results')")


def test_box_a_quarter_of_the_query_and_its_original_comes_first(
    browser: Any, server: str, composite: tuple[Path, Box], artifacts: Path
) -> None:
    page, requests = _open(browser, server, composite[0])
    whole = _names(page)
    assert len(whole) == 12 and whole[0] != f"{TARGET}.jpg", whole
    assert requests.boxes() == [None]

    # Drag a box with the mouse around the pasted photo.
    target = composite[1]
    shown = page.locator("#query-preview").bounding_box()
    scale = shown["width"] / WIDTH

    def screen(x: float, y: float) -> tuple[float, float]:
        return shown["x"] + x * scale, shown["y"] + y * scale

    page.mouse.move(*screen(target.x0 + 1, target.y0 + 1))
    page.mouse.down()
    page.mouse.move(*screen(target.x1 - 1, target.y1 - 1), steps=12)
    page.mouse.up()
    wait_until(page, f"{FIRST_NAME} === '{TARGET}.jpg'")
    boxes = requests.boxes()
    assert len(boxes) == 2, boxes  # the drag sent one search, after the pointer was released
    box = boxes[1]
    assert box is not None
    x0, y0, x1, y1 = box
    # Within two displayed pixels of the photo's edges, in pixels of the image itself.
    slack = 2 / scale
    assert abs(x0 - target.x0) <= slack and abs(y0 - target.y0) <= slack, (box, target)
    assert abs(x1 - target.x1) <= slack and abs(y1 - target.y1) <= slack, (box, target)
    assert "for the region" in page.locator("#status").inner_text()
    page.screenshot(path=str(artifacts / "region-drag.png"), full_page=True)

    # Keyboard: the focused box moves one step; a focused corner resizes by ten (Shift).
    page.focus("#region")
    page.keyboard.press("ArrowLeft")
    _searches_settle(page, requests, 3)
    assert requests.boxes()[2] == (x0 - STEP, y0, x1 - STEP, y1)
    label = page.locator("#region").get_attribute("aria-label") or ""
    assert f"from {x0 - STEP:g},{y0:g} to {x1 - STEP:g},{y1:g}" in label
    page.focus("#region .handle.nw")
    page.keyboard.press("Shift+ArrowDown")
    _searches_settle(page, requests, 4)
    assert requests.boxes()[3] == (x0 - STEP, y0 + 10 * STEP, x1 - STEP, y1)

    # A box under 32 pixels is not sent; the page says why.
    page.mouse.move(shown["x"] + 6, shown["y"] + 6)
    page.mouse.down()
    page.mouse.move(shown["x"] + 14, shown["y"] + 14, steps=3)
    page.mouse.up()
    page.wait_for_selector("#region-hint:has-text('at least 32 pixels')")
    page.wait_for_timeout(600)
    assert len(requests.boxes()) == 4

    # Escape clears the box: the whole image's results again.
    page.keyboard.press("Escape")
    _searches_settle(page, requests, 5)
    assert requests.boxes()[4] is None
    wait_until(page, f"{FIRST_NAME} === '{whole[0]}'")
    assert _names(page) == whole
    assert page.locator("#region").is_hidden()

    # "Select region" puts a box in the middle for keyboard users; "Clear region" removes it.
    page.focus("#select-region")
    page.keyboard.press("Enter")
    _searches_settle(page, requests, 6)
    assert requests.boxes()[5] == (WIDTH / 4, HEIGHT / 4, 3 * WIDTH / 4, 3 * HEIGHT / 4)
    assert page.evaluate("document.activeElement.id") == "region"
    page.keyboard.press("Tab")  # the corners come next in the tab order
    assert page.evaluate("document.activeElement.dataset.corner") == "nw"
    assert "top-left corner" in (page.evaluate("document.activeElement.ariaLabel") or "")
    page.click("#clear-region")
    _searches_settle(page, requests, 7)
    assert requests.boxes()[6] is None
    wait_until(page, f"{FIRST_NAME} === '{whole[0]}'")
    page.close()


def test_a_touch_drag_boxes_an_upright_region_on_a_phone(
    browser: Any, server: str, composite: tuple[Path, Box], artifacts: Path, tmp_path: Path
) -> None:
    # The file is stored sideways with an EXIF orientation: the page and the server both work
    # in the upright picture's pixels.
    sideways = tmp_path / "sideways.jpg"
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # turn 90 degrees clockwise to show
    with Image.open(composite[0]) as upright:
        upright.transpose(Image.Transpose.ROTATE_90).save(sideways, quality=92, exif=exif)
    page, requests = _open(
        browser,
        server,
        sideways,
        viewport={"width": 390, "height": 844},
        has_touch=True,
        is_mobile=True,
    )
    natural = "(i => [i.naturalWidth, i.naturalHeight])(document.querySelector('#query-preview'))"
    assert page.evaluate(natural) == [WIDTH, HEIGHT]
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    target = composite[1]
    shown = page.locator("#query-preview").bounding_box()
    scale = shown["width"] / WIDTH
    x, y = shown["x"] + target.x0 * scale + 1, shown["y"] + target.y0 * scale + 1
    dx, dy = (target.x1 - target.x0) * scale - 2, (target.y1 - target.y0) * scale - 2
    touch = page.context.new_cdp_session(page)
    touch.send(
        "Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]}
    )
    for i in range(1, 9):
        point = {"x": x + i * dx / 8, "y": y + i * dy / 8}
        touch.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
    touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    wait_until(page, f"{FIRST_NAME} === '{TARGET}.jpg'")
    boxes = requests.boxes()
    assert len(boxes) == 2 and boxes[1] is not None, boxes
    slack = 2 / scale
    assert all(abs(a - b) <= slack for a, b in zip(boxes[1], target.to_json(), strict=True))
    page.screenshot(path=str(artifacts / "region-phone.png"), full_page=True)
    page.close()


PAINTED = """(selector) => {
  const canvas = document.querySelector(selector);
  if (!canvas || canvas.hidden || !canvas.width) return 0;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let count = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) count += 1;
  return count;
}"""

ALPHA_AT = """([selector, fx, fy]) => {
  const canvas = document.querySelector(selector);
  const x = Math.floor(fx * canvas.width), y = Math.floor(fy * canvas.height);
  return canvas.getContext('2d').getImageData(x, y, 1, 1).data[3];
}"""


def _text(box: tuple[float, ...] | None) -> str:
    assert box is not None
    return ",".join(f"{v:g}" for v in box)


def test_why_draws_heatmaps_over_the_result_and_the_query(
    browser: Any, server: str, composite: tuple[Path, Box], artifacts: Path
) -> None:
    page, requests = _open(browser, server, composite[0])
    first = page.locator("#results > li").first
    assert page.locator("#results .why").count() == 12
    first_id = first.get_attribute("data-id")
    first.locator(".why").click()
    wait_until(page, "document.querySelector('#results > li .why').ariaPressed === 'true'")
    result_heat = "#results > li:first-child .heat"
    assert page.evaluate(PAINTED, result_heat) > 0
    assert page.evaluate(PAINTED, "#query-heat") > 0
    method, query = requests.to("/api/explain")[-1]
    assert method == "POST" and query == {"id": [first_id]}
    assert _names(page)[0] == first.locator(".name").inner_text()  # not "more like this"
    page.screenshot(path=str(artifacts / "heatmaps.png"), full_page=True)

    # The query's toggle hides and shows its own overlay only.
    page.click("#query-why")
    assert page.evaluate(PAINTED, "#query-heat") == 0
    assert page.evaluate(PAINTED, result_heat) > 0
    page.click("#query-why")
    assert page.evaluate(PAINTED, "#query-heat") > 0

    # Toggle off: both overlays are gone.
    first.locator(".why").click()
    assert page.evaluate(PAINTED, result_heat) == 0
    assert page.evaluate(PAINTED, "#query-heat") == 0
    assert page.locator(f"{result_heat}").is_hidden()

    # With a box, the explanation is of that region: the query's overlay is cold outside it.
    page.click("#select-region")
    _searches_settle(page, requests, 2)
    assert "for the region" in page.locator("#status").inner_text()
    box = requests.boxes()[1]
    boxed_id = first.get_attribute("data-id")
    first.locator(".why").click()
    wait_until(page, "document.querySelector('#results > li .why').ariaPressed === 'true'")
    method, query = requests.to("/api/explain")[-1]
    assert method == "POST" and query == {"id": [boxed_id], "box": [_text(box)]}
    assert page.evaluate(PAINTED, "#query-heat") > 0
    assert page.evaluate(ALPHA_AT, ["#query-heat", 0.05, 0.05]) == 0  # outside the middle box
    page.screenshot(path=str(artifacts / "heatmaps-region.png"), full_page=True)
    page.keyboard.press("Escape")
    _searches_settle(page, requests, 3)
    wait_until(page, f"document.querySelector('#results > li').dataset.id === '{first_id}'")

    # More like this, then why: two indexed images, explained by id.
    first.locator(".thumb img").click()
    wait_until(page, f"document.querySelector('#results > li').dataset.id !== '{first_id}'")
    second_id = page.locator("#results > li").first.get_attribute("data-id")
    page.locator("#results > li .why").first.click()
    wait_until(page, "document.querySelector('#results > li .why').ariaPressed === 'true'")
    method, query = requests.to("/api/explain")[-1]
    assert method == "GET" and query == {"query_id": [first_id], "id": [second_id]}
    assert page.evaluate(PAINTED, result_heat) > 0
    assert page.evaluate(PAINTED, "#query-heat") > 0
    page.close()


def test_a_heatmap_lies_on_the_picture_and_follows_its_numbers(
    browser: Any, server: str, composite: tuple[Path, Box]
) -> None:
    """The page's drawing of a heatmap, on a real thumbnail: the overlay covers exactly the
    picture (not the letterbox around it) and is warm where the numbers are high."""
    page, _ = _open(browser, server, composite[0])
    wait_until(page, "document.querySelector('#results img').complete")
    drawn = page.evaluate(
        """async () => {
          const { drawHeatmap, clearHeatmap } = await import('/static/heatmap.js');
          const img = document.querySelector('#results > li .thumb img');
          const canvas = document.querySelector('#results > li .thumb .heat');
          drawHeatmap(canvas, img, [[0, 0, 0], [0, 0, 1]]);
          const pixels = canvas.getContext('2d')
            .getImageData(0, 0, canvas.width, canvas.height).data;
          const alpha = (fx, fy) => pixels[4 * (Math.floor(fy * canvas.height) * canvas.width
            + Math.floor(fx * canvas.width)) + 3];
          const shown = canvas.getBoundingClientRect();
          const box = img.getBoundingClientRect();
          const result = {
            warm: alpha(0.9, 0.85), cold: alpha(0.1, 0.2), hidden: canvas.hidden,
            canvas: [shown.width, shown.height], box: [box.width, box.height],
            natural: [img.naturalWidth, img.naturalHeight],
          };
          clearHeatmap(canvas);
          result.after = canvas.hidden;
          return result;
        }"""
    )
    assert drawn["warm"] > 100 and drawn["cold"] == 0 and not drawn["hidden"], drawn
    # object-fit: contain: the overlay has the picture's shape inside the thumbnail's box.
    (width, height), (box_w, box_h), (nat_w, nat_h) = (
        drawn["canvas"],
        drawn["box"],
        drawn["natural"],
    )
    assert width <= box_w + 0.5 and height <= box_h + 0.5, drawn
    assert abs(width / height - nat_w / nat_h) < 0.02, drawn
    assert drawn["after"]
    page.close()
