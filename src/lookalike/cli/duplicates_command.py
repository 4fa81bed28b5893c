"""`lookalike duplicates`: group near-duplicate images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lookalike.cli.console import fail, out

duplicates_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@duplicates_app.callback(invoke_without_command=True)
def duplicates(
    ctx: typer.Context,
    index_dir: Annotated[
        Path | None,
        typer.Option(
            "--index",
            "-i",
            help="Index directory (needed when no subcommand is given).",
            show_default=False,
        ),
    ] = None,
    threshold: Annotated[
        float, typer.Option(help="Cosine similarity from which two images are copies.")
    ] = 0.75,
    k: Annotated[int, typer.Option("-k", help="Neighbours examined per image.")] = 10,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="Write group,id,path,label rows here.")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the groups as JSON here.")
    ] = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Confirm each pair by geometric verification of the two files (local "
            "features, mirror-aware) and drop pairs that are not the same picture.",
        ),
    ] = False,
) -> None:
    """Group exact duplicates, edited copies and near-duplicates of the index.

    Without a subcommand it prints the groups (needs --index); `apply` and `undo` act on a
    plan of what to do with them.

    Groups come from each image's nearest neighbours (never an all-pairs matrix): two images
    are linked when their similarity reaches the threshold (and, with --verify, when their
    files are confirmed as the same picture), and linked images form a group.
    """
    if ctx.invoked_subcommand is not None:
        return
    if index_dir is None:
        fail("missing option --index: give the index directory, e.g. --index my-index")
    import csv

    from lookalike.engine import SearchEngine

    if k < 1:
        fail(f"-k must be at least 1, got {k}")
    with SearchEngine.open(index_dir) as engine:
        total = len(engine)
        scan = engine.duplicate_scan(threshold=threshold, k=k, verify=verify)
    groups = scan.groups
    grouped = sum(len(g) for g in groups)
    out.print(
        f"{len(groups)} groups holding {grouped} of {total} images "
        f"(threshold {threshold}, {k} neighbours each)."
    )
    if verify:
        out.print(
            f"verified {scan.verified_pairs} pairs: {scan.dropped_pairs} dropped "
            "as not the same picture."
        )
    for number, group in enumerate(groups[:20], start=1):
        out.print(f"group {number} ({len(group)} images):")
        for record in group:
            out.print(f"  {record.path}")
    if len(groups) > 20:
        out.print(f"... and {len(groups) - 20} more groups (use --csv or --json for all).")
    if csv_out is not None:
        with csv_out.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["group", "id", "path", "label"])
            for number, group in enumerate(groups, start=1):
                for record in group:
                    writer.writerow([number, record.id, record.path, record.label or ""])
    if json_out is not None:
        json_out.write_text(
            json.dumps(
                {
                    "threshold": threshold,
                    "k": k,
                    "images": total,
                    "verified_pairs": scan.verified_pairs if verify else None,
                    "dropped_pairs": scan.dropped_pairs if verify else None,
                    "groups": [
                        [{"id": r.id, "path": r.path, "label": r.label} for r in group]
                        for group in groups
                    ],
                },
                indent=2,
            )
            + "\n"
        )
