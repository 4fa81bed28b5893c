"""The embedder an index was built with: rebuilt from its manifest, checked against it."""

from __future__ import annotations

import threading

from lookalike.embedders import create_embedder, resolve_spec
from lookalike.embedders.base import Embedder, EmbedderSpec
from lookalike.embedders.registry import entry_for
from lookalike.errors import EmbedderMismatchError, InvalidInputError
from lookalike.store import IndexStore


class IndexModel:
    """Builds the index's embedder on first use, once, and refuses one that differs."""

    def __init__(self, store: IndexStore, *, threads: int | None = None) -> None:
        self._store = store
        self._threads = threads
        self._model: Embedder | None = None
        # Server threads may ask for the model at once; it must be built only once.
        self._lock = threading.Lock()

    def adopt(self, model: Embedder) -> None:
        """Use a model already built (the one that just created the index)."""
        self._model = model

    def __call__(self) -> Embedder:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._build()
        return self._model

    def _build(self) -> Embedder:
        manifest = self._store.manifest
        model = create_embedder(manifest.embedder, threads=self._threads)
        if model.weights_digest != manifest.weights_digest or model.dim != manifest.dim:
            raise EmbedderMismatchError(
                f"{self._store.directory}: the installed weights of "
                f"{describe(model.spec)} (sha256 {model.weights_digest[:12]}…, dim "
                f"{model.dim}) differ from those that built this index (sha256 "
                f"{manifest.weights_digest[:12]}…, dim {manifest.dim}); rebuild the index"
            )
        return model

    def check_request(self, embedder: str | EmbedderSpec | None, metric: str | None) -> None:
        """Refuse an embedder or metric asked for that is not the index's own."""
        manifest = self._store.manifest
        if metric is not None and metric != manifest.metric:
            raise InvalidInputError(
                f"{self._store.directory}: index uses metric {manifest.metric!r}, not {metric!r}; "
                "the metric is fixed when an index is created: use a new --index folder"
            )
        if embedder is None:
            return
        wanted = resolve_spec(embedder)
        same_name = wanted.name == manifest.embedder.name
        # Model files (onnx, trained folders) are told apart by their path.
        same_file = entry_for(wanted.name) is not None or wanted.params.get(
            "path"
        ) == manifest.embedder.params.get("path")
        if not (same_name and same_file):
            raise EmbedderMismatchError(
                f"{self._store.directory}: index was built with embedder "
                f"{describe(manifest.embedder)}, not {describe(wanted)}; vectors of different "
                "models cannot be compared: use a new --index folder for the other embedder"
            )

    def check_quality(self, quality: str) -> None:
        """Refuse a quality preset other than the one the index was made with."""
        from lookalike.embedders.pretrained import INT8
        from lookalike.embedders.quality import apply_quality

        manifest = self._store.manifest
        recorded = manifest.embedder
        wanted = apply_quality(EmbedderSpec(recorded.name.removesuffix(INT8)), quality)
        if wanted != EmbedderSpec(recorded.name, recorded.params):
            raise EmbedderMismatchError(
                f"{self._store.directory}: index was made as {recorded.name} "
                f"{recorded.params or '(classic)'}, not as --quality {quality} makes it "
                f"({wanted.name} {wanted.params or '(classic)'}); the descriptor is fixed when an "
                "index is created: use a new --index folder, or leave --quality out"
            )


def describe(spec: EmbedderSpec) -> str:
    """An embedder as a message names it: its name, and its model file if it has one."""
    path = spec.params.get("path")
    return f"{spec.name} ({path})" if path else spec.name


__all__ = ["IndexModel", "describe"]
