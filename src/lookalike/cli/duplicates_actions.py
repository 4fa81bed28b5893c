"""`lookalike duplicates apply PLAN` and `lookalike duplicates undo JOURNAL`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lookalike.cli.console import err, fail, out
from lookalike.cli.progress import ProgressBar

#: Exit code of an undo that left some files alone (each named on stderr).
EXIT_PARTLY_UNDONE = 1

_INDEX_HELP = "Index directory to keep in step (default: the one the {} names)."


def apply(
    plan: Annotated[
        Path,
        typer.Argument(help="Plan file written by `lookalike duplicates --plan` or the page."),
    ],
    move_to: Annotated[
        Path | None,
        typer.Option(
            "--move-to",
            help="Move each duplicate under this folder, keeping its path below the "
            "common folder of the plan's files (a taken name gets ~1, ~2...).",
        ),
    ] = None,
    hardlink: Annotated[
        bool,
        typer.Option(
            "--hardlink",
            help="Replace each duplicate by a hard link to the file kept (same filesystem). "
            "The bytes of a duplicate that differ from the kept file's are kept in "
            "the hidden folder .JOURNAL.backup beside the journal, for undo.",
        ),
    ] = False,
    trash: Annotated[
        bool, typer.Option("--trash", help="Send each duplicate to the desktop trash.")
    ] = False,
    journal: Annotated[
        Path | None,
        typer.Option(
            "--journal", help="Journal to write (default: beside the plan, PLAN.journal.json)."
        ),
    ] = None,
    index_dir: Annotated[
        Path | None,
        typer.Option("--index", "-i", help=_INDEX_HELP.format("plan"), show_default=False),
    ] = None,
    skip_changed: Annotated[
        bool,
        typer.Option(
            "--skip-changed",
            help="Act on the files still as planned when others changed since the plan "
            "(default: do nothing and list them).",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Act on a plan's duplicates (never on the file kept): move, hard-link or trash them.

    Every file is first checked against the plan (size, mtime, content hash); the journal
    records each action before it is taken, so `lookalike duplicates undo JOURNAL` puts
    everything back, even after a crash. The index follows every move. Nothing is deleted.
    """
    from lookalike.duplicates.actions import ApplyOptions, apply_plan
    from lookalike.duplicates.journal import Action
    from lookalike.duplicates.plan_file import read_plan
    from lookalike.engine import SearchEngine

    chosen = [a for a, on in ((Action.MOVE, move_to), (Action.HARDLINK, hardlink),
                              (Action.TRASH, trash)) if on]  # fmt: skip
    if len(chosen) != 1:
        fail("choose one action: --move-to DIR, --hardlink or --trash")
    options = ApplyOptions(
        chosen[0],
        move_to=move_to.expanduser().absolute() if move_to is not None else None,
        journal=journal,
        skip_changed=skip_changed,
    )
    planned = read_plan(plan)
    with (
        SearchEngine.open(index_dir or planned.index, writable=True) as engine,
        ProgressBar(err, enabled=not quiet) as bar,
    ):
        report = apply_plan(planned, options, engine.writer, progress=bar)
    for refused in report.refused:
        err.print(f"skipped {refused.path}: {refused.reason}")
    verb = {Action.MOVE: "moved", Action.HARDLINK: "hard-linked", Action.TRASH: "trashed"}
    where = f" under {move_to}" if move_to is not None else ""
    out.print(
        f"{verb[report.action]} {report.acted} duplicate(s), {_size(report.bytes)}{where}; "
        f"{len(report.refused)} skipped."
    )
    if report.unindexed:
        out.print(f"{report.unindexed} of them were not in the index (it was left as it was).")
    if report.backup is not None:
        out.print(
            f"the bytes of replaced files that differed from the file kept are in "
            f"{report.backup} (undo needs them; delete the folder to free their space)."
        )
    out.print(f"journal: {report.journal} (undo: lookalike duplicates undo {report.journal})")


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 1e6 else f"{count / 1e3:.0f} kB"


def undo(
    journal: Annotated[Path, typer.Argument(help="Journal written by `duplicates apply`.")],
    index_dir: Annotated[
        Path | None,
        typer.Option("--index", "-i", help=_INDEX_HELP.format("journal"), show_default=False),
    ] = None,
) -> None:
    """Put back everything a `duplicates apply` did, as its journal records it.

    A file that appeared where one is to be put back is left alone and named; running undo
    again is harmless. The index follows (a trashed image comes back with its vector).
    """
    from lookalike.duplicates.actions import undo_journal
    from lookalike.duplicates.journal import read_journal
    from lookalike.engine import SearchEngine

    recorded = read_journal(journal)
    with SearchEngine.open(index_dir or recorded.index, writable=True) as engine:
        report = undo_journal(journal, engine.writer)
    for problem in report.problems:
        err.print(f"left alone: {problem}")
    out.print(
        f"put back {report.restored} file(s); {report.already} already in place; "
        f"{len(report.problems)} left alone."
    )
    if report.problems:
        raise typer.Exit(EXIT_PARTLY_UNDONE)
