"""`lookalike search --explain DIR`: overlay PNGs showing why each result matches."""

from __future__ import annotations

from pathlib import Path

from lookalike.cli.console import err
from lookalike.engine import SearchEngine
from lookalike.matches import SearchResult


def explanation_paths(folder: Path, query: str, rank: int) -> tuple[Path, Path]:
    """Where the overlays of a query's result at ``rank`` go: DIR/<query-stem>-rank<r>-query.png
    and ...-result.png."""
    stem = f"{Path(query).stem}-rank{rank}"
    return folder / f"{stem}-query.png", folder / f"{stem}-result.png"


def write_explanations(engine: SearchEngine, results: list[SearchResult], folder: Path) -> int:
    """Write both overlays of every match of every result (of the result's region, where the
    search had a box); returns the number of files."""
    engine.explainer.spatial()  # a clear error before anything is written
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for result in results:
        for match in result.matches:
            explanation = engine.explain(result.query, match.id, box=result.box, overlays=True)
            query_png, result_png = explanation_paths(folder, result.query, match.rank)
            for path, png in (
                (query_png, explanation.query_overlay),
                (result_png, explanation.result_overlay),
            ):
                if png is not None:
                    path.write_bytes(png)
                    written += 1
    err.print(f"saved {written} explanation overlays in {folder}", markup=False)
    return written
