"""Indexing a shop's product feed from real HTTP: products in results, price filters,
incremental re-runs (what is fetched and embedded again), failures by reason, the CLI and
the REST API's "more like this product"."""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookalike import NumericRange, SearchEngine, SearchFilter
from lookalike.evaluation.copies import skimage_originals
from lookalike.feeds.fetching import FetchOptions
from lookalike.web.app import create_app
from lookalike.web.settings import ServeSettings
from tests.conftest import FAST_EMBEDDER
from tests.helpers import json_lines, run_cli
from tests.shop import Shop, edited_photo, open_shop, shop_photos, write_csv_feed

ROWS = 200
LOCAL = "http://127.0.0.1"


@dataclass
class ShopFeed:
    shop: Shop
    www: Path
    rows: list[dict[str, object]]
    photos: list[Path]
    feed: Path
    index: Path


def _rows(shop: Shop, photos: list[Path], count: int, seed: int) -> list[dict[str, object]]:
    """Products with 1 to 3 images each, all edits of one photo (as a product's views are
    alike), seeded prices."""
    rng = np.random.default_rng(seed)
    originals = len(skimage_originals())
    unused = {o: photos[o::originals] for o in range(originals)}
    rows: list[dict[str, object]] = []
    for i in range(count):
        n = int(rng.integers(1, 4))
        mine, unused[i % originals] = unused[i % originals][:n], unused[i % originals][n:]
        rows.append(
            {
                "product_id": f"P{i:04d}",
                "title": f"product {i}",
                "price": round(float(rng.uniform(5, 80)), 2),
                "images": [shop.url(p.name) for p in mine],
            }
        )
    return rows


@pytest.fixture(scope="module")
def shop_feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopFeed]:
    """A few hundred products served over HTTP, indexed once (copy the index to change it)."""
    root = tmp_path_factory.mktemp("shop")
    photos = shop_photos(root / "www", 3 * ROWS, seed=3)
    with open_shop(root / "www") as shop:
        rows = _rows(shop, photos, ROWS, seed=4)
        assert all(row["images"] for row in rows)
        feed = write_csv_feed(root / "products.csv", rows)
        index = root / "shop.idx"
        with SearchEngine.create(index, embedder=FAST_EMBEDDER) as engine:
            report = engine.index_feed(feed)
        images = sum(len(r["images"]) for r in rows)  # type: ignore[arg-type]
        assert report.failures == ()
        assert report.added == report.embedded == report.downloaded == images
        assert len(shop.requested()) == images
        yield ShopFeed(shop, root / "www", rows, photos, feed, index)


def test_results_are_products_grouped_and_filtered(shop_feed: ShopFeed) -> None:
    first = shop_feed.rows[0]
    with SearchEngine.open(shop_feed.index) as engine:
        assert engine.info().product_field == "product_id"
        query = shop_feed.photos[0]
        (grouped,) = engine.search([str(query)], k=10)
        products = [m.product_id for m in grouped.matches]
        assert products[0] == first["product_id"] and len(set(products)) == 10
        top = grouped.matches[0]
        assert top.metadata["image_url"] == first["images"][0]  # type: ignore[index]
        assert top.metadata["title"] == first["title"] and top.metadata["price"] == first["price"]
        assert Path(top.path).is_relative_to(shop_feed.index / "downloads")
        (plain,) = engine.search([str(query)], k=30, group_by_product=False)
        assert len({m.product_id for m in plain.matches}) < 30  # products have several images

        cheap = SearchFilter(ranges={"price": NumericRange(high=30)})
        similar = engine.search_by_product("P0000", k=8, where=cheap, sort_by="price")
        prices = [m.metadata["price"] for m in similar.matches]
        assert len(similar.matches) == 8 and prices == sorted(prices)
        assert all(isinstance(p, float) and p <= 30 for p in prices)
        ids = [m.product_id for m in similar.matches]
        assert "P0000" not in ids and len(set(ids)) == 8
        more = engine.search_by_id(grouped.matches[0].id, k=5)
        assert first["product_id"] not in {m.product_id for m in more.matches}


