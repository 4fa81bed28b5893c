"""The page in a real headless Chromium (Debian's, driven by Playwright; nothing downloaded):
upload a real photo, see its original come first, click a result for more like this."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lookalike.evaluation.copies import CopySet
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, served_copy, wait_until

ARTIFACTS = Path(os.environ.get("LOOKALIKE_ARTIFACTS", Path(__file__).parents[2] / "artifacts"))

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (CI installs it)"
    ),
]


@pytest.fixture(scope="module")
def server(gallery_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served_copy(gallery_index, tmp_path_factory.mktemp("served")) as url:
        yield url


def test_upload_a_photo_and_its_original_comes_first(server: str, copy_set: CopySet) -> None:
    from playwright.sync_api import sync_playwright

    pair = next(p for p in copy_set.copies if p.edit == "border_text")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(server)
        page.wait_for_selector("#index-info:has-text('218 images')")
        page.set_input_files("#file", str(pair.copy))
        first = page.locator("#results > li").first
        first.wait_for()
        assert page.locator("#results > li").count() == 12
        assert first.locator(".name").inner_text() == pair.original.name
        rank, score = first.locator(".score").inner_text().split(" · ")
        assert rank == "#1" and float(score) > 0.7
        wait_until(
            page,
            "[...document.querySelectorAll('#results img')].every(i => i.complete "
            "&& i.naturalWidth > 0)",
        )
        assert page.locator("#histogram rect").count() == 10
        page.screenshot(path=str(ARTIFACTS / "search-page.png"), full_page=True)

        # Choosing k re-runs the search.
        page.select_option("#k", "6")
        wait_until(page, "document.querySelectorAll('#results > li').length === 6")

        # A click on a result searches with it ("more like this"): the copy is not its own match.
        first.click()
        wait_until(
            page,
            f"document.querySelector('#results > li .name').textContent !== '{pair.original.name}'",
        )
        names = page.locator("#results > li .name").all_inner_texts()
        assert len(names) == 6 and pair.original.name not in names

        # A file that is not an image gives a readable message, not a broken page.
        bogus = ARTIFACTS / "not-an-image.jpg"
        bogus.write_text("plain text")
        page.set_input_files("#file", str(bogus))
        page.wait_for_selector("#error:not([hidden])")
        assert "not an image" in page.locator("#error").inner_text()
        browser.close()
    assert all(url.startswith(server) or url.startswith("blob:") for url in requests), requests


def test_the_page_says_when_the_stages_rank_matches_out_of_score_order(
    small_photos: Path, tmp_path: Path
) -> None:
    """Raw pixels with both stages rank chelsea's matches out of score order and coffee's in it
    (as `lookalike search` shows): a line under the status says why for the first only."""
    from playwright.sync_api import sync_playwright

    from lookalike import SearchEngine

    index = tmp_path / "staged.idx"
    with SearchEngine.create(index, embedder="pixels") as engine:
        engine.index_folder(small_photos)
        engine.set_reranking(expansion=True, hubness=True)
    note = "#order-note"
    with served_copy(index, tmp_path / "served") as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.wait_for_selector("#index-info:has-text('6 images')")
        for name, reordered in [("chelsea.jpg", True), ("coffee.jpg", False)]:
            page.set_input_files("#file", str(next(small_photos.rglob(name))))
            wait_until(
                page,
                f"document.querySelector('#results > li .name')?.textContent === '{name}'",
            )
            scores = [
                float(text.split(" · ")[1])
                for text in page.locator("#results > li .score").all_inner_texts()
            ]
            assert len(scores) == 6
            assert (scores != sorted(scores, reverse=True)) is reordered, (name, scores)
            assert page.locator(note).is_visible() is reordered
            if reordered:
                assert "similarity to the query alone" in page.locator(note).inner_text()
        browser.close()
