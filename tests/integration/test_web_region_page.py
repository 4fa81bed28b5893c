"""The page's region box and heatmaps in a real headless Chromium (Debian's, driven by
Playwright; nothing downloaded) against a real `lookalike serve` with the default network on
the gallery index (8 colour originals among 210 distractors).

The query is a composite of four real photos, one per quarter; boxing the quarter that holds
`coffee` must bring coffee's original first. Screenshots are kept in the folder named by the
environment variable LOOKALIKE_ARTIFACTS if it is set, else in each test's pytest tmp dir."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from lookalike.evaluation.copies import skimage_originals
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, Server, wait_until

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (CI installs it)"
    ),
]

#: The composite's quarters, left to right then top to bottom: the target is bottom-right.
TILES = ("astronaut", "chelsea", "rocket", "coffee")
TARGET = "coffee.jpg"
WIDTH, HEIGHT = 640, 480
#: The keyboard step of the page: 1 % of the image's long side (Shift: 10 %).
STEP = round(max(WIDTH, HEIGHT) / 100)

FIRST_NAME = "document.querySelector('#results > li .name')?.textContent"


@pytest.fixture(scope="module")
def composite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    photos = dict(skimage_originals())
    canvas = Image.new("RGB", (WIDTH, HEIGHT))
    half_w, half_h = WIDTH // 2, HEIGHT // 2
    for i, name in enumerate(TILES):
        tile = photos[name].resize((half_w, half_h), Image.Resampling.LANCZOS)
        canvas.paste(tile, ((i % 2) * half_w, (i // 2) * half_h))
    path = tmp_path_factory.mktemp("composite") / "four-photos.jpg"
    canvas.save(path, quality=92)
    return path


@pytest.fixture(scope="module")
def server(gallery_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    index = tmp_path_factory.mktemp("served") / "gallery.idx"
    shutil.copytree(gallery_index, index, ignore=shutil.ignore_patterns("lock"))
    running = Server(index)
    yield running.url
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        yield launched
        launched.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("LOOKALIKE_ARTIFACTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


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


def _open(browser: Any, server: str, composite: Path, **context: Any) -> tuple[Any, Requests]:
    page = browser.new_page(**({"viewport": {"width": 1280, "height": 900}} | context))
    requests = Requests(page)
    page.goto(server)
    page.wait_for_selector("#index-info:has-text('218 images')")
    page.set_input_files("#file", str(composite))
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
    browser: Any, server: str, composite: Path, artifacts: Path
) -> None:
    page, requests = _open(browser, server, composite)
    whole = _names(page)
    assert len(whole) == 12 and whole[0] != TARGET, whole
    assert requests.boxes() == [None]

    # Drag a box with the mouse around the bottom-right quarter, where coffee is pasted.
    shown = page.locator("#query-preview").bounding_box()
    left, top = shown["x"] + shown["width"] / 2 + 2, shown["y"] + shown["height"] / 2 + 2
    page.mouse.move(left, top)
    page.mouse.down()
    page.mouse.move(shown["x"] + shown["width"] - 1, shown["y"] + shown["height"] - 1, steps=12)
    page.mouse.up()
    wait_until(page, f"{FIRST_NAME} === '{TARGET}'")
    boxes = requests.boxes()
    assert len(boxes) == 2, boxes  # the drag sent one search, after the pointer was released
    box = boxes[1]
    assert box is not None
    x0, y0, x1, y1 = box
    assert WIDTH / 2 <= x0 <= WIDTH / 2 + 10 and HEIGHT / 2 <= y0 <= HEIGHT / 2 + 10, box
    assert x1 >= WIDTH - 6 and y1 >= HEIGHT - 6 and x1 <= WIDTH and y1 <= HEIGHT, box
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
    page.click("#select-region")
    _searches_settle(page, requests, 6)
    assert requests.boxes()[5] == (WIDTH / 4, HEIGHT / 4, 3 * WIDTH / 4, 3 * HEIGHT / 4)
    assert page.evaluate("document.activeElement.id") == "region"
    page.click("#clear-region")
    _searches_settle(page, requests, 7)
    assert requests.boxes()[6] is None
    wait_until(page, f"{FIRST_NAME} === '{whole[0]}'")
    page.close()


def test_a_touch_drag_boxes_the_query_on_a_phone(
    browser: Any, server: str, composite: Path, artifacts: Path
) -> None:
    page, requests = _open(
        browser,
        server,
        composite,
        viewport={"width": 390, "height": 844},
        has_touch=True,
        is_mobile=True,
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    shown = page.locator("#query-preview").bounding_box()
    touch = page.context.new_cdp_session(page)
    x, y = shown["x"] + shown["width"] / 2 + 2, shown["y"] + shown["height"] / 2 + 2
    touch.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for i in range(1, 9):
        point = {"x": x + i * shown["width"] / 18, "y": y + i * shown["height"] / 18}
        touch.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
    touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    wait_until(page, f"{FIRST_NAME} === '{TARGET}'")
    box = requests.boxes()[-1]
    assert box is not None and len(requests.boxes()) == 2
    assert WIDTH / 2 <= box[0] <= WIDTH / 2 + 12 and HEIGHT / 2 <= box[1] <= HEIGHT / 2 + 12, box
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


def test_why_draws_heatmaps_over_the_result_and_the_query(
    browser: Any, server: str, composite: Path, artifacts: Path
) -> None:
    page, requests = _open(browser, server, composite)
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
