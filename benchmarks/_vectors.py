"""Vectors distributed like real embeddings, fitted to the default embedder's vectors of real
images, and the statistics that say how hard they are to search (LID, relative contrast)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from lookalike import SearchEngine
from lookalike.evaluation.datasets import fashion_mnist


def real_embeddings(workdir: Path | None = None) -> np.ndarray:
    """lite0 vectors of Fashion-MNIST's 10,000 test images (indexed once, then reused)."""
    workdir = workdir or Path(tempfile.gettempdir()) / "lookalike-bench"
    index = workdir / "serve-10k.idx"
    if not (index / "manifest.json").exists():
        data = fashion_mnist(workdir)
        with SearchEngine.create(index) as engine:
            engine.index_folder(data.root)
    with SearchEngine.open(index) as engine:
        _, vectors = engine.export_vectors()
    return vectors


def gaussian_like(real: np.ndarray, n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` unit vectors from one Gaussian with the mean and covariance of ``real``."""
    rng = np.random.default_rng(seed)
    mean = real.mean(axis=0)
    _, s, vt = np.linalg.svd(real - mean, full_matrices=False)
    basis = (s[:, None] / np.sqrt(len(real) - 1)) * vt  # covariance = basis.T @ basis
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        z = rng.standard_normal((m, len(s))).astype(np.float32)
        block = mean + z @ basis.astype(np.float32)
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


class Mixture:
    """A Gaussian mixture fitted to real vectors: k-means clusters, each a Gaussian with its
    members' mean and covariance, weighted by its size."""

    def __init__(self, real: np.ndarray, *, components: int = 100, seed: int = 0) -> None:
        from sklearn.cluster import KMeans

        labels = KMeans(components, n_init=1, random_state=seed).fit(real).labels_
        sizes = np.bincount(labels, minlength=components)
        self.weights = sizes / sizes.sum()
        self.means = []
        self.roots = []  # each cluster's covariance's root
        for c in range(components):
            members = real[labels == c]
            mean = members.mean(axis=0)
            self.means.append(mean)
            self.roots.append((members - mean) / np.sqrt(max(len(members) - 1, 1)))

    def fill(self, out: np.ndarray, rng: np.random.Generator) -> None:
        """Fill ``out`` (rows, dim) with unit vectors drawn from the mixture."""
        pick = rng.choice(len(self.weights), size=len(out), p=self.weights)
        for c, (mean, root) in enumerate(zip(self.means, self.roots, strict=True)):
            rows = np.flatnonzero(pick == c)
            for start in range(0, len(rows), 50_000):
                chunk = rows[start : start + 50_000]
                z = rng.standard_normal((len(chunk), len(root))).astype(np.float32)
                out[chunk] = mean + z @ root
        out /= np.linalg.norm(out, axis=1, keepdims=True)


def mixture_like(real: np.ndarray, n: int, *, components: int = 100, seed: int = 0) -> np.ndarray:
    """``n`` unit vectors from a Gaussian mixture fitted to ``real`` (:class:`Mixture`). Real
    embeddings are clustered (photos of the same kind of thing); one Gaussian is not, which
    makes its nearest neighbours far less distinct than real ones (see :func:`neighbour_stats`)."""
    mixture = Mixture(real, components=components, seed=seed)
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    mixture.fill(out, np.random.default_rng(seed))
    return out


def neighbour_stats(
    vectors: np.ndarray, *, queries: int = 1000, k: int = 20
) -> tuple[float, float]:
    """Median local intrinsic dimensionality (maximum-likelihood estimate over the ``k`` nearest
    neighbours) and median relative contrast (mean distance / 10th-neighbour distance) of
    ``queries`` members against the rest: the two figures that predict how hard approximate
    search is (higher LID and lower contrast: harder)."""
    rng = np.random.default_rng(0)
    rows = rng.choice(len(vectors), size=min(queries, len(vectors)), replace=False)
    sims = vectors[rows] @ vectors.T
    distance = np.sqrt(np.maximum(2.0 - 2.0 * sims, 0.0))
    distance[np.arange(len(rows)), rows] = np.nan  # not its own neighbour
    mean = np.nanmean(distance, axis=1)
    distance[np.arange(len(rows)), rows] = np.inf
    nearest = np.sort(np.partition(distance, k, axis=1)[:, :k], axis=1)
    ratios = np.log(np.maximum(nearest[:, :-1], 1e-12) / nearest[:, -1:])
    lid = -1.0 / np.mean(ratios, axis=1)
    return float(np.median(lid)), float(np.median(mean / nearest[:, 9]))
