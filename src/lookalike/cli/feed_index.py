"""`lookalike index FEED.csv`: index a shop's product feed (the feed side of `index`)."""

from __future__ import annotations

from pathlib import Path

from lookalike.cli.console import err, out
from lookalike.cli.progress import ProgressBar
from lookalike.embedders.base import EmbedderSpec
from lookalike.feeds.feed_file import read_feed
from lookalike.feeds.feed_report import FeedReport, write_failures
from lookalike.feeds.fetching import FetchOptions
from lookalike.index_options import IndexOptions


def index_feed(
    feed_path: Path,
    index_dir: Path,
    *,
    spec: str | EmbedderSpec | None,
    metric: str | None,
    quality: str | None,
    vector_dtype: str | None,
    keep_float32: bool | None,
    options: IndexOptions,
    fetch: FetchOptions,
    retry_failed: bool,
    image_column: str | None,
    id_column: str | None,
    failures: Path | None,
    quiet: bool,
    as_json: bool,
) -> None:
    from lookalike.engine import SearchEngine

    feed = read_feed(feed_path, image_column=image_column, id_column=id_column)
    with SearchEngine.open_or_create(
        index_dir,
        embedder=spec,
        metric=metric,
        quality=quality,
        vector_dtype=vector_dtype,
        keep_float32=keep_float32,
    ) as engine:
        with ProgressBar(err, enabled=not quiet and not as_json) as bar:
            report = engine.index_feed(
                feed, options=options, fetch=fetch, retry_failed=retry_failed, progress=bar
            )
        total = len(engine)
    if failures is not None:
        write_failures(report, failures)
    if as_json:
        out.print_json(data={**report.to_json(), "count": total})
        return
    _print_report(report, feed_path, index_dir, total, failures)


def _print_report(
    report: FeedReport, feed: Path, index_dir: Path, total: int, failures: Path | None
) -> None:
    rate = f" ({report.images_per_second:.1f} images/s)" if report.embedded else ""
    out.print(
        f"Indexed {report.rows} products ({report.images} images) of {feed} into {index_dir} "
        f"in {report.seconds:.1f} s{rate}: {report.added} added, {report.updated} updated, "
        f"{report.metadata_updated} with new metadata, {report.unchanged} unchanged, "
        f"{report.removed} removed, {len(report.failures)} failed; {report.downloaded} "
        f"downloaded, {report.from_cache} from the download cache"
        + (f", {report.shared} sharing another row's file" if report.shared else "")
        + f". The index holds {total} images."
    )
    if report.failures:
        counts = ", ".join(f"{n} {reason}" for reason, n in report.failure_counts().items())
        where = (
            f"written to {failures}"
            if failures is not None
            else "pass --failures FILE.csv for the list"
        )
        again = (
            f"; {report.failed_before} failed in an earlier run and were not tried again: "
            "pass --retry-failed to try them"
            if report.failed_before
            else ""
        )
        out.print(f"Failed: {counts} ({where}){again}.")
