"""What watching did: one ``WatchBatch`` per commit, one ``WatchSummary`` for the whole run."""

from __future__ import annotations

from dataclasses import dataclass

from lookalike.index_options import SkippedFile


@dataclass(frozen=True)
class WatchBatch:
    """One commit. ``trigger``: 'events' (files that changed) or 'rescan' (the whole folder,
    at start and every ``WatchOptions.rescan`` seconds). ``added`` counts new images (a copy of
    an indexed file shares its vector), ``updated`` changed ones, ``moved`` renamed or moved
    ones (their vector kept), ``removed`` images whose file is gone. ``paths``: the files
    taken from events; ``busy``: the index was locked by another writer and the batch waits."""

    trigger: str
    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    skipped: tuple[SkippedFile, ...] = ()
    paths: tuple[str, ...] = ()
    seconds: float = 0.0
    busy: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.moved or self.removed or self.skipped)


@dataclass(frozen=True)
class WatchSummary:
    """A whole run: totals over its batches; ``interrupted``: a rescan in flight when the
    watcher was stopped was left unfinished (what it had committed stays)."""

    batches: int
    rescans: int
    added: int
    updated: int
    moved: int
    removed: int
    skipped: int
    seconds: float
    interrupted: bool = False
