"""Reading a duplicate plan file (``lookalike-duplicate-plan`` version 1, written by
``lookalike duplicates --plan`` and by the page): for each group, the file to keep and the
others, each with the facts (size, mtime, content hash) it had when the plan was made.

Only what acting on a plan needs is read; other fields are ignored."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lookalike.errors import InvalidInputError

PLAN_FORMAT = "lookalike-duplicate-plan"
PLAN_VERSION = 1


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
    """Read and check a plan file; errors name the file, the field and the fix."""
    source = Path(path)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(
            f"{source}: no such plan file; write one with `lookalike duplicates --index INDEX "
            "--plan FILE`"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{source}: not a readable JSON plan file ({exc})") from None
    where = _Where(source)
    top = where.mapping(data, "the plan")
    if top.get("format") != PLAN_FORMAT:
        raise InvalidInputError(
            f"{source}: field 'format' is {top.get('format')!r}, expected {PLAN_FORMAT!r}: "
            "this is not a duplicate plan"
        )
    if top.get("version") != PLAN_VERSION:
        raise InvalidInputError(
            f"{source}: plan version {top.get('version')!r} is not understood (this lookalike "
            f"reads version {PLAN_VERSION}); make the plan again with this version"
        )
    index = where.text(top, "index")
    raw_groups = top.get("groups")
    if not isinstance(raw_groups, list):
        raise InvalidInputError(f"{source}: field 'groups' must be a list")
    groups = []
    for number, raw in enumerate(raw_groups):
        group = where.mapping(raw, f"groups[{number}]")
        others = group.get("others")
        if not isinstance(others, list):
            raise InvalidInputError(f"{source}: groups[{number}].others must be a list")
        groups.append(
            PlannedGroup(
                tier=str(group.get("tier", "")),
                keep=where.file(group.get("keep"), f"groups[{number}].keep"),
                others=tuple(
                    where.file(other, f"groups[{number}].others[{i}]")
                    for i, other in enumerate(others)
                ),
            )
        )
    return ActionPlan(source=source, index=Path(index), groups=tuple(groups))


@dataclass(frozen=True)
class _Where:
    source: Path

    def mapping(self, value: object, field: str) -> dict[str, object]:
        if not isinstance(value, dict):
            raise InvalidInputError(f"{self.source}: {field} must be a JSON object")
        return value

    def text(self, data: dict[str, object], field: str) -> str:
        value = data.get(field)
        if not isinstance(value, str) or not value:
            raise InvalidInputError(f"{self.source}: field {field!r} must be a non-empty string")
        return value

    def whole(self, data: dict[str, object], field: str, where: str) -> int:
        value = data.get(field)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInputError(f"{self.source}: {where}.{field} must be an integer")
        return value

    def file(self, value: object, where: str) -> PlannedFile:
        data = self.mapping(value, where)
        path = data.get("path")
        digest = data.get("hash")
        if not isinstance(path, str) or not Path(path).is_absolute():
            raise InvalidInputError(f"{self.source}: {where}.path must be an absolute path")
        if not isinstance(digest, str) or not digest:
            raise InvalidInputError(f"{self.source}: {where}.hash must be a content hash")
        return PlannedFile(
            id=self.whole(data, "id", where),
            path=path,
            size=self.whole(data, "size", where),
            mtime_ns=self.whole(data, "mtime_ns", where),
            hash=digest,
        )


__all__ = ["PLAN_FORMAT", "PLAN_VERSION", "ActionPlan", "PlannedFile", "PlannedGroup", "read_plan"]
