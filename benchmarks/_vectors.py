"""Vectors distributed like real embeddings: a Gaussian fitted (mean and covariance) to the
default embedder's vectors of real images, sampled and L2-normalised."""

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
    """``n`` unit vectors from a Gaussian with the mean and covariance of ``real``."""
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
