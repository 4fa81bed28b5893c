"""`lookalike`: index a folder of images, then search it with an image."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from lookalike import __version__
from lookalike.cli.progress import ProgressBar
from lookalike.embedders import DEFAULT_EMBEDDER, resolve_spec
from lookalike.embedders.base import EmbedderSpec
from lookalike.errors import LookalikeError
from lookalike.filters import NumericRange, SearchFilter
from lookalike.indexing import IndexOptions, IndexReport
from lookalike.matches import SearchResult
from lookalike.metadata import read_metadata_csv
from lookalike.sources import IMAGE_EXTENSIONS, check_folder

app = typer.Typer(
    help="lookalike: reverse image search. Index a folder of images, then find the most "
    "similar ones to a query image.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

#: Exit codes, decided here and nowhere else.
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

IndexDir = Annotated[
    Path, typer.Option("--index", "-i", help="Index directory.", show_default=False)
]


def fail(message: str, code: int = EXIT_USER_ERROR) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        out.print(f"lookalike {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """lookalike: reverse image search."""


def _embedder_spec(
    embedder: str | None,
    input_size: int | None,
    mean: str | None,
    std: str | None,
    output: str | None,
) -> EmbedderSpec | None:
    if embedder is None:
        return None
    spec = resolve_spec(embedder)
    if spec.name != "onnx":
        return spec
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


@app.command()
def index(
    photos: Annotated[Path, typer.Argument(help="Folder of images (searched recursively).")],
    index_dir: IndexDir,
    embedder: Annotated[
        str | None,
        typer.Option(
            help=f"lite0, lite1, lite2 (EfficientNet-Lite, ImageNet weights) or a model.onnx "
            f"file. Fixed when the index is created. [default: {DEFAULT_EMBEDDER}]",
            show_default=False,
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            help="cosine or euclidean; fixed when the index is created. [default: cosine]",
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
            help="Search structure: exact, hnsw (approximate; its recall@10 against exact "
            "search is measured after each build and shown by `lookalike info`), or auto "
            "(exact below 100,000 images, hnsw from there). [default: auto for a new index]",
            show_default=False,
        ),
    ] = None,
    pca: Annotated[
        int | None,
        typer.Option(
            help="hnsw only: build the graph on a PCA projection to this many dimensions, "
            "learned on the collection (less memory, faster; see lookalike evaluate).",
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
            help="Column of the metadata CSV that names the file. [default: path, "
            "file, filename, image or name]",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Embed every image under PHOTOS into the index (created if missing).

    Re-running embeds only new or changed files, drops deleted ones and follows renamed or moved
    files by content. An interrupted run keeps what it committed; run it again to finish.
    """
    from lookalike.engine import SearchEngine

    if workers is not None and workers < 0:
        fail(f"--workers must be 0 or more, got {workers}")
    if batch_size < 1:
        fail(f"--batch-size must be at least 1, got {batch_size}")
    root = check_folder(photos)  # before an index folder is created for nothing
    table = read_metadata_csv(metadata, root, key_column=metadata_key) if metadata else None
    spec = _embedder_spec(embedder, onnx_input_size, onnx_mean, onnx_std, onnx_output)
    if commit_every < 1:
        fail(f"--commit-every must be at least 1, got {commit_every}")
    if pca is not None and pca < 2:
        fail(f"--pca must be at least 2 dimensions, got {pca}")
    options = IndexOptions(
        workers=workers,
        batch_size=batch_size,
        commit_every=commit_every,
        index_type=index_type,
        pca_dim=pca,
        ray_address=ray,
    )
    with SearchEngine.open_or_create(index_dir, embedder=spec, metric=metric) as engine:
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


