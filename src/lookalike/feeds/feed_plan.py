"""Planning a feed sync, without side effects: which indexed images a feed keeps, which it
drops, whose metadata changed, and which images must be fetched.

An image of a feed is known by its product id and its URL: a changed URL is a new image (and
the old one goes), the same URL with new content replaces the old vector, new metadata on an
unchanged image is applied without embedding it again."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from lookalike.feeds.feed_file import URL_FIELD, Feed


@dataclass(frozen=True)
class FeedImage:
    """One image a feed asks for: its fetch key, product, URL and metadata, and the indexed
    image it would replace (None: new)."""

    key: str
    product: str
    url: str
    fields: dict[str, object]
    replaces: int | None = None
    replaces_hash: str | None = None


@dataclass(frozen=True)
class IndexedFeedImage:
    """An image the index holds from a feed: id, content hash, and metadata."""

    id: int
    hash: str
    fields: Mapping[str, object]


@dataclass
class FeedPlan:
    """What a sync does: ``remove`` (ids), ``metadata`` (id -> new fields), ``fetch`` (images
    to download, new ones and, when revalidating, indexed ones), ``unchanged`` (indexed images
    kept without a request), ``empty`` (ids of rows with no image), ``failed_before``
    (images that failed in an earlier run and are not tried again, with that run's reason
    and detail)."""

    remove: list[int] = field(default_factory=list)
    metadata: dict[int, dict[str, object]] = field(default_factory=dict)
    fetch: list[FeedImage] = field(default_factory=list)
    unchanged: int = 0
    empty: list[str] = field(default_factory=list)
    failed_before: list[tuple[FeedImage, str, str]] = field(default_factory=list)


def identity(id_column: str, fields: Mapping[str, object]) -> tuple[str, str] | None:
    """(product, url) of an indexed image's metadata, or None for an image from elsewhere."""
    product, url = fields.get(id_column), fields.get(URL_FIELD)
    if isinstance(product, str) and isinstance(url, str):
        return product, url
    return None


def plan_feed(
    feed: Feed,
    indexed: Iterable[IndexedFeedImage],
    *,
    revalidate: bool = False,
    failed: Mapping[tuple[str, str], tuple[str, str]] | None = None,
) -> FeedPlan:
    """Compare the feed with what the index holds from it (images of other sources untouched).
    ``failed``: (product, url) -> (reason, detail) of images that failed before; they are not
    fetched again (pass None, or ``revalidate``, to try them all again)."""
    failed = failed if failed is not None and not revalidate else {}
    plan = FeedPlan()
    known: dict[tuple[str, str], IndexedFeedImage] = {}
    for image in indexed:
        found = identity(feed.id_column, image.fields)
        if found is None:
            continue
        if found in known:  # one image per (product, url): a second one is stray
            plan.remove.append(image.id)
        else:
            known[found] = image
    for row in feed.rows:
        if not row.images:
            plan.empty.append(row.id)
        for n, url in enumerate(row.images):
            fields = {**row.fields, URL_FIELD: url}
            old = known.pop((row.id, url), None)
            if old is None:
                new = FeedImage(f"{row.id}#{n}", row.id, url, fields)
                before = failed.get((row.id, url))
                if before is None:
                    plan.fetch.append(new)
                else:
                    plan.failed_before.append((new, *before))
                continue
            if dict(old.fields) != fields:
                plan.metadata[old.id] = fields
            if revalidate:
                key = f"{row.id}#{n}"
                plan.fetch.append(FeedImage(key, row.id, url, fields, old.id, old.hash))
            else:
                plan.unchanged += 1
    plan.remove.extend(gone.id for gone in known.values())
    return plan


__all__ = ["FeedImage", "FeedPlan", "IndexedFeedImage", "identity", "plan_feed"]
