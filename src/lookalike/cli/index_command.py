"""`lookalike index`: embed a folder into an index."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lookalike.cli.console import IndexDir, err, fail, out
from lookalike.cli.progress import ProgressBar
from lookalike.embedders import DEFAULT_EMBEDDER, resolve_spec
from lookalike.embedders.base import EmbedderSpec
from lookalike.embedders.quality import DEFAULT_QUALITY
from lookalike.embedders.quality import describe as describe_qualities
from lookalike.embedders.registry import describe as describe_embedders
from lookalike.feeds.feed_file import is_feed
from lookalike.index_options import IndexOptions, IndexReport
from lookalike.indexes.registry import INDEX_TYPES
from lookalike.metadata import read_metadata_csv
from lookalike.sources import check_folder

if TYPE_CHECKING:
    from lookalike.feeds.fetching import FetchOptions


def _embedder_spec(
    embedder: str | None,
    input_size: int | None,
    mean: str | None,
    std: str | None,
    output: str | None,
) -> str | EmbedderSpec | None:
    if embedder is None:
        return None
    spec = resolve_spec(embedder)
    if spec.name != "onnx":
        return embedder  # a name: the engine applies the --quality preset to it
    params = dict(spec.params)
    if input_size is not None:
        params["input_size"] = input_size
    for key, value in (("mean", mean), ("std", std)):
        if value is not None:
            try:
                numbers = [float(x) for x in value.split(",")]
            except ValueError:
                fail(f"--{key} must be three comma-separated numbers, got {value!r}")
            if len(numbers) != 3:
                fail(f"--{key} must be three comma-separated numbers, got {value!r}")
            params[key] = numbers
    if output is not None:
        params["output"] = output
    return EmbedderSpec("onnx", params)


def index(
    photos: Annotated[
        Path,
        typer.Argument(
            help="Folder of images (searched recursively; JPEG, PNG, WebP, TIFF, ..., and with "
            "the archive extra HEIC/HEIF and camera RAW; AVIF), or a product feed: a .csv, "
            ".jsonl, .ndjson or .parquet file with a product id and image URL(s) or paths per "
            "row.",
            show_default=False,
        ),
    ],
    index_dir: IndexDir,
    embedder: Annotated[
        str | None,
        typer.Option(
            help=f"{describe_embedders()}. Fixed when the index is created. "
            f"(default: {DEFAULT_EMBEDDER})",
            show_default=False,
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            help="cosine or euclidean; fixed when the index is created. (default: cosine)",
            show_default=False,
        ),
    ] = None,
    quality: Annotated[
        str | None,
        typer.Option(
            help=f"How the EfficientNet embedders describe images: {describe_qualities()}. "
            f"Fixed when the index is created. (default: {DEFAULT_QUALITY})",
            show_default=False,
        ),
    ] = None,
    vector_dtype: Annotated[
        str | None,
        typer.Option(
            help="How vectors are stored: float32 (as embedded), float16 (half the bytes) or "
            "int8 (a quarter: per-dimension ranges learned from the first images, values "
            "outside clipped). Fixed when the index is created. (default: float32)",
            show_default=False,
        ),
    ] = None,
    keep_float32: Annotated[
        bool | None,
        typer.Option(
            "--keep-float32/--no-keep-float32",
            help="With --vector-dtype float16 or int8: keep float32 vectors on disk and only "
            "the compact ones in memory; exact search re-scores its best candidates with the "
            "float32 ones. Fixed when the index is created. (default: no)",
            show_default=False,
        ),
    ] = None,
    onnx_input_size: Annotated[
        int | None, typer.Option(help="ONNX models: input size in pixels (default 224).")
    ] = None,
    onnx_mean: Annotated[
        str | None, typer.Option(help="ONNX models: per-channel mean, e.g. 0.485,0.456,0.406.")
    ] = None,
    onnx_std: Annotated[
        str | None, typer.Option(help="ONNX models: per-channel std, e.g. 0.229,0.224,0.225.")
    ] = None,
    onnx_output: Annotated[
        str | None, typer.Option(help="ONNX models: name of the output to use (default: first).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Decoding processes (default: one per core; 0: none).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Images per network batch.")] = 32,
    commit_every: Annotated[
        int, typer.Option(help="Images per atomic commit (what an interrupted run can lose).")
    ] = 512,
    index_type: Annotated[
        str | None,
        typer.Option(
            help="Search structure: "
            + "; ".join(f"{t.name} ({t.summary})" for t in INDEX_TYPES.values())
            + ". `lookalike info` shows a graph's recall@10. (default: auto for a new index)",
            show_default=False,
        ),
    ] = None,
    pca: Annotated[
        int | None,
        typer.Option(
            help="hnsw only: build the graph on a PCA projection to this many dimensions, "
            "learned on the collection (builds faster, less memory; 0: none; see lookalike "
            "evaluate --pca). (default: 128 from 10,000 images of >256-d vectors)",
            show_default=False,
        ),
    ] = None,
    whiten: Annotated[
        bool | None,
        typer.Option(
            "--whiten/--no-whiten",
            help="hnsw with --pca: whiten the projection (each component scaled to unit "
            "variance). (default: no)",
            show_default=False,
        ),
    ] = None,
    rerank: Annotated[
        int | None,
        typer.Option(
            help="hnsw with PCA: re-score this many graph candidates with the full vectors, "
            "so scores are exact (0: scores from the reduced space). (default: 80)",
            show_default=False,
        ),
    ] = None,
    expansion: Annotated[
        bool | None,
        typer.Option(
            "--expansion/--no-expansion",
            help="Record whether this index's searches use query expansion (every front end "
            "follows it; `lookalike search --no-expansion` overrides it). (default for a new "
            "index: the --quality preset's, on for balanced and best, off for other "
            "embedders; an existing index keeps its setting)",
            show_default=False,
        ),
    ] = None,
    hubness: Annotated[
        bool | None,
        typer.Option(
            "--hubness/--no-hubness",
            help="Record whether this index's searches use the hubness correction; the "
            "neighbour statistic it needs is computed now and kept up to date. (default for a "
            "new index: on with --quality best, else off; an existing index keeps its "
            "setting)",
            show_default=False,
        ),
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            help="Embed on a Ray cluster at this address (`local` starts a local Ray): Ray "
            "Data over an actor pool writes shards that are merged into this index.",
            show_default=False,
        ),
    ] = None,
    metadata: Annotated[
        Path | None,
        typer.Option(
            help="CSV of metadata: one column names the image file (relative to PHOTOS or "
            "absolute), the other columns (title, price, url...) are attached to the image.",
            show_default=False,
        ),
    ] = None,
    metadata_key: Annotated[
        str | None,
        typer.Option(
            help="Column of the metadata CSV that names the file (default: path, "
            "file, filename, image or name).",
            show_default=False,
        ),
    ] = None,
    image_column: Annotated[
        str | None,
        typer.Option(
            help="Feeds: the column holding each product's image URL, path, or JSON list of "
            "them. (default: image, image_url, images, image_link...)",
            show_default=False,
        ),
    ] = None,
    id_column: Annotated[
        str | None,
        typer.Option(
            help="Feeds: the column holding the product id. (default: id, product_id, sku...)",
            show_default=False,
        ),
    ] = None,
    failures: Annotated[
        Path | None,
        typer.Option(
            help="Feeds: write the images that failed (id, url, reason, detail) to this CSV.",
            show_default=False,
        ),
    ] = None,
    revalidate: Annotated[
        bool,
        typer.Option(
            "--revalidate",
            help="Feeds: ask the shop's server whether each indexed image changed (conditional "
            "requests) instead of trusting the download cache.",
        ),
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Feeds: fetch again the images that failed in an earlier run (by default "
            "they are reported again without a request).",
        ),
    ] = False,
    concurrency: Annotated[
        int, typer.Option(help="Feeds: downloads in flight at once (at most 8 per host).")
    ] = 32,
    timeout: Annotated[
        float,
        typer.Option(
            help="Feeds: seconds one download may take (a stalled body too) before it fails "
            "as a timeout."
        ),
    ] = 20.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Embed every image under PHOTOS (or of a product feed) into the index (created if missing).

    Re-running embeds only new or changed files, drops deleted ones and follows renamed or moved
    files by content. An interrupted run keeps what it committed; run it again to finish.
    A feed's images are downloaded while earlier ones are embedded; re-running fetches only
    new URLs, removes rows gone from the feed and applies metadata changes without embedding.
    """
    from lookalike.engine import SearchEngine

    if is_feed(photos):
        from lookalike.cli.feed_index import index_feed

        if metadata is not None:
            fail("--metadata is for folders: a feed's other columns are its metadata")
        index_feed(
            photos,
            index_dir,
            spec=_embedder_spec(embedder, onnx_input_size, onnx_mean, onnx_std, onnx_output),
            metric=metric,
            quality=quality,
            vector_dtype=vector_dtype,
            keep_float32=keep_float32,
            options=IndexOptions(
                workers=workers,
                batch_size=batch_size,
                commit_every=commit_every,
                index_type=index_type,
                pca_dim=pca,
                whiten=whiten,
                rerank=rerank,
                expansion=expansion,
                hubness=hubness,
            ),
            fetch=_fetch_options(revalidate, concurrency, timeout),
            retry_failed=retry_failed,
            image_column=image_column,
            id_column=id_column,
            failures=failures,
            quiet=quiet,
            as_json=as_json,
        )
        return
    root = check_folder(photos)  # before an index folder is created for nothing
    table = read_metadata_csv(metadata, root, key_column=metadata_key) if metadata else None
    spec = _embedder_spec(embedder, onnx_input_size, onnx_mean, onnx_std, onnx_output)
    if pca is not None and pca != 0 and pca < 2:
        fail(f"--pca must be 0 (none) or at least 2 dimensions, got {pca}")
    if whiten and pca == 0:
        fail("--whiten needs a PCA projection: drop --pca 0 or --whiten")
    options = IndexOptions(
        workers=workers,
        batch_size=batch_size,
        commit_every=commit_every,
        index_type=index_type,
        pca_dim=pca,
        whiten=whiten,
        rerank=rerank,
        ray_address=ray,
        expansion=expansion,
        hubness=hubness,
    )
    with SearchEngine.open_or_create(
        index_dir,
        embedder=spec,
        metric=metric,
        quality=quality,
        vector_dtype=vector_dtype,
        keep_float32=keep_float32,
    ) as engine:
        show_bar = not quiet and not as_json
        with ProgressBar(err, enabled=show_bar) as bar:
            report = engine.index_folder(photos, options=options, progress=bar)
        total = len(engine)
        matched, unmatched = engine.set_metadata(table) if table else (0, [])
    if as_json:
        summary = _report_json(report, total)
        if table:
            summary["metadata"] = {"matched": matched, "unmatched": unmatched}
        out.print_json(data=summary)
    else:
        _print_report(report, photos, index_dir, total)
        if table:
            out.print(
                f"Metadata: {matched} images got fields from {metadata}"
                + (
                    f"; {len(unmatched)} rows name no indexed image, e.g. {unmatched[0]}"
                    if unmatched
                    else "."
                )
            )