def test_rerun_is_incremental(shop_feed: ShopFeed, tmp_path: Path) -> None:
    index = tmp_path / "shop.idx"
    shutil.copytree(shop_feed.index, index)
    shop = shop_feed.shop
    rows = [dict(r) for r in shop_feed.rows]
    rows[5]["price"] = 1.5  # a new price: metadata only
    fresh = shop_photos(shop_feed.www, 3, seed=99, start=10_000)
    changed_row = rows[7]
    old_url = changed_row["images"][0]  # type: ignore[index]
    changed_row["images"] = [shop.url(fresh[0].name), *changed_row["images"][1:]]  # type: ignore[index]
    removed = rows.pop(9)
    rows.append(
        {
            "product_id": "NEW1",
            "title": "new",
            "price": 9.0,
            "images": [shop.url(fresh[1].name), shop.url(fresh[2].name)],
        }
    )
    feed = write_csv_feed(tmp_path / "products.csv", rows)
    shop.clear()
    with SearchEngine.open(index, writable=True) as engine:
        report = engine.index_feed(feed)
        assert sorted(shop.requested()) == sorted(f"/{p.name}" for p in fresh)
        assert (report.added, report.updated, report.embedded) == (3, 0, 3)
        assert report.removed == len(removed["images"]) + 1  # type: ignore[arg-type]
        assert report.metadata_updated == len(rows[5]["images"])  # type: ignore[arg-type]
        assert report.failures == ()
        total = sum(len(r["images"]) for r in rows)  # type: ignore[arg-type]
        assert len(engine) == total
        kept = engine.collection.product_images("product_id", str(rows[5]["product_id"]))
        assert {engine.record(i)[1]["price"] for i in kept} == {1.5}
        assert engine.collection.product_images("product_id", str(removed["product_id"])) == []
        urls = {
            engine.record(i)[1]["image_url"]
            for i in engine.collection.product_images("product_id", str(changed_row["product_id"]))
        }
        assert old_url not in urls and shop.url(fresh[0].name) in urls

        # The same feed again: nothing fetched, nothing embedded, nothing committed.
        shop.clear()
        generation = engine.collection.snapshot().generation
        again = engine.index_feed(feed)
        assert shop.requested() == [] and again.embedded == 0 and again.unchanged == total
        assert engine.collection.snapshot().generation == generation

        # One image changed on the server under the same URL: --revalidate asks for each
        # image conditionally and embeds only that one again.
        target = shop_feed.www / fresh[2].name
        rng = np.random.default_rng(5)
        edited_photo(Image.open(shop_feed.photos[0]).convert("RGB"), rng, 160).save(target)
        stamp = target.stat().st_mtime + 5
        os.utime(target, (stamp, stamp))
        shop.clear()
        revalidated = engine.index_feed(feed, fetch=FetchOptions(revalidate=True))
        assert len(shop.conditional()) == total
        assert (revalidated.updated, revalidated.embedded, revalidated.downloaded) == (1, 1, 1)
        assert len(engine) == total
        (found,) = engine.search([str(target)], k=1)
        assert found.matches[0].product_id == "NEW1" and found.matches[0].score > 0.999


