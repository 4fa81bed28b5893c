"""Rendering the library's progress events as a progress bar."""

from __future__ import annotations

from types import TracebackType

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

from lookalike.indexing import IndexProgress

_LABELS = {
    "hash": "Fingerprinting",
    "embed": "Embedding",
    "compact": "Compacting",
    "ann": "HNSW graph",
}


class RateColumn(ProgressColumn):
    """Images per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:6.1f} img/s" if speed else "   -- img/s", style="cyan")


class ProgressBar:
    """A callable for ``index_folder(progress=...)`` that draws one bar per phase."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<14}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> ProgressBar:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def __call__(self, event: IndexProgress) -> None:
        if event.phase == "scan":
            return
        if event.phase not in self._tasks:
            if event.total == 0:
                return
            label = _LABELS.get(event.phase, event.phase)
            self._tasks[event.phase] = self._progress.add_task(label, total=event.total)
        self._progress.update(self._tasks[event.phase], completed=event.done, total=event.total)
