"""What `lookalike duplicates` prints and writes: the groups with their tiers and keepers (text,
CSV, JSON), and for --against, which images of one index the other already holds."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lookalike.catalog_records import ImageRecord
from lookalike.cli.console import out
from lookalike.duplicates.against import AgainstReport
from lookalike.duplicates.plan import Plan, PlanGroup
from lookalike.duplicates.report import DuplicateReport, Tier, TieredGroup

#: Groups (or images) printed before pointing at --csv / --json.
SHOWN = 20


@dataclass(frozen=True)
class Member:
    record: ImageRecord
    tier: Tier
    score: float | None  # None for the keeper
    keeper: bool
    missing: bool = False


@dataclass(frozen=True)
class GroupView:
    """A scanned group beside its plan (None: every file but one is gone)."""

    group: TieredGroup
    plan: PlanGroup | None
    members: list[Member]


def group_views(report: DuplicateReport, plan: Plan) -> list[GroupView]:
    """Each group of ``report`` with its keeper first, then the others, then missing files."""
    planned = {g.keep.id: g for g in plan.groups}
    views = []
    for group in report.groups:
        mine = next((planned[i] for i in group.ids if i in planned), None)
        records = report.records
        members: list[Member] = []
        if mine is not None:
            members.append(Member(records[mine.keep.id], group.tier, None, True))
            members += [Member(records[o.file.id], o.tier, o.score, False) for o in mine.others]
            members += [
                Member(records[m.id], group.tier, None, False, True)
                for m in mine.missing
                if m.id in records
            ]
        else:
            members = [Member(records[i], group.tier, None, False) for i in group.ids]
        views.append(GroupView(group, mine, members))
    return views


def tier_counts(report: DuplicateReport) -> str:
    counts = {tier: 0 for tier in Tier}
    for group in report.groups:
        for pair in group.pairs:
            counts[pair.tier] += 1
    return ", ".join(f"{tier.value} {n}" for tier, n in counts.items() if n)


def print_groups(report: DuplicateReport, plan: Plan, views: list[GroupView]) -> None:
    grouped = sum(len(v.group.ids) for v in views)
    pairs = tier_counts(report)
    out.print(
        f"{len(views)} groups holding {grouped} of {report.images} images"
        + (f" (pairs: {pairs})." if pairs else ".")
    )
    if report.options.verify:
        out.print(
            f"verified {report.verified_pairs} pairs: {report.dropped_pairs} dropped "
            "as not the same picture."
        )
    if report.undecided_pairs:
        out.print(
            f"checked {report.undecided_pairs} undecided pairs geometrically: "
            f"{report.settled_pairs} confirmed by their local features and linked as edited copies."
        )
    if report.dismissed_pairs:
        out.print(f"{report.dismissed_pairs} pairs left out: marked as not duplicates.")
    out.print(f"keep rules: {', '.join(r.text() for r in plan.rules)}")
    for number, view in enumerate(views[:SHOWN], start=1):
        out.print(f"group {number} ({len(view.group.ids)} images, {view.group.tier.value}):")
        if view.plan is not None:
            out.print(f"  keep {view.plan.keep.path}  ({view.plan.reason})")
        for member in view.members:
            if member.keeper:
                continue
            if member.missing:
                out.print(f"    {member.record.path}  (cannot be read: never kept)")
            elif member.score is None:
                out.print(f"    {member.record.path}  (no keeper: the others cannot be read)")
            else:
                out.print(f"    {member.record.path}  ({member.tier.value}, {member.score:.3f})")
    if len(views) > SHOWN:
        out.print(f"... and {len(views) - SHOWN} more groups (use --csv or --json for all).")
    for note in plan.notes:
        out.print(f"note: {note}")


def write_groups_csv(path: Path, views: list[GroupView]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["group", "id", "path", "label", "tier", "score", "keep", "reason"])
        for number, view in enumerate(views, start=1):
            for m in view.members:
                writer.writerow(
                    [
                        number,
                        m.record.id,
                        m.record.path,
                        m.record.label or "",
                        m.tier.value,
                        "" if m.score is None else f"{m.score:.6f}",
                        "yes" if m.keeper else "no",
                        view.plan.reason if m.keeper and view.plan else "",
                    ]
                )


def groups_json(
    report: DuplicateReport, plan: Plan, views: list[GroupView], **head: object
) -> dict[str, Any]:
    verify = report.options.verify
    return {
        **head,
        "images": report.images,
        "include_similar": report.options.include_similar,
        "verified_pairs": report.verified_pairs if verify else None,
        "dropped_pairs": report.dropped_pairs if verify else None,
        "dismissed_pairs": report.dismissed_pairs,
        "undecided_pairs": report.undecided_pairs,
        "settled_pairs": report.settled_pairs,
        "rules": [r.text() for r in plan.rules],
        "groups": [
            {
                "tier": v.group.tier.value,
                "min_score": v.group.min_score,
                "keeper": v.plan.keep.id if v.plan else None,
                "reason": v.plan.reason if v.plan else None,
                "members": [
                    {
                        "id": m.record.id,
                        "path": m.record.path,
                        "label": m.record.label,
                        "tier": m.tier.value,
                        "score": m.score,
                        "keep": m.keeper,
                        "missing": m.missing,
                    }
                    for m in v.members
                ],
                "pairs": [
                    {"first": p.first, "second": p.second, "score": p.score, "tier": p.tier.value}
                    for p in v.group.pairs
                ],
            }
            for v in views
        ],
        "notes": list(plan.notes),
    }


def print_against(report: AgainstReport, new: Path, old: Path) -> None:
    found, fresh = report.found, report.new
    counts = ", ".join(f"{t} {n}" for t, n in report.tier_counts().items() if n)
    out.print(
        f"{len(found)} of {len(report.matches)} images of {new} already exist in {old} "
        f"({report.old_images} images)" + (f": {counts}." if counts else ".")
    )
    out.print(f"{len(fresh)} are not in {old}.")
    if found:
        out.print("already there:")
    for match in found[:SHOWN]:
        assert match.match is not None and match.tier is not None
        score = f", {match.score:.3f}" if match.score is not None else ""
        out.print(f"  {match.image.path}  ->  {match.match.path}  ({match.tier.value}{score})")
    if len(found) > SHOWN:
        out.print(f"  ... and {len(found) - SHOWN} more (use --csv or --json for all).")
    if fresh:
        out.print("new:")
    for match in fresh[:SHOWN]:
        out.print(f"  {match.image.path}")
    if len(fresh) > SHOWN:
        out.print(f"  ... and {len(fresh) - SHOWN} more (use --csv or --json for all).")


def write_against_csv(path: Path, report: AgainstReport) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "path", "status", "tier", "score", "match_id", "match_path"])
        for m in report.matches:
            writer.writerow(
                [
                    m.image.id,
                    m.image.path,
                    "found" if m.tier is not None else "new",
                    m.tier.value if m.tier is not None else "",
                    "" if m.score is None else f"{m.score:.6f}",
                    "" if m.match is None else m.match.id,
                    "" if m.match is None else m.match.path,
                ]
            )


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def against_json(report: AgainstReport, new: Path, old: Path) -> dict[str, Any]:
    return {
        "index": str(new),
        "against": str(old),
        "images": len(report.matches),
        "old_images": report.old_images,
        "tiers": report.tier_counts(),
        "found": [m.to_json() for m in report.found],
        "new": [m.to_json() for m in report.new],
    }
