"""Keeping an index in step with a folder as its files change (``lookalike watch``)."""

from lookalike.watching.options import WatchOptions
from lookalike.watching.report import WatchBatch, WatchSummary
from lookalike.watching.watcher import FolderWatcher

__all__ = ["FolderWatcher", "WatchBatch", "WatchOptions", "WatchSummary"]
