"""Planning a feed sync: an image is its (product, URL); changed URLs are new images, changed
fields are metadata updates, vanished rows are removals, and only what is new is fetched."""

from __future__ import annotations

from pathlib import Path

from lookalike.feeds.feed_file import Feed, FeedRow
from lookalike.feeds.feed_plan import IndexedFeedImage, plan_feed


def _feed(*rows: FeedRow) -> Feed:
    return Feed(Path("f.csv"), "sku", "image", rows)


def _row(sku: str, *urls: str, price: float = 1.0) -> FeedRow:
    return FeedRow(sku, urls, {"sku": sku, "price": price}, 2)


def _indexed(image_id: int, sku: str, url: str, price: float = 1.0) -> IndexedFeedImage:
    return IndexedFeedImage(
        image_id, f"h{image_id}", {"sku": sku, "price": price, "image_url": url}
    )


def test_plan_keeps_updates_removes_and_fetches() -> None:
    indexed = [
        _indexed(1, "A", "u/a1"),
        _indexed(2, "A", "u/a2"),
        _indexed(3, "B", "u/b1"),
        _indexed(4, "C", "u/c1"),
        _indexed(5, "C", "u/c1"),  # a stray second copy
        IndexedFeedImage(6, "h6", {"title": "from a folder"}),  # not a feed image
    ]
    feed = _feed(
        _row("A", "u/a1", "u/a3"),  # a2 gone, a3 new
        _row("B", "u/b1", price=2.0),  # new price
        _row("D", "u/d1"),  # new product; C is gone
        _row("E"),  # no image
    )
    plan = plan_feed(feed, indexed)
    assert sorted(plan.remove) == [2, 4, 5]
    assert plan.metadata == {3: {"sku": "B", "price": 2.0, "image_url": "u/b1"}}
    assert [(f.key, f.url, f.replaces) for f in plan.fetch] == [
        ("A#1", "u/a3", None),
        ("D#0", "u/d1", None),
    ]
    assert plan.unchanged == 2 and plan.empty == ["E"]


def test_revalidation_fetches_kept_images_as_replacements() -> None:
    plan = plan_feed(_feed(_row("A", "u/a1")), [_indexed(1, "A", "u/a1")], revalidate=True)
    assert [(f.key, f.replaces, f.replaces_hash) for f in plan.fetch] == [("A#0", 1, "h1")]
    assert plan.unchanged == 0 and plan.remove == []


def test_images_that_failed_before_are_not_fetched_unless_revalidating() -> None:
    feed = _feed(_row("A", "u/a1", "u/a2"))
    failed = {("A", "u/a2"): ("http-status", "HTTP 404"), ("Z", "u/z"): ("timeout", "t")}
    plan = plan_feed(feed, [], failed=failed)
    assert [f.url for f in plan.fetch] == ["u/a1"]
    assert [(f.url, reason, detail) for f, reason, detail in plan.failed_before] == [
        ("u/a2", "http-status", "HTTP 404")
    ]
    again = plan_feed(feed, [], failed=failed, revalidate=True)
    assert [f.url for f in again.fetch] == ["u/a1", "u/a2"] and again.failed_before == []
