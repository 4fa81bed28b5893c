"""Pictures of an evaluation: precision-recall curves, score histograms, query montages and a
2-D map of the embedding. Matplotlib (Agg) and scikit-learn are imported only here."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageOps

from lookalike.evaluation.metrics import RECALL_LEVELS

_GREEN = (22, 163, 74)
_RED = (220, 38, 38)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pr_curves(curves: dict[str, Sequence[float]], out: Path, *, title: str) -> Path:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4.5), dpi=110)
    for name, curve in curves.items():
        axes.plot(RECALL_LEVELS, curve, marker="o", markersize=3, label=name)
    axes.set(
        xlabel="recall", ylabel="interpolated precision", xlim=(0, 1), ylim=(0, 1.02), title=title
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out)
    plt.close(figure)
    return out


def score_histogram(
    relevant: npt.NDArray[np.float32],
    irrelevant: npt.NDArray[np.float32],
    out: Path,
    *,
    title: str,
) -> Path:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=110)
    values = np.concatenate([relevant, irrelevant]) if len(relevant) + len(irrelevant) else [0.0]
    bins = np.linspace(float(np.min(values)), float(np.max(values)) + 1e-6, 50)
    axes.hist(irrelevant, bins=bins, alpha=0.6, density=True, label="irrelevant", color="#dc2626")
    axes.hist(relevant, bins=bins, alpha=0.6, density=True, label="relevant", color="#16a34a")
    axes.set(xlabel="score (higher is more similar)", ylabel="density", title=title)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out)
    plt.close(figure)
    return out


def top_scores_histogram(scores: Sequence[float], out: Path, *, title: str) -> Path:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5, 3), dpi=110)
    axes.hist(scores, bins=min(20, max(5, len(scores))), color="#2563eb")
    axes.set(xlabel="score", ylabel="results", title=title)
    figure.tight_layout()
    figure.savefig(out)
    plt.close(figure)
    return out


def _tile(path: Path, size: int, caption: str, colour: tuple[int, int, int] | None) -> Image.Image:
    tile = Image.new("RGB", (size, size + 18), "white")
    try:
        with Image.open(path) as image:
            thumb = ImageOps.contain(
                ImageOps.exif_transpose(image).convert("RGB"), (size - 8, size - 8)
            )
    except OSError:
        thumb = Image.new("RGB", (size - 8, size - 8), (200, 200, 200))
    tile.paste(thumb, ((size - thumb.width) // 2, (size - thumb.height) // 2))
    draw = ImageDraw.Draw(tile)
    if colour is not None:
        draw.rectangle((1, 1, size - 2, size - 2), outline=colour, width=4)
    draw.text((4, size + 2), caption[:24], fill=(20, 20, 20))
    return tile


def montage(
    rows: Sequence[tuple[Path, Sequence[tuple[Path, float, bool | None]]]],
    out: Path,
    *,
    size: int = 128,
) -> Path:
    """One row per query: the query, then its results with scores; a green frame marks a
    correct result, a red one a wrong result, none where correctness is unknown."""
    columns = 1 + max((len(results) for _, results in rows), default=0)
    sheet = Image.new("RGB", (columns * (size + 6), len(rows) * (size + 24)), "white")
    for r, (query, results) in enumerate(rows):
        y = r * (size + 24)
        sheet.paste(_tile(query, size, "query", (37, 99, 235)), (0, y))
        for c, (path, score, correct) in enumerate(results, start=1):
            colour = None if correct is None else (_GREEN if correct else _RED)
            sheet.paste(_tile(path, size, f"{c}. {score:.3f}", colour), (c * (size + 6), y))
    sheet.save(out)
    return out


def embedding_map(
    vectors: npt.NDArray[np.float32], groups: Sequence[str], out: Path, *, title: str, seed: int = 0
) -> Path:
    """t-SNE of the vectors (after PCA to 50 dimensions), coloured by group."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    reduced = PCA(n_components=min(50, *vectors.shape), random_state=seed).fit_transform(vectors)
    perplexity = float(min(30, max(2, (len(vectors) - 1) // 3)))
    coords = TSNE(
        n_components=2, init="pca", random_state=seed, perplexity=perplexity
    ).fit_transform(reduced)
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 5), dpi=110)
    names = sorted(set(groups))
    colours = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    labels = np.asarray(groups)
    for i, name in enumerate(names):
        mask = labels == name
        axes.scatter(
            coords[mask, 0],
            coords[mask, 1],
            s=6,
            color=colours(i % colours.N),
            label=name if len(names) <= 20 else None,
        )
    if len(names) <= 20:
        axes.legend(fontsize=7, markerscale=2, loc="best")
    axes.set(title=title, xticks=[], yticks=[])
    figure.tight_layout()
    figure.savefig(out)
    plt.close(figure)
    return out
