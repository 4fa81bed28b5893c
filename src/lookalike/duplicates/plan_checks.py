"""Before a plan is acted on: is every file still what the plan saw (size, mtime, content
hash), is the file kept still there, and can the chosen action be done to it at all."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lookalike.duplicates.journal import Action
from lookalike.duplicates.plan_file import ActionPlan, PlannedFile, PlannedGroup
from lookalike.duplicates.trash import TrashCan, trash_for
from lookalike.errors import InvalidInputError
from lookalike.index_options import IndexProgress, ProgressCallback
from lookalike.sources import content_hash


@dataclass(frozen=True)
class RefusedFile:
    """A duplicate of the plan that will not be acted on, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class CheckedPlan:
    """The plan's duplicates split into those to act on (with their group) and those
    refused; ``trash`` is the trash can of each file to trash."""

    ready: tuple[tuple[PlannedGroup, PlannedFile], ...]
    refused: tuple[RefusedFile, ...]
    trash: dict[str, TrashCan]


class PlanChangedError(InvalidInputError):
    """Files of a plan changed since it was made (or cannot be acted on): nothing was done."""

    def __init__(self, plan: Path, refused: tuple[RefusedFile, ...]) -> None:
        lines = "\n".join(f"  {r.path}: {r.reason}" for r in refused)
        super().__init__(
            f"{plan}: {len(refused)} file(s) cannot be acted on as planned, so nothing was "
            f"done:\n{lines}\nmake the plan again, or pass --skip-changed to act on the rest"
        )
        self.refused = refused


def changed(file: PlannedFile) -> str | None:
    """Why ``file`` is no longer what the plan saw, or None when it is."""
    try:
        stat = Path(file.path).stat()
    except FileNotFoundError:
        return "it is gone"
    if stat.st_size != file.size:
        return f"its size is {stat.st_size} bytes, the plan saw {file.size}"
    if stat.st_mtime_ns != file.mtime_ns:
        return "it was modified after the plan was made (its mtime differs)"
    if content_hash(file.path) != file.hash:
        return "its bytes differ from the plan's (content hash)"
    return None


def check_plan(
    plan: ActionPlan, action: Action, *, progress: ProgressCallback | None = None
) -> CheckedPlan:
    """Check every file of ``plan`` for ``action`` (reads every file once to hash it);
    ``progress`` gets 'check' events (files checked of the plan's files)."""
    ready: list[tuple[PlannedGroup, PlannedFile]] = []
    refused: list[RefusedFile] = []
    cans: dict[str, TrashCan] = {}
    seen: set[str] = set()
    keepers = {group.keep.path for group in plan.groups}
    total = sum(1 + len(group.others) for group in plan.groups)
    checked = 0
    for group in plan.groups:
        keeper_change = changed(group.keep)
        checked += 1
        for other in group.others:
            checked += 1
            if progress is not None:
                progress(IndexProgress("check", checked, total))
            if other.path in seen or other.path == group.keep.path:
                refused.append(RefusedFile(other.path, "it is listed twice in the plan"))
                continue
            if other.path in keepers:
                refused.append(RefusedFile(other.path, "it is the file kept in another group"))
                continue
            seen.add(other.path)
            reason = changed(other)
            if reason is None and keeper_change is not None:
                reason = f"the file kept, {group.keep.path}, changed: {keeper_change}"
            if reason is None:
                reason = _cannot(action, group.keep, other, cans)
            if reason is None:
                ready.append((group, other))
            else:
                refused.append(RefusedFile(other.path, reason))
    return CheckedPlan(tuple(ready), tuple(refused), cans)


def _cannot(
    action: Action, keep: PlannedFile, other: PlannedFile, cans: dict[str, TrashCan]
) -> str | None:
    """Why ``action`` cannot be done to ``other``, or None."""
    if action is Action.HARDLINK:
        if Path(keep.path).stat().st_dev != Path(other.path).stat().st_dev:
            return (
                f"it is on another filesystem than the file kept ({keep.path}) and a hard link "
                "cannot cross filesystems; use --move-to DIR or --trash for it"
            )
        if Path(keep.path).samefile(other.path):
            return "it is already a hard link to the file kept"
    if action is Action.TRASH:
        try:
            cans[other.path] = trash_for(Path(other.path))
        except InvalidInputError as exc:
            return str(exc).removeprefix(f"{other.path}: ")
    return None


__all__ = ["CheckedPlan", "PlanChangedError", "RefusedFile", "changed", "check_plan"]
