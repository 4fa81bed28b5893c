"""Writing an ablation as results.json, results.md and index.html (a table, the precision-recall
curves, and what each column means)."""

from __future__ import annotations

import html
import json
import os
import platform
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from lookalike.evaluation import plots
from lookalike.evaluation.ablation import AblationResult
from lookalike.evaluation.bootstrap import Interval
from lookalike.evaluation.report import ReportFiles, dataset_json, html_page, markdown_table
from lookalike.version import __version__

_SHORT = {"map": "mAP", "precision_at_10": "P@10", "recall_at_1": "R@1", "ns": "N-S"}


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _interval(interval: Interval | None, digits: int) -> str:
    if interval is None:
        return "(reference)"
    mark = " *" if interval.excludes_zero else ""
    return (
        f"{interval.mean:+.{digits}f} [{interval.low:+.{digits}f}, "
        f"{interval.high:+.{digits}f}]{mark}"
    )


def ablation_rows(result: AblationResult) -> list[list[str]]:
    """The table: metrics, the difference to the first row with its interval, and costs."""
    shown = ["map", "precision_at_10", "recall_at_1"]
    shown += ["ns"] if result.dataset.has_ns else []
    header = ["configuration", "embedder", "stages"] + [_SHORT[m] for m in shown]
    header += [f"Δ {_SHORT[m]} [{_percent(result)} CI]" for m in result.compared]
    header += ["dim", "ms/image", "ms/query"]
    rows = [header]
    for row in result.rows:
        values = asdict(row.scores)
        line = [row.config.label, row.config.embedder.name, row.config.stages.describe()]
        line += [_fmt(values[m], 2 if m == "ns" else 3) for m in shown]
        line += [_interval(row.differences.get(m), 2 if m == "ns" else 3) for m in result.compared]
        line += [str(row.dim), f"{row.ms_per_image:.2f}", f"{row.ms_per_query:.1f}"]
        rows.append(line)
    return rows


def _percent(result: AblationResult) -> str:
    return f"{result.options.confidence * 100:g} %"


def _notes(result: AblationResult) -> str:
    first = result.rows[0].config.label
    options = result.options
    return (
        f"{result.dataset.name} ({result.dataset.kind}): {len(result.dataset.queries()):,} "
        f"queries against {len(result.dataset.gallery()):,} images, the same queries for every "
        f"configuration. Δ: mean paired difference to '{first}' over the queries, with the "
        f"{_percent(result)} percentile interval of {options.resamples:,} seeded bootstrap "
        "resamples of the queries; * marks an interval that excludes zero. Ranking: the "
        f"pipeline's top {options.shortlist} results (after its re-ranking stages), then the "
        "rest of the gallery in cosine order. ms/image: indexing time per image (decode, embed, "
        "store). ms/query: median of one warm search from an image file, end to end."
    )


def write_ablation_report(
    result: AblationResult, out_dir: Path, *, seconds: float, with_plots: bool = True
) -> ReportFiles:
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = result.dataset
    summary = {
        "kind": "ablation",
        "dataset": dataset_json(dataset),
        "compared": list(result.compared),
        "shortlist": result.options.shortlist,
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "lookalike_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "results": [
            {
                "configuration": row.config.label,
                "spec": row.config.embedder.to_json(),
                "stages": asdict(row.config.stages),
                **asdict(row.scores),
                "dim": row.dim,
                "ms_per_image": row.ms_per_image,
                "ms_per_query": row.ms_per_query,
                "difference": {m: i.to_json() for m, i in row.differences.items()},
            }
            for row in result.rows
        ],
    }
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    rows = ablation_rows(result)
    md_path = out_dir / "results.md"
    md_path.write_text(
        f"# Ablation: {dataset.name} ({dataset.kind})\n\n{_notes(result)}\n\n"
        + markdown_table(rows)
    )
    figures = []
    if with_plots:
        pr = plots.pr_curves(
            {row.config.label: row.scores.pr_curve for row in result.rows},
            out_dir / "pr-curves.png",
            title=f"Precision-recall, {dataset.name}",
        )
        figures.append(("Precision-recall curves (interpolated, averaged over queries)", pr.name))
    html_path = out_dir / "index.html"
    html_path.write_text(_page(result, rows, figures, seconds))
    return ReportFiles(json_path, md_path, html_path)


def _page(
    result: AblationResult, rows: list[list[str]], figures: list[tuple[str, str]], seconds: float
) -> str:
    intro = (
        f"{html.escape(_notes(result))} Evaluated in {seconds:.0f} s by lookalike {__version__}."
    )
    legend = (
        "mAP: mean average precision over queries. P@10: precision of the top 10. R@1: share of "
        "queries whose first result is relevant. N-S: UKBench score, relevant images (query "
        "included) among the top 4, out of 4."
    )
    title = f"lookalike ablation: {result.dataset.name}"
    return html_page(title, intro, rows, figures, legend, text_columns=3)


__all__ = ["ablation_rows", "write_ablation_report"]
