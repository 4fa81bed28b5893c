"""The page's duplicates view (#duplicates) in a real headless Chromium (Debian's, driven by
Playwright; nothing downloaded) against a real `lookalike serve` with the default network.

The folder: three real photos each with one copy (a half-size re-encode of coffee and of rocket,
a byte-identical backup of chelsea) among four unrelated real photos. The view must show the
three pairs side by side with their thumbnails and facts, let the user pick the other copy as
keeper (mouse and keyboard) and download a plan that names it, and forget a pair the user marks
"not a duplicate" for good (a reload does not bring it back)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from lookalike import SearchEngine
from lookalike.evaluation.copies import skimage_originals
from tests.helpers import CHROMIUM, served_copy, wait_until

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (CI installs it)"
    ),
]

#: Each original's copy, relative to the folder.
COPIES = {
    "coffee.jpg": "copies/coffee-half.jpg",
    "chelsea.jpg": "backup/chelsea.jpg",
    "rocket.jpg": "copies/rocket-half.jpg",
}
GREY = ("camera", "coins", "moon")

GROUPS = (
    "[...document.querySelectorAll('#dup-groups > li')].map(g => "
    "[...g.querySelectorAll('.dup-member .name')].map(n => n.textContent).sort())"
)
THUMBNAILS_LOADED = (
    "document.querySelectorAll('#dup-groups img').length > 0 && "
    "[...document.querySelectorAll('#dup-groups img')].every(i => i.complete && i.naturalWidth > 0)"
)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import skimage.data

    root = tmp_path_factory.mktemp("archive") / "photos"
    for folder in ("originals", "copies", "backup", "others"):
        (root / folder).mkdir(parents=True)
    originals = dict(skimage_originals())
    for name in ("coffee", "chelsea", "rocket", "astronaut"):
        originals[name].save(root / "originals" / f"{name}.jpg", quality=92)
    for name in ("coffee", "rocket"):
        image = originals[name]
        half = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
        half.save(root / COPIES[f"{name}.jpg"], quality=80)
    (root / COPIES["chelsea.jpg"]).write_bytes((root / "originals" / "chelsea.jpg").read_bytes())
    for name in GREY:
        pixels = getattr(skimage.data, name)()
        Image.fromarray(pixels).convert("RGB").save(root / "others" / f"{name}.jpg", quality=92)
    return root


@pytest.fixture(scope="module")
def archive_index(photos: Path) -> Path:
    index = photos.parent / "archive.idx"
    with SearchEngine.create(index) as engine:
        engine.index_folder(photos)
    return index


@pytest.fixture(scope="module")
def server(archive_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Read-only, as `serve` is by default."""
    with served_copy(archive_index, tmp_path_factory.mktemp("served")) as url:
        yield url


def _expected() -> list[list[str]]:
    return sorted(sorted([f"originals/{name}", copy]) for name, copy in COPIES.items())


def _open(browser: Any, server: str, **context: Any) -> Any:
    page = browser.new_page(**({"viewport": {"width": 1280, "height": 900}} | context))
    page.goto(f"{server}/#duplicates")
    wait_until(page, "document.querySelectorAll('#dup-groups > li').length > 0")
    wait_until(page, THUMBNAILS_LOADED)
    return page


def _group(page: Any, path: str) -> Any:
    return page.locator("#dup-groups > li").filter(has=page.locator(f".name:text-is('{path}')"))


def _member(page: Any, path: str) -> Any:
    return page.locator(".dup-member").filter(has=page.locator(f".name:text-is('{path}')"))


def _keeper(page: Any, path: str) -> str:
    text: str = _group(page, path).locator(".dup-member.kept .name").inner_text()
    return text


def test_groups_of_real_copies_are_shown_with_their_facts(
    browser: Any, server: str, photos: Path, artifacts: Path
) -> None:
    page = _open(browser, server)
    assert sorted(page.evaluate(GROUPS)) == _expected()
    assert page.locator("#duplicates-view").is_visible()
    assert not page.locator("#search-view").is_visible()
    assert "3 groups of duplicates (6 files) among 10 images" in page.inner_text("#dup-status")
    for group in page.locator("#dup-groups > li").all():
        # One keeper per group, marked, with its reason, and its radio button checked.
        assert group.locator(".dup-member.kept").count() == 1
        assert group.locator(".dup-member.kept .dup-keeper").inner_text().startswith("Keeper: ")
        assert group.locator(".dup-member.kept input[type=radio]").is_checked()
        # The other member says how it relates to the keeper.
        assert "of the keeper" in group.locator(".dup-member:not(.kept) .dup-tier").inner_text()
    # The facts are those of the files themselves.
    card = page.locator(".dup-member").filter(
        has=page.locator(".name:text-is('copies/coffee-half.jpg')")
    )
    with Image.open(photos / "copies" / "coffee-half.jpg") as half:
        resolution = f"{half.width}\N{MULTIPLICATION SIGN}{half.height} · JPEG"
    facts = card.locator(".meta").inner_text()
    assert resolution in facts and "no date taken" in facts, facts
    size = (photos / "copies" / "coffee-half.jpg").stat().st_size
    assert f"{size / 1024:.0f} KB" in facts or f"{size / 1024:.1f} KB" in facts, facts
    # The keep rules chose the full-size coffee over its half-size copy, and say so.
    assert _keeper(page, "copies/coffee-half.jpg") == "originals/coffee.jpg"
    reason = _group(page, "copies/coffee-half.jpg").locator(".dup-keeper:visible").inner_text()
    assert "resolution" in reason, reason
    # The byte-identical backup is labelled so.
    assert "identical file" in _group(page, "backup/chelsea.jpg").inner_text()
    # A read-only server: nothing on the page offers to write.
    assert page.locator(".dup-dismiss").count() == 0
    page.screenshot(path=str(artifacts / "duplicates-view.png"), full_page=True)

    # Back to search and again: the views switch on the address's hash.
    page.click("#to-search")
    wait_until(page, "!document.querySelector('#search-view').hidden")
    assert not page.locator("#duplicates-view").is_visible()
    page.click("#to-duplicates")
    wait_until(page, "!document.querySelector('#duplicates-view').hidden")
    page.close()


