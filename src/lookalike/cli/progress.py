"""Rendering the library's progress events as a progress bar."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from lookalike.index_options import IndexProgress

_LABELS = {
    "download": "Downloading",
    "failed": "Failed",
    "hash": "Fingerprinting",
    "embed": "Embedding",
    "compact": "Compacting",
    "ann": "HNSW graph",
    "check": "Checking",  # duplicates apply: files compared with the plan
    "act": "Acting",  # duplicates apply: duplicates moved, linked or trashed
}


class RateColumn(ProgressColumn):
    """Images per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:6.1f} img/s" if speed else "   -- img/s", style="cyan")


class PhaseBars:
    """One progress bar per phase of a long job; ``detail`` is the column beside the count
    (images/s for indexing, losses for training). Use as a context manager."""

    def __init__(self, console: Console, detail: ProgressColumn, *, enabled: bool = True) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<14}"),
            BarColumn(),
            MofNCompleteColumn(),
            detail,
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def show(self, phase: str, label: str, done: int, total: int, **fields: Any) -> None:
        if phase not in self._tasks:
            self._tasks[phase] = self._progress.add_task(label, total=total, **fields)
        self._progress.update(self._tasks[phase], completed=done, total=total, **fields)


class ProgressBar(PhaseBars):
    """A callable for ``index_folder(progress=...)`` that draws one bar per phase."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        super().__init__(console, RateColumn(), enabled=enabled)

    def __call__(self, event: IndexProgress) -> None:
        if event.phase == "scan" or (event.total == 0 and event.phase not in self._tasks):
            return
        self.show(event.phase, _LABELS.get(event.phase, event.phase), event.done, event.total)
