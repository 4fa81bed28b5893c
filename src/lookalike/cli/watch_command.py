"""`lookalike watch`: keep an index in step with a folder until Ctrl+C or SIGTERM."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from lookalike.cli.console import IndexDir, out
from lookalike.watching import FolderWatcher, WatchBatch, WatchOptions, WatchSummary


def watch(
    photos: Annotated[
        Path, typer.Argument(help="Folder of images to watch (recursively).", show_default=False)
    ],
    index_dir: IndexDir,
    rescan: Annotated[
        float,
        typer.Option(
            help="Seconds between full rescans of the folder, which catch what filesystem "
            "events miss (one always runs at start; 0: only that one)."
        ),
    ] = 300.0,
    settle: Annotated[
        float,
        typer.Option(
            help="A file never seen closed after writing is taken once it has not changed "
            "for this many seconds (a closed file is taken at once)."
        ),
    ] = 3.0,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Decoding processes for rescans and large batches (default: one per core; "
            "0: none).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each batch and the summary as JSON lines.")
    ] = False,
) -> None:
    """Keep the index in step with PHOTOS as files are added, changed, moved, renamed and
    deleted, until Ctrl+C or SIGTERM.

    Filesystem events are debounced (a file is taken once it was closed after writing, never
    half-written) and committed in batches, as crash-safely as `lookalike index`; a moved file
    keeps its vector. The folder is rescanned at start and every --rescan seconds. The index is
    created with the default embedder if missing (run `lookalike index` first to choose
    another); its own options are used. A server on the same index sees each batch. The
    index's lock is held only while a batch is committed. Stopping lets the batch in flight
    finish, then prints a one-line summary (exit code 0).
    """
    options = WatchOptions(rescan=rescan, settle=settle, workers=workers)
    show = _print_json if as_json else _print_batch
    watcher = FolderWatcher(photos, index_dir, options=options, on_batch=show)

    def stop(signum: int, frame: FrameType | None) -> None:
        watcher.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if not as_json:
            every = f"every {rescan:g} s" if rescan > 0 else "only at start"
            out.print(f"Watching {watcher.root} into {index_dir} (rescan {every}); Ctrl+C to stop.")
        summary = watcher.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if as_json:
        out.print_json(data={"summary": _summary_json(summary)}, indent=None)
    else:
        out.print(_summary_line(summary, watcher.root))


def _counts(item: WatchBatch | WatchSummary, skipped: int) -> str:
    return (
        f"{item.added} added, {item.updated} updated, {item.moved} moved, "
        f"{item.removed} removed, {skipped} skipped"
    )


def _print_batch(batch: WatchBatch) -> None:
    clock = time.strftime("%H:%M:%S")
    if batch.busy:
        out.print(f"{clock} another process is writing the index; changes wait for it")
        return
    if batch.trigger == "rescan" and not batch.changed:
        out.print(f"{clock} rescan: the index is up to date ({batch.seconds:.1f} s)")
        return
    named = f": {', '.join(batch.paths[:3])}" if batch.paths else ""
    more = f" and {len(batch.paths) - 3} more" if len(batch.paths) > 3 else ""
    out.print(
        f"{clock} {batch.trigger}: {_counts(batch, len(batch.skipped))} "
        f"({batch.seconds:.2f} s){named}{more}"
    )
    for skipped in batch.skipped:
        out.print(f"  skipped {skipped.path}: {skipped.reason}")


def _print_json(batch: WatchBatch) -> None:
    out.print_json(
        data={
            "trigger": batch.trigger,
            "busy": batch.busy,
            "added": batch.added,
            "updated": batch.updated,
            "moved": batch.moved,
            "removed": batch.removed,
            "skipped": [{"path": s.path, "reason": s.reason} for s in batch.skipped],
            "paths": list(batch.paths),
            "seconds": round(batch.seconds, 3),
        },
        indent=None,
    )


def _summary_json(summary: WatchSummary) -> dict[str, object]:
    return {
        "batches": summary.batches,
        "rescans": summary.rescans,
        "added": summary.added,
        "updated": summary.updated,
        "moved": summary.moved,
        "removed": summary.removed,
        "skipped": summary.skipped,
        "seconds": round(summary.seconds, 3),
        "interrupted": summary.interrupted,
    }


def _summary_line(summary: WatchSummary, root: Path) -> str:
    cut = " (the rescan in flight was cut short at a commit)" if summary.interrupted else ""
    return (
        f"Stopped watching {root} after {summary.seconds:.0f} s: {summary.batches} batches, "
        f"{summary.rescans} rescans, {_counts(summary, summary.skipped)}{cut}."
    )
