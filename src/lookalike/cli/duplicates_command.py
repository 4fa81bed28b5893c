"""`lookalike duplicates`: group near-duplicate images."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lookalike.cli.console import IndexDir, fail, out
from lookalike.errors import UnknownImageError

if TYPE_CHECKING:
    from lookalike.engine import SearchEngine

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
        float | None,
        typer.Option(
            help="A cosine similarity from which two images pair, instead of the calibrated "
            "tier thresholds (default).",
            show_default=False,
        ),
    ] = None,
    k: Annotated[int, typer.Option("-k", help="Neighbours examined per image.")] = 10,
    include_similar: Annotated[
        bool,
        typer.Option(
            "--include-similar",
            help="Also pair similar shots (bursts, slight changes of viewpoint).",
        ),
    ] = False,
    keep: Annotated[
        list[str] | None,
        typer.Option(
            "--keep",
            help="A rule choosing each group's keeper, repeated in order: largest-resolution, "
            "largest-file, oldest-exif-date, newest, 'prefer-path GLOB', 'prefer-format "
            "raw,heic,jpeg'. Default: largest-resolution, largest-file, oldest-exif-date; "
            "last tie-break: the smallest id.",
            show_default=False,
        ),
    ] = None,
    plan_out: Annotated[
        Path | None,
        typer.Option(
            "--plan",
            help="Write the plan (each group's keeper, why, and the others) as JSON here, for "
            "`lookalike duplicates apply`. Nothing is touched.",
        ),
    ] = None,
    against: Annotated[
        Path | None,
        typer.Option(
            "--against",
            help="Another index (made with the same embedder): list which images of --index "
            "already exist in it, and which do not.",
        ),
    ] = None,
    csv_out: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            help="Write group,id,path,label,tier,score,keep,reason rows here (with --against: "
            "id,path,status,tier,score,match_id,match_path).",
        ),
    ] = None,
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json", help="Write the groups, their keepers and tiered pairs as JSON here."
        ),
    ] = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Confirm each pair by geometric verification of the two files (local "
            "features, mirror-aware) and drop pairs that are not the same picture.",
        ),
    ] = False,
    verify_undecided: Annotated[
        bool,
        typer.Option(
            "--verify-undecided/--no-verify-undecided",
            help="Check the few pairs no tier decides (cosine 0.7-0.92, standing out somewhat "
            "from their neighbourhoods, e.g. rotated copies) by a strict geometric "
            "verification of the two files, and link those that are the same picture "
            "(default on; off: such pairs are not linked, and no file is read).",
        ),
    ] = True,
) -> None:
    """Group exact duplicates, edited copies and near-duplicates of the index.

    Without a subcommand it prints the groups (needs --index); `apply` and `undo` act on a
    plan of what to do with them.

    Groups come from each image's nearest neighbours (never an all-pairs matrix): each pair
    is labelled identical (same bytes), same-picture, edited-copy (also a pair that stands out
    from both images' neighbourhoods, e.g. a crop among unrelated photos) or (with
    --include-similar) similar-shot, and linked images form a group; the few undecided pairs
    (e.g. rotated copies) are linked when geometric verification of the files confirms them
    (--no-verify-undecided: never, and no file is read). Each group's keeper is
    chosen by the --keep rules; --plan writes that plan for `apply`. Pairs marked with
    `not-duplicates` never come back. --against OTHER_INDEX instead lists which images of
    --index OTHER_INDEX already holds.
    """
    if ctx.invoked_subcommand is not None:
        return
    if index_dir is None:
        fail("missing option --index: give the index directory, e.g. --index my-index")
    from lookalike.cli import duplicates_output as shown
    from lookalike.duplicates.keep_rules import parse_rules
    from lookalike.duplicates.plan import make_plan
    from lookalike.duplicates.report import DuplicateOptions
    from lookalike.engine import SearchEngine

    if k < 1:
        fail(f"-k must be at least 1, got {k}")
    options = DuplicateOptions(
        k=k,
        include_similar=include_similar,
        verify=verify,
        threshold=threshold,
        verify_undecided=verify_undecided,
    )
    if against is not None:
        if plan_out is not None or keep:
            fail("--plan and --keep are for one index's groups; leave them out with --against")
        with SearchEngine.open(index_dir) as engine:
            found = engine.find_against(against, options)
        shown.print_against(found, index_dir, against)
        if csv_out is not None:
            shown.write_against_csv(csv_out, found)
        if json_out is not None:
            shown.write_json(json_out, shown.against_json(found, index_dir, against))
        return
    rules = parse_rules(keep)
    with SearchEngine.open(index_dir) as engine:
        report = engine.find_duplicates(options)
        directory = engine.directory.resolve()
    plan = make_plan(report, rules, index=directory)
    views = shown.group_views(report, plan)
    shown.print_groups(report, plan, views)
    if plan_out is not None:
        plan.write(plan_out)
        others = sum(len(g.others) for g in plan.groups)
        out.print(
            f"plan written to {plan_out}: {len(plan.groups)} groups, {others} files not kept "
            "(nothing touched; `lookalike duplicates apply` acts on it)."
        )
    if csv_out is not None:
        shown.write_groups_csv(csv_out, views)
    if json_out is not None:
        shown.write_json(json_out, shown.groups_json(report, plan, views, threshold=threshold, k=k))


@duplicates_app.command("not-duplicates")
def not_duplicates(
    first: Annotated[str, typer.Argument(help="An indexed image: its path or its id.")],
    second: Annotated[str, typer.Argument(help="The other image: its path or its id.")],
    index_dir: IndexDir,
) -> None:
    """Record that two images are not duplicates: later scans (and the page) never pair them
    again, even after they are renamed or indexed again."""
    from lookalike.engine import SearchEngine

    with SearchEngine.open(index_dir, writable=True) as engine:
        ids = [_image_id(engine, text) for text in (first, second)]
        new = engine.dismiss_pair(ids[0], ids[1])
        paths = [engine.record(i)[0].path for i in ids]
    if new:
        out.print(f"recorded: {paths[0]} and {paths[1]} are not duplicates.")
    else:
        out.print(f"already recorded: {paths[0]} and {paths[1]} are not duplicates.")


def _image_id(engine: SearchEngine, text: str) -> int:
    """An image named by its id, or by its path (as given, or resolved)."""
    if text.isdigit() and not Path(text).exists():
        return int(text)
    try:
        return engine.record_by_path(str(Path(text).expanduser().resolve())).id
    except UnknownImageError:
        return engine.record_by_path(text).id
