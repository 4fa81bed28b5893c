"""`lookalike evaluate`: compare embedders on a benchmark and write a report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lookalike.cli.console import err, fail, out


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
        typer.Option("--embedder", "-e", help="Embedder to compare (repeat). (default: lite0)"),
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
    pca: Annotated[
        list[int] | None,
        typer.Option(
            help="Also score each embedder after a PCA to this many dimensions, learned on the "
            "gallery (repeat for several), to see what `lookalike index --pca` costs.",
            show_default=False,
        ),
    ] = None,
    whiten: Annotated[
        bool, typer.Option(help="With --pca: whiten the projection (as `index --whiten`).")
    ] = False,
    ablation: Annotated[
        bool,
        typer.Option(
            help="Run the ablation instead: the old recipe, then each step of the retrieval "
            "recipe (or each --embedder, the first as the reference), on the same queries, "
            "with bootstrap 95 % intervals of the difference to the first and the cost of each.",
        ),
    ] = False,
    distractors: Annotated[
        Path | None,
        typer.Option(
            help="With --kind copies: a folder of unrelated photos hidden among the originals.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Measure retrieval quality (mAP, P@k, R@k, N-S) and speed of embedders side by side.

    Writes results.json, results.md and index.html (table, precision-recall curves, score
    histograms, sample queries, t-SNE map) to the report folder.
    """
    import time

    from lookalike.evaluation.datasets import detect
    from lookalike.evaluation.report import table_rows, write_report
    from lookalike.evaluation.runner import EvalOptions, embedder_label, embedder_list
    from lookalike.evaluation.runner import evaluate as run_evaluation

    if ablation:
        if pca or whiten:
            fail("--pca and --whiten compare embedders; leave them out of --ablation")
        _ablation(dataset, out_dir, embedders or [], kind, distractors, workers, plots)
        return
    dims = tuple(pca or ())
    if any(d < 2 for d in dims):
        fail(f"--pca must be at least 2 dimensions, got {min(dims)}")
    if whiten and not dims:
        fail("--whiten needs --pca: it whitens the PCA projection")
    started = time.perf_counter()
    names = embedder_list(embedders or [], baselines=baselines)
    data = detect(dataset, out_dir / "data", kind=kind, distractors=distractors)
    err.print(
        f"{data.name}: {len(data.queries())} queries against {len(data.gallery())} images "
        f"({data.kind}); embedders: {', '.join(map(embedder_label, names))}"
    )
    results = run_evaluation(
        data,
        names,
        out_dir,
        options=EvalOptions(workers=workers, pca_dims=dims, whiten=whiten),
        progress=lambda message: err.print(message, markup=False),
    )
    files = write_report(
        data, results, out_dir, seconds=time.perf_counter() - started, with_plots=plots
    )
    _print_table(f"{data.name} ({data.kind})", table_rows(data, results), left=1)
    out.print(
        f"Report: {files.html}  ({files.json.name}, {files.markdown.name} beside it); "
        f"{time.perf_counter() - started:.0f} s"
    )


def _ablation(
    dataset: str,
    out_dir: Path,
    embedders: list[str],
    kind: str,
    distractors: Path | None,
    workers: int | None,
    plots: bool,
) -> None:
    import time

    from lookalike.evaluation.ablation import (
        ABLATION_STEPS,
        AblationOptions,
        embedder_configs,
        run_ablation,
    )
    from lookalike.evaluation.ablation_report import ablation_rows, write_ablation_report
    from lookalike.evaluation.datasets import detect

    started = time.perf_counter()
    configs = embedder_configs(embedders) if embedders else ABLATION_STEPS
    data = detect(dataset, out_dir / "data", kind=kind, distractors=distractors)
    err.print(
        f"{data.name}: {len(data.queries())} queries against {len(data.gallery())} images "
        f"({data.kind}); ablation of {len(configs)} configurations",
        markup=False,
    )
    result = run_ablation(
        data,
        configs,
        out_dir,
        options=AblationOptions(workers=workers),
        progress=lambda message: err.print(message, markup=False),
    )
    seconds = time.perf_counter() - started
    files = write_ablation_report(result, out_dir, seconds=seconds, with_plots=plots)
    _print_table(f"Ablation: {data.name} ({data.kind})", ablation_rows(result), left=3, width=200)
    out.print(
        "Δ: difference to the first row, 95 % bootstrap interval over the queries "
        "(* excludes zero)."
    )
    out.print(
        f"Report: {files.html}  ({files.json.name}, {files.markdown.name} beside it); "
        f"{time.perf_counter() - started:.0f} s"
    )


def _print_table(title: str, rows: list[list[str]], *, left: int, width: int = 130) -> None:
    table = Table(title=title, title_justify="left")
    for number, column in enumerate(rows[0]):
        table.add_column(column, justify="left" if number < left else "right")
    for row in rows[1:]:
        table.add_row(*row)
    Console(highlight=False, markup=False, width=max(out.width, width)).print(table)
