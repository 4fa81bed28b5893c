"""`lookalike verify`: check an index against what was committed, optionally repair it."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from lookalike.cli.console import IndexDir, out

if TYPE_CHECKING:
    from lookalike.verification import VerifyReport

#: Exit code of a verification that found damage (usage errors stay 2, see console).
EXIT_DAMAGED = 1


def verify(
    index_dir: IndexDir,
    fix: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Drop a damaged graph and embed again the images whose vectors are lost or "
            "damaged (their files must still be there); say what was done.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check the manifest, catalog, vector segments and graph; name each problem and its fix.
    Exit code 1 when damage remains, 0 when the index is sound."""
    from lookalike.verification import repair
    from lookalike.verification import verify as check

    if fix:
        done = repair(index_dir)
        report = done.after
        if as_json:
            sys.stdout.write(json.dumps(done.to_json()) + "\n")
        else:
            _print(done.before)
            if done.before.clean:
                out.print("Nothing to repair.")
            else:
                graph = (
                    "dropped (the next `lookalike index` rebuilds it)"
                    if done.graph_dropped
                    else "kept"
                )
                out.print(
                    f"Repaired: graph {graph}; "
                    f"{done.reembedded} images embedded again; {len(done.removed)} removed "
                    "(their files are gone)."
                )
                for path in done.removed:
                    out.print(f"  removed {path}", markup=False)
                out.print("After repair:")
                _print(report)
    else:
        report = check(index_dir)
        if as_json:
            sys.stdout.write(json.dumps(report.to_json()) + "\n")
        else:
            _print(report)
    if not report.clean:
        raise typer.Exit(EXIT_DAMAGED)


def _print(report: VerifyReport) -> None:
    unchecked = (
        f", {report.unchecked_segments} written before checksums (checked for finite values only)"
        if report.unchecked_segments
        else ""
    )
    out.print(
        f"{report.directory}: {_count(report.images, 'image')}, "
        f"{_count(report.segments, 'segment')}{unchecked}, "
        f"graph {report.graph}; checked in {report.seconds:.2f} s.",
        markup=False,
    )
    if report.clean:
        out.print("OK: no damage found.")
        return
    out.print(f"DAMAGED: {_count(len(report.problems), 'problem')}.")
    for problem in report.problems:
        out.print(f"- {problem.part}: {problem.message}", markup=False)
        out.print(f"  fix: {problem.fix}", markup=False)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")
