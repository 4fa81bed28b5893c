"""Reading a duplicate plan file for acting on it (``lookalike-duplicate-plan`` version 1,
``lookalike duplicates --plan`` and by the page): for each group, the file to keep and the
others, each with the facts (size, mtime, content hash) it had when the plan was made.

Only what acting on a plan needs is read; other fields are ignored."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lookalike.duplicates.plan import PLAN_FORMAT, PLAN_VERSION, Plan, PlanFile
from lookalike.errors import InvalidInputError


@dataclass(frozen=True)
class PlannedFile:
    """A file as the plan saw it: index id, absolute path, size, mtime and content hash."""

    id: int
    path: str
    size: int
    mtime_ns: int
    hash: str


@dataclass(frozen=True)
class PlannedGroup:
    """One group of the plan: the file to keep and the others (the only files acted on)."""

    tier: str
    keep: PlannedFile
    others: tuple[PlannedFile, ...]


@dataclass(frozen=True)
class ActionPlan:
    """A plan read from ``source`` for acting on it: the index it was made from and its groups.
    (Not ``duplicates.plan.Plan``, the plan as made: this reads only what actions need.)"""

    source: Path
    index: Path
    groups: tuple[PlannedGroup, ...]


def read_plan(path: Path | str) -> ActionPlan:
    """Read and check a plan file (through :meth:`Plan.read`, the one reader of the format);
    errors name the file, the field and the fix."""
    source = Path(path)
    if not source.is_file():
        raise InvalidInputError(
            f"{source}: no such plan file; write one with `lookalike duplicates --index INDEX "
            "--plan FILE`"
        )
    plan = Plan.read(source)
    return ActionPlan(
        source=source,
        index=Path(plan.index),
        groups=tuple(
            PlannedGroup(
                tier=group.tier.value,
                keep=_planned(group.keep, source, f"groups[{number}].keep"),
                others=tuple(
                    _planned(other.file, source, f"groups[{number}].others[{i}]")
                    for i, other in enumerate(group.others)
                ),
            )
            for number, group in enumerate(plan.groups)
        ),
    )


def _planned(file: PlanFile, source: Path, where: str) -> PlannedFile:
    if not Path(file.path).is_absolute():
        raise InvalidInputError(f"{source}: {where}.path must be an absolute path")
    if not file.hash:
        raise InvalidInputError(f"{source}: {where}.hash must be a content hash")
    return PlannedFile(file.id, file.path, file.size, file.mtime_ns, file.hash)


__all__ = ["PLAN_FORMAT", "PLAN_VERSION", "ActionPlan", "PlannedFile", "PlannedGroup", "read_plan"]