def _expand_queries(queries: list[Path]) -> list[Path]:
    expanded: list[Path] = []
    for query in queries:
        if query.is_dir():
            found = sorted(
                p for p in query.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
            if not found:
                fail(f"{query}: folder holds no images to search with")
            expanded.extend(found)
        elif not query.exists():
            fail(f"{query}: query image not found")
        else:
            expanded.append(query)
    return expanded


@app.command()
def search(
    queries: Annotated[
        list[Path], typer.Argument(help="Query images (or folders of them).", show_default=False)
    ],
    index_dir: IndexDir,
    k: Annotated[int, typer.Option("-k", "--top", help="Results per query.")] = 10,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per query, one per line.")
    ] = False,
    label: Annotated[
        list[str] | None, typer.Option(help="Only images with this label (repeatable).")
    ] = None,
    folder: Annotated[
        Path | None, typer.Option(help="Only images under this folder.", show_default=False)
    ] = None,
    minimum: Annotated[
        list[str] | None,
        typer.Option("--min", help="Only images whose numeric FIELD >= VALUE: FIELD=VALUE."),
    ] = None,
    maximum: Annotated[
        list[str] | None,
        typer.Option("--max", help="Only images whose numeric FIELD <= VALUE, e.g. price=30."),
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option(
            help="Order the k matches by this numeric metadata field, ascending.",
            show_default=False,
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Save a montage of the results with scores (one row per query) to this PNG, "
            "and a histogram of the top-k scores beside it (NAME-scores.png).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Find the indexed images most similar to each query image."""
    from lookalike.engine import SearchEngine

    if k < 1:
        fail(f"-k must be at least 1, got {k}")
    if plot is not None and plot.suffix.lower() != ".png":
        fail(f"--plot must name a .png file, got {plot}")
    paths = _expand_queries(queries)
    where = _search_filter(label, folder, minimum or [], maximum or [])
    found: list[SearchResult] = []
    with SearchEngine.open(index_dir) as engine:
        for start in range(0, len(paths), 64):
            chunk = [str(p) for p in paths[start : start + 64]]
            for result in engine.search(chunk, k=k, where=where, sort_by=sort):
                found.append(result)
                if as_json:
                    sys.stdout.write(json.dumps(result.to_json()) + "\n")
                    continue
                table = Table(title=f"{result.query}", title_justify="left")
                table.add_column("rank", justify="right")
                table.add_column("score", justify="right")
                table.add_column("path")
                table.add_column("label")
                table.add_column("metadata")
                for m in result.matches:
                    fields = ", ".join(f"{key}={value}" for key, value in m.metadata.items())
                    table.add_row(str(m.rank), f"{m.score:.4f}", m.path, m.label or "", fields)
                out.print(table)
    if plot is not None:
        _plot_results(found, plot)


def _search_filter(
    labels: list[str] | None, folder: Path | None, minimum: list[str], maximum: list[str]
) -> SearchFilter:
    bounds: dict[str, list[float | None]] = {}
    for option, values, side in (("--min", minimum, 0), ("--max", maximum, 1)):
        for text in values:
            name, _, number = text.partition("=")
            try:
                value = float(number)
            except ValueError:
                fail(f"{option} takes FIELD=NUMBER, e.g. {option} price=30; got {text!r}")
            bounds.setdefault(name.strip(), [None, None])[side] = value
    return SearchFilter(
        labels=frozenset(labels or []),
        folder=str(folder.expanduser().resolve()) if folder else None,
        ranges={name: NumericRange(low, high) for name, (low, high) in bounds.items()},
    )


def _plot_results(results: list[SearchResult], target: Path) -> None:
    from lookalike.evaluation import plots

    target.parent.mkdir(parents=True, exist_ok=True)
    rows = [(Path(r.query), [(Path(m.path), m.score, None) for m in r.matches]) for r in results]
    plots.montage(rows, target)
    scores = [m.score for r in results for m in r.matches]
    histogram = target.with_name(f"{target.stem}-scores.png")
    try:
        plots.top_scores_histogram(scores, histogram, title=f"Top-{len(rows[0][1])} scores")
    except ImportError:
        fail("the score histogram needs matplotlib: pip install 'lookalike[report]'")
    err.print(f"saved {target} and {histogram}", markup=False)


@app.command()
def info(
    index_dir: IndexDir,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Describe an index: images, embedder, dimension, metric, format, size on disk."""
    from lookalike.engine import SearchEngine

    with SearchEngine.open(index_dir) as engine:
        details = engine.info()
    if as_json:
        sys.stdout.write(json.dumps(details.to_json()) + "\n")
        return
    for key, value in details.to_json().items():
        if key == "size_bytes":
            value = f"{value:,} bytes ({int(value) / 1e6:.1f} MB)"  # type: ignore[call-overload]
        out.print(f"{key + ':':<19}{value}")


@app.command()
def remove(
    paths: Annotated[list[Path], typer.Argument(help="Indexed images or folders to remove.")],
    index_dir: IndexDir,
) -> None:
    """Remove images (or all images under a folder) from the index. Files are not touched."""
    from lookalike.engine import SearchEngine

    with SearchEngine.open(index_dir, writable=True) as engine:
        removed = engine.remove(paths)
        left = len(engine)
    out.print(f"Removed {removed} images from {index_dir}; {left} remain.")


@app.command()
def evaluate(
    dataset: Annotated[
        str,
        typer.Argument(
            help="fashion-mnist (Debian's dataset-fashion-mnist), a labelled folder (one "
            "subfolder per class), a UKBench folder (ukbench00000.jpg...), a folder of IDX "
            "files, or a folder of originals with --kind copies.",
            show_default=False,
        ),
    ],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Report folder.")] = Path(
        "lookalike-report"
    ),
    embedders: Annotated[
        list[str] | None,
        typer.Option("--embedder", "-e", help="Embedder to compare (repeat). [default: lite0]"),
    ] = None,
    kind: Annotated[
        str, typer.Option(help="auto, labelled, ukbench, copies or fashion-mnist.")
    ] = "auto",
    baselines: Annotated[
        bool, typer.Option(help="Add the raw-pixel and colour-histogram baselines.")
    ] = True,
    plots: Annotated[bool, typer.Option(help="Draw the plots of the HTML report.")] = True,
    workers: Annotated[
        int | None, typer.Option(help="Decoding processes (default: one per core).")
    ] = None,
) -> None:
    """Measure retrieval quality (mAP, P@k, R@k, N-S) and speed of embedders side by side.

    Writes results.json, results.md and index.html (table, precision-recall curves, score
    histograms, sample queries, t-SNE map) to the report folder.
    """
    import time

    from lookalike.evaluation.datasets import detect
    from lookalike.evaluation.report import table_rows, write_report
    from lookalike.evaluation.runner import EvalOptions, embedder_list
    from lookalike.evaluation.runner import evaluate as run_evaluation

    started = time.perf_counter()
    names = embedder_list(embedders or [], baselines=baselines)
    data = detect(dataset, out_dir / "data", kind=kind)
    err.print(
        f"{data.name}: {len(data.queries())} queries against {len(data.gallery())} images "
        f"({data.kind}); embedders: {', '.join(names)}"
    )
    results = run_evaluation(
        data,
        names,
        out_dir,
        options=EvalOptions(workers=workers),
        progress=lambda message: err.print(message, markup=False),
    )
    files = write_report(
        data, results, out_dir, seconds=time.perf_counter() - started, with_plots=plots
    )
    rows = table_rows(data, results)
    table = Table(title=f"{data.name} ({data.kind})", title_justify="left")
    for column in rows[0]:
        table.add_column(column, justify="left" if column == "embedder" else "right")
    for row in rows[1:]:
        table.add_row(*row)
    Console(highlight=False, width=max(out.width, 130)).print(table)
    out.print(
        f"Report: {files.html}  ({files.json.name}, {files.markdown.name} beside it); "
        f"{time.perf_counter() - started:.0f} s"
    )


@app.command()
def duplicates(
    index_dir: IndexDir,
    threshold: Annotated[
        float, typer.Option(help="Cosine similarity from which two images are copies.")
    ] = 0.75,
    k: Annotated[int, typer.Option("-k", help="Neighbours examined per image.")] = 10,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="Write group,id,path,label rows here.")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the groups as JSON here.")
    ] = None,
) -> None:
    """Group exact duplicates, edited copies and near-duplicates of the index.

    Groups come from each image's nearest neighbours (never an all-pairs matrix): two images
    are linked when their similarity reaches the threshold, and linked images form a group.
    """
    import csv

    from lookalike.engine import SearchEngine

    if k < 1:
        fail(f"-k must be at least 1, got {k}")
    with SearchEngine.open(index_dir) as engine:
        total = len(engine)
        groups = engine.duplicates(threshold=threshold, k=k)
    grouped = sum(len(g) for g in groups)
    out.print(
        f"{len(groups)} groups holding {grouped} of {total} images "
        f"(threshold {threshold}, {k} neighbours each)."
    )
    for number, group in enumerate(groups[:20], start=1):
        out.print(f"group {number} ({len(group)} images):")
        for record in group:
            out.print(f"  {record.path}")
    if len(groups) > 20:
        out.print(f"... and {len(groups) - 20} more groups (use --csv or --json for all).")
    if csv_out is not None:
        with csv_out.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["group", "id", "path", "label"])
            for number, group in enumerate(groups, start=1):
                for record in group:
                    writer.writerow([number, record.id, record.path, record.label or ""])
    if json_out is not None:
        json_out.write_text(
            json.dumps(
                {
                    "threshold": threshold,
                    "k": k,
                    "images": total,
                    "groups": [
                        [{"id": r.id, "path": r.path, "label": r.label} for r in group]
                        for group in groups
                    ],
                },
                indent=2,
            )
            + "\n"
        )


@app.command()
def serve(
    index_dir: IndexDir,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    max_upload_mb: Annotated[float, typer.Option(help="Largest accepted upload, in MB.")] = 20.0,
    allow_writes: Annotated[
        bool, typer.Option(help="Allow adding and removing images through the API.")
    ] = False,
    default_k: Annotated[int, typer.Option(help="Results per search by default.")] = 12,
) -> None:
    """Serve the search page and the REST API (docs at /docs) for an index.

    The model and the vectors are loaded before the first request. Read-only unless
    --allow-writes; `lookalike index` may update the index meanwhile: searches see each commit.
    """
    import uvicorn

    from lookalike.store import check_is_index
    from lookalike.web.app import create_app
    from lookalike.web.settings import ServeSettings

    check_is_index(index_dir)
    if not 0 < port < 65536:
        fail(f"--port must be 1..65535, got {port}")
    settings = ServeSettings(
        index=index_dir.resolve(),
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        allow_writes=allow_writes,
        default_k=default_k,
    )
    err.print(
        f"lookalike: serving {index_dir} on http://{host}:{port}/ (API docs at /docs); "
        "Ctrl+C stops",
        markup=False,
    )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


def _mount_train() -> None:
    """`lookalike train ...` lives in its own module (model training needs PyTorch)."""
    try:
        from lookalike.cli.train import train_app
    except ImportError:  # the training module is optional while it is being built
        return
    app.add_typer(train_app, name="train")


_mount_train()


def main() -> None:
    """Console entry point: library errors become one line on stderr and exit code 2."""
    try:
        app()
    except LookalikeError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        err.print(
            "interrupted: the index keeps everything committed so far; run the command again "
            "to finish",
            markup=False,
        )
        sys.exit(EXIT_INTERRUPTED)
