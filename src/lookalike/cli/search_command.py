"""`lookalike search`: query an index with images, print or plot the matches."""

from __future__ import annotations

import json
import sys
from itertools import pairwise
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lookalike.cli.console import IndexDir, err, fail, out
from lookalike.errors import InvalidInputError
from lookalike.filters import NumericRange, SearchFilter
from lookalike.matches import SearchResult
from lookalike.query.geometry import DEFAULT_VERIFY_TOP
from lookalike.region import MIN_BOX_SIDE, Box
from lookalike.sources import scan_folder


def _expand_queries(queries: list[Path]) -> list[Path]:
    expanded: list[Path] = []
    for query in queries:
        if query.is_dir():
            # Results name each query as the user wrote its folder, not as scan_folder resolved it.
            base = query.expanduser().resolve()
            found = [query / Path(f.path).relative_to(base) for f in scan_folder(query)]
            if not found:
                fail(f"{query}: folder holds no images to search with")
            expanded.extend(found)
        elif not query.exists():
            fail(f"{query}: query image not found")
        else:
            expanded.append(query)
    return expanded


def search(
    index_dir: IndexDir,
    queries: Annotated[
        list[Path] | None,
        typer.Argument(help="Query images (or folders of them).", show_default=False),
    ] = None,
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
    milvus: Annotated[
        str | None,
        typer.Option(
            help="Search through Milvus at this URI (http://host:19530, or a milvus-lite "
            ".db path); the index's vectors are pushed there first (only what changed).",
            show_default=False,
        ),
    ] = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Copy mode: check the best candidates geometrically (local features, "
            "mirror-aware) and put edited copies of the query first; shows their inliers.",
        ),
    ] = False,
    verify_top: Annotated[
        int, typer.Option("--verify-top", help="Candidates --verify checks per query.")
    ] = DEFAULT_VERIFY_TOP,
    expansion: Annotated[
        bool | None,
        typer.Option(
            "--expansion/--no-expansion",
            help="Query expansion (each query averaged with its best results, searched again) "
            "on or off for this search. (default: as the index records; see `lookalike info`)",
            show_default=False,
        ),
    ] = None,
    hubness: Annotated[
        bool | None,
        typer.Option(
            "--hubness/--no-hubness",
            help="Hubness correction (images close to everything demoted; scores stay cosine "
            "similarities) on or off for this search. (default: as the index records)",
            show_default=False,
        ),
    ] = None,
    box: Annotated[
        str | None,
        typer.Option(
            "--box",
            metavar="X0,Y0,X1,Y1",
            help="Search with this region of the query only: pixels of the image as shown "
            "(after its EXIF orientation), top-left then bottom-right corner, both sides at "
            f"least {MIN_BOX_SIDE} px. Every query gets the same box.",
            show_default=False,
        ),
    ] = None,
    explain: Annotated[
        Path | None,
        typer.Option(
            "--explain",
            help="Why each result matches: write DIR/<query-stem>-rank<r>-query.png and "
            "...-result.png, each image with a heatmap of the parts that agree with the other "
            "(red: strongest). Needs an EfficientNet or triplet-head index.",
            show_default=False,
            metavar="DIR",
        ),
    ] = None,
    product_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="More like this product (an index made from a feed): the products most "
            "similar to the one with this id, its own images left out; instead of query images.",
            show_default=False,
        ),
    ] = None,
    group_by_id: Annotated[
        bool | None,
        typer.Option(
            "--group-by-id/--no-group-by-id",
            help="One result per product, by its best-matching image. (default: on for an "
            "index made from a feed)",
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
    if verify_top < 1:
        fail(f"--verify-top must be at least 1, got {verify_top}")
    if plot is not None and plot.suffix.lower() != ".png":
        fail(f"--plot must name a .png file, got {plot}")
    if product_id is not None and (queries or verify):
        fail("--id searches by an indexed product: drop the query images (and --verify)")
    if product_id is not None and (plot is not None or box is not None or explain is not None):
        fail("--plot, --box and --explain need query images; a search by --id has none")
    if product_id is None and not queries:
        fail("give query images (or folders of them), or --id PRODUCT_ID")
    try:
        region = Box.parse(box) if box is not None else None
    except InvalidInputError as exc:
        fail(f"--box: {exc}")
    paths = _expand_queries(queries or [])
    where = _search_filter(label, folder, minimum or [], maximum or [])
    found: list[SearchResult] = []
    with SearchEngine.open(index_dir) as engine:
        if milvus is not None:
            engine.attach_milvus(milvus)
        batches = [paths[start : start + 64] for start in range(0, len(paths), 64)]
        for chunk in batches if product_id is None else [[]]:
            if product_id is not None:
                results = [
                    engine.search_by_product(
                        product_id,
                        k=k,
                        where=where,
                        sort_by=sort,
                        expansion=expansion,
                        hubness=hubness,
                        group_by_product=group_by_id,
                    )
                ]
            else:
                results = engine.search(
                    [str(p) for p in chunk],
                    k=k,
                    where=where,
                    sort_by=sort,
                    verify=verify,
                    verify_top=verify_top,
                    expansion=expansion,
                    hubness=hubness,
                    box=region,
                    group_by_product=group_by_id,
                )
            for result in results:
                found.append(result)
                if as_json:
                    sys.stdout.write(json.dumps(result.to_json()) + "\n")
                    continue
                boxed = "" if result.box is None else f" (box {result.box.text()})"
                table = Table(
                    title=f"{result.query}{boxed}",
                    title_justify="left",
                    caption=None if sort else _order_note(result),
                    caption_justify="left",
                )
                table.add_column("rank", justify="right")
                table.add_column("score", justify="right")
                if verify:
                    table.add_column("inliers", justify="right")
                products = any(m.product_id is not None for m in result.matches)
                if products:
                    table.add_column("product")
                table.add_column("path", overflow="fold")
                table.add_column("label")
                table.add_column("metadata")
                for m in result.matches:
                    fields = ", ".join(f"{key}={value}" for key, value in m.metadata.items())
                    inliers = [] if not verify else ["-" if m.inliers is None else str(m.inliers)]
                    product = [m.product_id or ""] if products else []
                    cells = [*product, m.path, m.label or "", fields]
                    table.add_row(str(m.rank), f"{m.score:.4f}", *inliers, *cells)
                out.print(table)
        if explain is not None:
            from lookalike.cli.explain_output import write_explanations

            write_explanations(engine, found, explain)
    if plot is not None:
        _plot_results(found, plot)


def _order_note(result: SearchResult) -> str | None:
    """A line under a table whose ranks do not follow its scores: the re-ranking stages
    (query expansion, the hubness correction, the copy check) order the matches, and a score
    stays each image's similarity to the query itself (README: "Scores stay cosine
    similarities")."""
    scores = [m.score for m in result.matches]
    if all(a >= b for a, b in pairwise(scores)):
        return None
    return (
        "Ranked by the re-ranking stages (query expansion, hubness correction, copy check); "
        "a score is the image's similarity to the query alone, so ranks and scores can "
        "disagree (--no-expansion --no-hubness ranks by score)."
    )


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
