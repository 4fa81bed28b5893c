"""The layout of an index directory: the one place that names its files and folders.

```
INDEX_DIR/
  manifest.json       what the index is: format version, embedder spec and weights digest,
                      dim, metric, index type (written last at creation: a directory without
                      it is not an index)
  quantiser.npy       int8 indexes: each dimension's offset and scale (vector_codec.py), written
                      with the first committed vectors
  catalog.sqlite      images, fingerprints, labels, metadata, and where each vector lives; the
                      commit point (plus SQLite's -wal, -shm and -journal files beside it)
  segments/*.npy      immutable (n, dim) vector files (float32, or the manifest's
                      vector_dtype); durable before any catalog row refers to them, deleted
                      by the next writer once none does
  graph/ (ann/)       the HNSW graph searches use for big collections: graph, deleted ids and
                      PCA files, and ann.json pointing at the current ones (derived data)
  neighbours.npz      each image's nearest other images and their similarities, for the
                      hubness correction, with the ids it covers (derived data)
  uploads/            images added through `serve --allow-writes`, named by content
  downloads/          images fetched for a product feed, named by content, and urls.sqlite
                      (each URL's last content hash and validators); a feed image's path
  shards/<run>/       vectors a Ray cluster wrote during one `index --ray` run (deleted after)
  lock                held (flock) by the one process allowed to write
  .*.tmp              what an interrupted durable write left; deleted by the next writer
```

Thumbnails and model exports are caches outside the index directory (see ``lookalike.cache``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class IndexLayout:
    """Where each part of one index directory lives."""

    directory: Path

    MANIFEST = "manifest.json"
    CATALOG = "catalog.sqlite"
    SEGMENTS = "segments"
    GRAPH = "ann"
    NEIGHBOURS = "neighbours.npz"
    UPLOADS = "uploads"
    SHARDS = "shards"
    DOWNLOADS = "downloads"
    LOCK = "lock"
    QUANTISER = "quantiser.npy"

    @property
    def manifest(self) -> Path:
        return self.directory / self.MANIFEST

    @property
    def quantiser(self) -> Path:
        """The int8 ranges of an index storing int8 vectors."""
        return self.directory / self.QUANTISER

    @property
    def catalog(self) -> Path:
        return self.directory / self.CATALOG

    @property
    def catalog_files(self) -> tuple[Path, ...]:
        """The catalog and the files SQLite keeps beside it."""
        base = self.catalog
        return (base, *(base.with_name(base.name + s) for s in ("-wal", "-shm", "-journal")))

    @property
    def segments(self) -> Path:
        return self.directory / self.SEGMENTS

    def segment(self, name: str) -> Path:
        return self.segments / name

    @property
    def graph(self) -> Path:
        """The folder of the HNSW graph (named ``ann`` on disk since format 1)."""
        return self.directory / self.GRAPH

    @property
    def neighbours(self) -> Path:
        """The neighbour statistic the hubness correction reads (derived data)."""
        return self.directory / self.NEIGHBOURS

    @property
    def uploads(self) -> Path:
        return self.directory / self.UPLOADS

    @property
    def shards(self) -> Path:
        return self.directory / self.SHARDS

    @property
    def downloads(self) -> Path:
        """The download cache of feed images (see ``lookalike.feeds.fetching``)."""
        return self.directory / self.DOWNLOADS

    def shard_run(self, run: str) -> Path:
        return self.shards / run

    @property
    def lock(self) -> Path:
        return self.directory / self.LOCK

    def own_names(self) -> frozenset[str]:
        """Every name this layout may create at the top of the directory."""
        return frozenset(
            {p.name for p in self.catalog_files}
            | {self.MANIFEST, self.QUANTISER, self.SEGMENTS, self.GRAPH, self.NEIGHBOURS}
            | {self.UPLOADS, self.SHARDS, self.DOWNLOADS, self.LOCK}
        )

    def owns(self, name: str) -> bool:
        """Whether ``name``, at the top of the directory, is one this layout may create: one of
        its own names, or the temporary of an interrupted durable write of one."""
        if name.startswith(".") and name.endswith(".tmp"):
            name = name[1:-4].rpartition(".")[0]  # .<target>.<random>.tmp
        return name in self.own_names()

    def is_index(self) -> bool:
        return self.manifest.is_file()


__all__ = ["IndexLayout"]
