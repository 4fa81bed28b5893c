"""Writing an evaluation as JSON, Markdown and an HTML page with its plots (no network needed
to open it: every picture is a file beside the page)."""

from __future__ import annotations

import html
import json
import os
import platform
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from lookalike.evaluation import plots
from lookalike.evaluation.datasets import Dataset
from lookalike.evaluation.runner import EmbedderEvaluation, slug
from lookalike.version import __version__


@dataclass(frozen=True)
class ReportFiles:
    json: Path
    markdown: Path
    html: Path


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table_rows(dataset: Dataset, results: list[EmbedderEvaluation]) -> list[list[str]]:
    header = ["embedder", "mAP", "P@1", "P@5", "P@10", "R@10", "R@1"]
    if dataset.has_ns:
        header.append("N-S")
    header += ["dim", "search ms", "index img/s", "query ms (p50)"]
    rows = [header]
    for r in results:
        s = r.scores
        row = [
            r.name,
            _fmt(s.map),
            _fmt(s.precision_at_1),
            _fmt(s.precision_at_5),
            _fmt(s.precision_at_10),
            _fmt(s.recall_at_10),
            _fmt(s.recall_at_1),
        ]
        if dataset.has_ns:
            row.append(_fmt(s.ns, 2))
        row += [
            str(r.dim),
            f"{r.search_ms:.2f}",
            f"{r.images_per_second:.1f}",
            f"{r.query_ms_p50:.1f}",
        ]
        rows.append(row)
    return rows


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines) + "\n"


def dataset_json(dataset: Dataset) -> dict[str, object]:
    """What a report's results.json says about the dataset."""
    return {
        "name": dataset.name,
        "kind": dataset.kind,
        "root": str(dataset.root),
        "images": len(dataset.items),
        "queries": len(dataset.queries()),
        "gallery": len(dataset.gallery()),
        "groups": len({i.group for i in dataset.items}),
        "primary_metric": dataset.primary_metric,
    }


def write_report(
    dataset: Dataset,
    results: list[EmbedderEvaluation],
    out_dir: Path,
    *,
    seconds: float,
    with_plots: bool = True,
) -> ReportFiles:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = table_rows(dataset, results)
    summary = {
        "dataset": dataset_json(dataset),
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "lookalike_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "results": [
            {
                "embedder": r.name,
                "spec": r.spec.to_json(),
                **asdict(r.scores),
                "images_per_second": r.images_per_second,
                "index_seconds": r.index_seconds,
                "query_ms_p50": r.query_ms_p50,
                "dim": r.dim,
                "bytes_per_vector": r.dim * 4,
                "search_ms": r.search_ms,
            }
            for r in results
        ],
    }
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps(summary, indent=2) + "\n")
    md_path = out_dir / "results.md"
    md_path.write_text(
        f"# {dataset.name} ({dataset.kind})\n\n{_scope(dataset)}\n\n" + markdown_table(rows)
    )
    figures = _figures(dataset, results, out_dir) if with_plots else []
    html_path = out_dir / "index.html"
    html_path.write_text(_page(dataset, rows, figures, seconds))
    return ReportFiles(json_path, md_path, html_path)


def _figures(
    dataset: Dataset, results: list[EmbedderEvaluation], out_dir: Path
) -> list[tuple[str, str]]:
    """(caption, file name) of every picture, in page order."""
    figures = []
    pr = plots.pr_curves(
        {r.name: r.scores.pr_curve for r in results},
        out_dir / "pr-curves.png",
        title=f"Precision-recall, {dataset.name}",
    )
    figures.append(("Precision-recall curves (interpolated, averaged over queries)", pr.name))
    for r in results:
        name = slug(r.name)
        hist = plots.score_histogram(
            r.relevant_scores,
            r.irrelevant_scores,
            out_dir / f"scores-{name}.png",
            title=f"Scores, {r.name}",
        )
        figures.append((f"{r.name}: scores of relevant vs irrelevant results", hist.name))
        rows = [(s.query, [(p, score, ok) for p, score, ok in s.results]) for s in r.samples]
        sheet = plots.montage(rows, out_dir / f"samples-{name}.png")
        figures.append(
            (
                f"{r.name}: sample queries and their top results (green: relevant, red: not)",
                sheet.name,
            )
        )
        if len(set(r.map_groups)) > 1:
            tsne = plots.embedding_map(
                r.map_vectors,
                r.map_groups,
                out_dir / f"map-{name}.png",
                title=f"t-SNE of {r.name} embeddings",
            )
            figures.append(
                (f"{r.name}: 2-D map of the embedding (t-SNE), coloured by label", tsne.name)
            )
    return figures


def _scope(dataset: Dataset) -> str:
    queries, gallery = len(dataset.queries()), len(dataset.gallery())
    inside = all(item.gallery for item in dataset.items if item.query)
    against = f"the other {gallery - 1:,}" if inside else f"{gallery:,}"
    return (
        f"{queries:,} queries, each against {against} images. dim: floats per vector (4 bytes "
        "each); search ms: one exact top-10 search of the gallery's vectors; query ms: one "
        "image file searched end to end (decode, embed, search)."
    )


def _page(
    dataset: Dataset, rows: list[list[str]], figures: list[tuple[str, str]], seconds: float
) -> str:
    intro = (
        f"{html.escape(_scope(dataset))} ({html.escape(dataset.kind)} layout), "
        f"{len({i.group for i in dataset.items})} groups. Primary metric: "
        f"{html.escape(dataset.primary_metric)}. Evaluated in {seconds:.0f} s by lookalike "
        f"{__version__}."
    )
    legend = (
        "mAP: mean average precision over queries. P@k: precision of the top k. R@10: share of "
        "a query's relevant images in its top 10. R@1: share of queries whose first result is "
        "relevant. N-S: UKBench score, relevant images (query included) among the top 4, out "
        "of 4."
    )
    return html_page(f"lookalike evaluation: {dataset.name}", intro, rows, figures, legend)


def html_page(
    title: str,
    intro_html: str,
    rows: list[list[str]],
    figures: list[tuple[str, str]],
    legend: str,
    *,
    text_columns: int = 1,
) -> str:
    """A self-contained report page: a title, an introduction (already HTML), the table
    (``rows[0]`` is the header; the first ``text_columns`` columns are left-aligned), a legend
    and the figures (caption, file name beside the page)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows[1:]
    )
    pictures = "".join(
        f'<figure><img src="{html.escape(name)}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for caption, name in figures
    )
    left = f"th:nth-child(-n+{text_columns}), td:nth-child(-n+{text_columns})"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #111; max-width: 1200px; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ border: 1px solid #ccc; padding: .3rem .6rem; text-align: right; }}
{left} {{ text-align: left; }}
figure {{ margin: 1.5rem 0; }} img {{ max-width: 100%; border: 1px solid #eee; }}
figcaption {{ color: #555; font-size: .9rem; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{intro_html}</p>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<p>{html.escape(legend)}</p>
{pictures}
</body></html>
"""