def test_faults_are_reported_by_reason(shop_feed: ShopFeed, tmp_path: Path) -> None:
    www = shop_feed.www
    (www / "page.jpg").write_text("<html><body>not found</body></html>", encoding="utf-8")
    whole = shop_feed.photos[0].read_bytes()
    (www / "truncated.jpg").write_bytes(whole[: len(whole) // 3])
    shop = shop_feed.shop
    rows: list[dict[str, object]] = [
        {"sku": "GOOD", "price": 10, "image_link": shop.url(shop_feed.photos[1].name)},
        {"sku": "LOCAL", "price": 11, "image_link": str(shop_feed.photos[2])},
        {"sku": "GONE", "price": 12, "image_link": shop.url("no-such.jpg")},
        {"sku": "HTML", "price": 13, "image_link": shop.url("page.jpg")},
        {"sku": "CUT", "price": 14, "image_link": shop.url("truncated.jpg")},
        {"sku": "CUT2", "price": 14, "image_link": shop.url("truncated.jpg")},
        {"sku": "FTP", "price": 15, "image_link": "ftp://example.invalid/a.jpg"},
        {"sku": "EMPTY", "price": 16, "image_link": ""},
        {"sku": "MISSING", "price": 17, "image_link": "missing/photo.jpg"},
    ]
    feed = write_csv_feed(tmp_path / "feed.csv", rows)
    index, failed = tmp_path / "faulty.idx", tmp_path / "failed.csv"
    done = run_cli(
        "index",
        feed,
        "--index",
        index,
        "--embedder",
        FAST_EMBEDDER,
        "--failures",
        failed,
        "--json",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["added"] == 2 and summary["count"] == 2
    with failed.open(newline="") as fh:
        reasons = {row["id"]: row["reason"] for row in csv.DictReader(fh)}
    assert reasons == {
        "GONE": "http-status",
        "HTML": "not-an-image",
        "CUT": "decode-error",
        "CUT2": "decode-error",  # the same file: the same fate
        "FTP": "bad-url",
        "EMPTY": "no-image",
        "MISSING": "not-found",
    }
    assert summary["failed"] == {r: list(reasons.values()).count(r) for r in set(reasons.values())}
    # Failures are remembered: the same feed again asks the shop for nothing.
    shop.clear()
    table = run_cli("index", feed, "--index", index, "--embedder", FAST_EMBEDDER)
    assert table.returncode == 0, table.stderr
    assert "7 failed" in table.stdout and "0 downloaded" in table.stdout
    assert "6 failed in an earlier run" in table.stdout and "--retry-failed" in table.stdout
    assert shop.requested() == []
    retried = run_cli(
        "index", feed, "--index", index, "--embedder", FAST_EMBEDDER, "--retry-failed", "--json"
    )
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["failed_before"] == 0
    assert sorted(shop.requested()) == ["/no-such.jpg", "/page.jpg"]  # the cut file is cached


def test_cli_search_by_product_id(shop_feed: ShopFeed) -> None:
    done = run_cli(
        "search",
        "--id",
        "P0003",
        "--index",
        shop_feed.index,
        "-k",
        "5",
        "--max",
        "price=30",
        "--sort",
        "price",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    (result,) = json_lines(done.stdout)
    matches = result["matches"]
    assert isinstance(matches, list) and len(matches) == 5
    prices = [m["metadata"]["price"] for m in matches]
    assert prices == sorted(prices) and max(prices) <= 30
    assert "P0003" not in {m["product_id"] for m in matches}
    unknown = run_cli("search", "--id", "NOPE", "--index", shop_feed.index)
    assert unknown.returncode == 2 and "no product 'NOPE'" in unknown.stderr


def test_rest_more_like_this_product(shop_feed: ShopFeed) -> None:
    settings = ServeSettings(index=shop_feed.index)
    with TestClient(create_app(settings), base_url=LOCAL) as client:
        info = client.get("/api/info").json()
        assert info["product_field"] == "product_id" and "price" in info["numeric_fields"]
        params = {"k": 6, "field": "price", "max": 30, "sort": "price"}
        answer = client.get("/api/search/by-key/P0001", params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["query"] == "P0001"
        products = [m["product_id"] for m in body["matches"]]
        assert len(products) == 6 and len(set(products)) == 6 and "P0001" not in products
        prices = [m["metadata"]["price"] for m in body["matches"]]
        assert prices == sorted(prices) and max(prices) <= 30
        assert all(m["metadata"]["image_url"].startswith(LOCAL) for m in body["matches"])
        ungrouped = client.get(
            "/api/search/by-key/P0001", params={"k": 40, "group_by_id": "false"}
        ).json()
        assert len({m["product_id"] for m in ungrouped["matches"]}) < 40
        assert client.get("/api/search/by-key/NOPE").status_code == 404


def test_products_sharing_an_image(shop_feed: ShopFeed, tmp_path: Path) -> None:
    """One file is one catalog image: the first row holding it owns it, and when that row goes
    the next one takes it over."""
    url = shop_feed.shop.url(shop_feed.photos[5].name)
    rows: list[dict[str, object]] = [
        {"id": "FIRST", "price": 1, "image": url},
        {"id": "SECOND", "price": 2, "image": url},
    ]
    index = tmp_path / "shared.idx"
    with SearchEngine.create(index, embedder=FAST_EMBEDDER) as engine:
        report = engine.index_feed(write_csv_feed(tmp_path / "a.csv", rows))
        assert (report.added, report.shared, len(engine)) == (1, 1, 1)
        (match,) = engine.search([str(shop_feed.photos[5])], k=1)[0].matches
        assert match.product_id == "FIRST"
        again = engine.index_feed(write_csv_feed(tmp_path / "b.csv", rows[1:]))
        assert (again.removed, again.added, again.downloaded, len(engine)) == (1, 1, 0, 1)
        (match,) = engine.search([str(shop_feed.photos[5])], k=1)[0].matches
        assert match.product_id == "SECOND" and match.metadata["price"] == 2
