"""The server's one SearchEngine, shared by request threads.

Search is CPU-bound on an ordinary machine, so embedding and searching run one request at a
time under a lock (decoding the upload happens outside it); the engine reloads its vectors when
another process (`lookalike index`) commits, so readers always see the last committed state.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import numpy as np

from lookalike.catalog import ImageRecord
from lookalike.engine import SearchEngine
from lookalike.filters import SearchFilter
from lookalike.imaging import load_prepared
from lookalike.indexing import IndexOptions
from lookalike.matches import SearchResult
from lookalike.sources import IMAGE_EXTENSIONS
from lookalike.web.settings import ServeSettings
from lookalike.web.thumbnails import Thumbnailer


class SearchService:
    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.engine = SearchEngine.open(settings.index, threads=settings.threads)
        self.thumbnails = Thumbnailer(settings.index)
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Load the model and the vectors before the first request, and run the network once."""
        with self._lock:
            model = self.engine.embedder
            size = model.input_spec.size
            model.embed(np.zeros((1, size, size, 3), dtype=np.uint8))
            if self.engine.search_index_type() == "hnsw":
                self.engine.ann_index()
            else:
                self.engine.vector_index()

    def close(self) -> None:
        self.engine.close()

    def search_upload(
        self, data: bytes, *, k: int, where: SearchFilter, sort_by: str | None
    ) -> tuple[SearchResult, float]:
        started = time.perf_counter()
        pixels = load_prepared(data, self.engine.embedder.input_spec)
        with self._lock:
            vector = self.engine.embedder.embed(pixels[None])
            matches = self.engine.search_vectors(vector, k=k, where=where, sort_by=sort_by)[0]
        return SearchResult("<uploaded image>", matches), time.perf_counter() - started

    def search_id(
        self, image_id: int, *, k: int, where: SearchFilter, sort_by: str | None
    ) -> tuple[SearchResult, float]:
        started = time.perf_counter()
        with self._lock:
            result = self.engine.search_by_id(image_id, k=k, where=where, sort_by=sort_by)
        return result, time.perf_counter() - started

    def record(self, image_id: int) -> tuple[ImageRecord, dict[str, object]]:
        with self._lock:
            return self.engine.record(image_id)

    def info(self) -> tuple[dict[str, object], dict[str, int], list[str]]:
        with self._lock:
            return self.engine.info().to_json(), self.engine.labels(), self.engine.numeric_fields()

    def count(self) -> int:
        with self._lock:
            return len(self.engine)

    def add_upload(self, data: bytes, filename: str) -> int:
        """Store an uploaded image under INDEX_DIR/uploads and index it; returns its id."""
        suffix = Path(filename).suffix.lower()
        if suffix not in IMAGE_EXTENSIONS:
            suffix = ".jpg"
        load_prepared(data, self.engine.embedder.input_spec)  # refuse non-images before storing
        folder = self.settings.index / "uploads"
        folder.mkdir(exist_ok=True)
        target = folder / f"{hashlib.blake2b(data, digest_size=16).hexdigest()}{suffix}"
        if not target.exists():
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
        with SearchEngine.open(self.settings.index, writable=True) as writer:
            writer.index_folder(folder, options=IndexOptions(workers=0))
            record = writer.record_by_path(str(target.resolve()))
        return record.id

    def remove(self, image_id: int) -> None:
        with self._lock:
            record, _ = self.engine.record(image_id)
        with SearchEngine.open(self.settings.index, writable=True) as writer:
            writer.remove([record.path])