def test_the_keeper_the_user_picks_is_the_one_the_downloaded_plan_keeps(
    browser: Any, server: str, photos: Path
) -> None:
    page = _open(browser, server)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    # With the mouse: a click on the card that is not the keeper.
    coffee = _group(page, "copies/coffee-half.jpg")
    proposed = _keeper(page, "copies/coffee-half.jpg")
    other = next(p for p in ("originals/coffee.jpg", "copies/coffee-half.jpg") if p != proposed)
    coffee.locator(".dup-member:not(.kept) img").click()
    assert _keeper(page, "copies/coffee-half.jpg") == other
    assert "chosen by you" in coffee.locator(".dup-member.kept .dup-keeper").inner_text()
    assert other.split("/")[-1] in page.inner_text("#dup-status")
    # With the keyboard: the arrow key moves the group's choice to the other file.
    rocket_before = _keeper(page, "copies/rocket-half.jpg")
    rocket = _group(page, "copies/rocket-half.jpg")
    rocket.locator("input[type=radio]:checked").focus()
    page.keyboard.press("ArrowDown")
    rocket_after = _keeper(page, "copies/rocket-half.jpg")
    assert rocket_after != rocket_before
    with page.expect_download() as download:
        page.click("#dup-download")
    assert download.value.suggested_filename == "duplicates-plan.json"
    plan = json.loads(Path(download.value.path()).read_text())
    assert plan["format"] == "lookalike-duplicate-plan" and plan["version"] == 1
    kept = {Path(g["keep"]["path"]).relative_to(photos).as_posix() for g in plan["groups"]}
    assert other in kept and rocket_after in kept, kept
    others = {
        Path(o["path"]).relative_to(photos).as_posix() for g in plan["groups"] for o in g["others"]
    }
    assert proposed in others and rocket_before in others, others
    # The user's choices went with the request (and nothing left this server).
    assert all(url.startswith(server) or url.startswith("blob:") for url in requests), requests
    page.close()


def test_rules_and_similar_shots_are_sent_with_the_request(browser: Any, server: str) -> None:
    page = _open(browser, server)
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/api/duplicates?" in r.url else None)
    # The server's default rules fill the editor, in order.
    names = page.eval_on_selector_all("#dup-rules select", "all => all.map(s => s.value)")
    assert names == ["largest-resolution", "largest-file", "oldest-exif-date"]
    page.click("#dup-similar")
    wait_until(page, "document.querySelector('#dup-status').textContent.includes('groups')")
    assert sent and "include_similar=true" in sent[-1], sent
    # A rule with an argument is sent once it has one, after the others, in order.
    page.click("#dup-add-rule")
    last = page.locator("#dup-rules > li").last
    last.locator("select").select_option("prefer-path")
    last.locator("input").fill("*/originals/*")
    last.locator("input").press("Tab")  # the field's change event
    _wait_for(page, lambda: any("prefer-path" in url for url in sent))
    query = parse_qs(urlsplit(sent[-1]).query)
    assert query["keep"] == [
        "largest-resolution",
        "largest-file",
        "oldest-exif-date",
        "prefer-path */originals/*",
    ], query
    assert query["include_similar"] == ["true"]
    page.close()


def _wait_for(page: Any, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still false after {timeout} s"
        page.wait_for_timeout(50)


def test_not_a_duplicate_removes_the_group_for_good(
    browser: Any, archive_index: Path, tmp_path: Path
) -> None:
    with served_copy(archive_index, tmp_path, "--allow-writes") as url:
        page = _open(browser, url)
        # Byte-identical files cannot be separated: no button offers it.
        assert _group(page, "backup/chelsea.jpg").locator(".dup-dismiss").count() == 0
        coffee = _group(page, "copies/coffee-half.jpg")
        dismiss = coffee.locator(".dup-member:not(.kept) .dup-dismiss")
        assert dismiss.count() == 1
        assert "is not the same picture as" in (dismiss.get_attribute("aria-label") or "")
        assert coffee.locator(".dup-member.kept .dup-dismiss").is_hidden()
        dismiss.click()
        wait_until(page, "document.querySelectorAll('#dup-groups > li').length === 2")
        assert "not a duplicate" in page.inner_text("#dup-status")
        remaining = [g for g in _expected() if "copies/coffee-half.jpg" not in g]
        assert sorted(page.evaluate(GROUPS)) == remaining
        # Focus went to a group's heading, not lost with the removed group.
        assert page.evaluate("document.activeElement.tagName") == "H3"
        page.reload()
        wait_until(page, "document.querySelectorAll('#dup-groups > li').length > 0")
        wait_until(page, THUMBNAILS_LOADED)
        assert sorted(page.evaluate(GROUPS)) == remaining
        page.close()


def test_phone_width_has_no_horizontal_scroll(browser: Any, server: str, artifacts: Path) -> None:
    page = _open(browser, server, viewport={"width": 375, "height": 740}, is_mobile=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, width
    # The members of a group still sit side by side (two columns at this width).
    boxes = [
        m.bounding_box()
        for m in page.locator("#dup-groups > li").first.locator(".dup-member").all()
    ]
    assert len(boxes) == 2 and abs(boxes[0]["y"] - boxes[1]["y"]) < 2, boxes
    page.screenshot(path=str(artifacts / "duplicates-phone.png"), full_page=True)
    page.close()