def _fetch_options(revalidate: bool, concurrency: int, timeout: float) -> FetchOptions:
    from lookalike.feeds.fetching import FetchOptions

    if concurrency < 1:
        fail(f"--concurrency must be at least 1, got {concurrency}")
    if timeout <= 0:
        fail(f"--timeout must be more than 0 seconds, got {timeout}")
    return FetchOptions(
        concurrency=concurrency,
        per_host=min(8, concurrency),
        timeout=timeout,
        revalidate=revalidate,
    )


def _report_json(report: IndexReport, total: int) -> dict[str, object]:
    return {
        "added": report.added,
        "updated": report.updated,
        "renamed": report.renamed,
        "unchanged": report.unchanged,
        "removed": report.removed,
        "skipped": [{"path": s.path, "reason": s.reason} for s in report.skipped],
        "embedded": report.embedded,
        "seconds": round(report.seconds, 3),
        "images_per_second": round(report.images_per_second, 2),
        "count": total,
    }


def _print_report(report: IndexReport, photos: Path, index_dir: Path, total: int) -> None:
    rate = f" ({report.images_per_second:.1f} images/s)" if report.embedded else ""
    out.print(
        f"Indexed {photos} into {index_dir} in {report.seconds:.1f} s{rate}: "
        f"{report.added} added, {report.updated} updated, {report.renamed} renamed, "
        f"{report.unchanged} unchanged, {report.removed} removed, "
        f"{len(report.skipped)} skipped. The index holds {total} images."
    )
    for skipped in report.skipped:
        out.print(f"  skipped {skipped.path}: {skipped.reason}")
