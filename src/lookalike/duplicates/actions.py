"""Acting on a duplicate plan, and undoing it: each duplicate (never the file kept) is moved
under a folder, replaced by a hard link to the file kept, or sent to the trash; nothing is
deleted. Every action is written to the journal before it is taken and again after it (see
journal.py), and the index follows: a moved file's record points at its new path (vector
kept), a trashed file leaves the index (its vector kept in the journal for undo), a
hard-linked file keeps its path and takes the kept file's content hash.

``--hardlink`` on a duplicate whose bytes differ from the kept file's (a resized copy, say)
would lose those bytes, so they are kept: before the link replaces it, the original gets a
second name in the hidden folder .JOURNAL.backup beside the journal (a hard link where it is on
the same filesystem, else a copy). Undo puts them back; deleting that folder frees their
space. Duplicates with the kept file's very bytes need no backup: undo copies them back."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from lookalike.catalog_records import ImageEntry
from lookalike.duplicates.file_moves import copy_durably, free_name, keep_bytes, move_file
from lookalike.duplicates.journal import (
    Action,
    IndexedImage,
    JournalStep,
    JournalWriter,
    StepState,
    read_journal,
)
from lookalike.duplicates.plan_checks import PlanChangedError, RefusedFile, check_plan
from lookalike.duplicates.plan_file import ActionPlan, PlannedFile, PlannedGroup
from lookalike.duplicates.trash import TrashCan, describes
from lookalike.durable import fsync_dir, temporary_name
from lookalike.errors import FileActionError, InvalidInputError
from lookalike.index_options import IndexProgress, ProgressCallback
from lookalike.sources import content_hash
from lookalike.writer import IndexWriter

#: Files acted on between two commits of the index.
_BATCH = 64


@dataclass(frozen=True)
class ApplyOptions:
    """How to apply a plan: the action (``move_to`` for MOVE), the journal (default: beside
    the plan as PLAN.journal.json), and whether to act on the unchanged files when some
    changed (else nothing is done)."""

    action: Action
    move_to: Path | None = None
    journal: Path | None = None
    skip_changed: bool = False

    def __post_init__(self) -> None:
        if (self.action is Action.MOVE) != (self.move_to is not None):
            raise InvalidInputError("move_to: give a folder with --move-to, and only for moves")


@dataclass(frozen=True)
class ApplyReport:
    """What an apply did: files acted on and their bytes, files refused (with
    ``skip_changed``), acted files the index did not hold, the journal and the backup
    folder (hardlink of differing files)."""

    journal: Path
    action: Action
    acted: int
    bytes: int
    refused: tuple[RefusedFile, ...]
    unindexed: int
    backup: Path | None


@dataclass(frozen=True)
class UndoReport:
    """What an undo did: steps put back, steps already back (nothing to do), and the files it
    left alone with the reason."""

    restored: int
    already: int
    problems: tuple[str, ...]


def default_journal(plan: Path) -> Path:
    return plan.with_name(f"{plan.stem}.journal.json")


def backup_folder(journal: Path) -> Path:
    """Where ``--hardlink`` keeps the bytes it replaces: hidden (so indexing a folder that
    holds the journal does not index the backups), beside the journal."""
    return journal.with_name(f".{journal.stem}.backup")


def apply_plan(
    plan: ActionPlan,
    options: ApplyOptions,
    writer: IndexWriter,
    *,
    progress: ProgressCallback | None = None,
) -> ApplyReport:
    """Act on ``plan``'s duplicates, keeping ``writer``'s index in step. Every file is checked
    first; if any changed since the plan and ``skip_changed`` is off, nothing is done and
    ``PlanChangedError`` lists them all. ``progress`` gets 'check' then 'act' events."""
    checked = check_plan(plan, options.action, progress=progress)
    if checked.refused and not options.skip_changed:
        raise PlanChangedError(plan.source, checked.refused)
    journal_path = options.journal or default_journal(plan.source)
    actor = _Actor(options, writer, journal_path, plan)
    acted = size = unindexed = 0
    failure: tuple[str, Exception] | None = None
    ready = checked.ready
    with JournalWriter.create(
        journal_path, plan=plan.source.absolute(), index=plan.index, action=options.action
    ) as journal:
        while acted < len(ready) and failure is None:
            # The index's changes commit in batches (one SQLite commit per batch, not per
            # file); a crash loses at most a batch of them, which undo or the next
            # `lookalike index` reconciles from the files on disk.
            with writer.batch():
                for group, other in ready[acted : acted + _BATCH]:
                    can = checked.trash.get(other.path)
                    try:
                        step = actor.prepare(acted, group, other, can)
                        journal.begin(step)
                        unindexed += not actor.act(step, group.keep, can)
                    except (OSError, InvalidInputError) as exc:
                        failure = (other.path, exc)
                        break
                    journal.mark(step.step, StepState.DONE)
                    acted += 1
                    size += other.size
                    if progress is not None:
                        progress(IndexProgress("act", acted, len(ready)))
    writer.keep_neighbours()
    if failure is not None:
        path, error = failure
        cause = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise FileActionError(
            f"{path}: {options.action} failed ({cause}); {acted} file(s) were "
            f"done before it and nothing after: put them back with `lookalike duplicates undo "
            f"{journal_path}`, fix the cause, then apply the plan again"
        ) from error
    backup = actor.backup if actor.backup.exists() else None
    return ApplyReport(
        journal_path, options.action, acted, size, checked.refused, unindexed, backup
    )


class _Actor:
    """Plans one step (everything undo needs, before anything is done) and takes it."""

    def __init__(
        self, options: ApplyOptions, writer: IndexWriter, journal: Path, plan: ActionPlan
    ) -> None:
        self._options = options
        self._writer = writer
        self.backup = backup_folder(journal)
        self._targets: set[Path] = set()
        folders = [Path(f.path).parent for g in plan.groups for f in (g.keep, *g.others)]
        self._root = Path(os.path.commonpath(folders)) if folders else Path("/")

    def prepare(
        self, number: int, group: PlannedGroup, other: PlannedFile, can: TrashCan | None
    ) -> JournalStep:
        source = Path(other.path)
        step = JournalStep(
            step=number,
            action=self._options.action,
            source=other.path,
            keeper=group.keep.path,
            size=other.size,
            mtime_ns=other.mtime_ns,
            hash=other.hash,
            mode=source.stat().st_mode & 0o7777,
        )
        if self._options.action is Action.MOVE:
            assert self._options.move_to is not None
            target = free_name(
                self._options.move_to / source.relative_to(self._root), self._targets
            )
            self._targets.add(target)
            return _with(step, target=str(target))
        if self._options.action is Action.TRASH:
            assert can is not None
            can.prepare()
            name = can.free_name(source)
            forgotten = self._writer.forget(other.path)
            image = None
            if forgotten is not None:
                record, metadata, vector = forgotten
                image = IndexedImage(record.label, metadata, vector)
            return _with(
                step,
                target=str(can.files / name),
                trash_info=str(can.info / f"{name}.trashinfo"),
                image=image,
            )
        backup = None
        if other.hash != group.keep.hash:
            backup = str(self.backup / f"{number:06d}-{source.name}")
        return _with(step, backup=backup, scratch=str(temporary_name(source)))

    def act(self, step: JournalStep, keeper: PlannedFile, can: TrashCan | None) -> bool:
        """Take ``step``; whether the index held the file."""
        source = Path(step.source)
        if step.action is Action.MOVE:
            assert step.target is not None
            move_file(source, Path(step.target))
            return self._writer.move_image(step.source, step.target)
        if step.action is Action.TRASH:
            assert step.target is not None and can is not None
            target = Path(step.target)
            if os.path.lexists(target):
                raise InvalidInputError(f"{target}: appeared in the trash; {source} left alone")
            can.write_info(target.name, source, datetime.now())
            source.rename(target)
            fsync_dir(target.parent)
            return self._writer.remove_path(step.source)
        assert step.scratch is not None
        if step.backup is not None:
            keep_bytes(source, Path(step.backup))
        scratch = Path(step.scratch)
        os.link(keeper.path, scratch)
        scratch.replace(source)
        fsync_dir(source.parent)
        return self._writer.refingerprint(step.source, keeper.hash)


def _with(step: JournalStep, **changes: object) -> JournalStep:
    return replace(step, **changes)  # type: ignore[arg-type]


def undo_journal(path: Path | str, writer: IndexWriter) -> UndoReport:
    """Put back everything the journal at ``path`` records (latest first), keeping
    ``writer``'s index in step. A file that appeared where one is to be put back is left
    alone and reported; running undo again is harmless (done steps are skipped)."""
    journal = read_journal(path)
    restored = already = 0
    problems: list[str] = []
    readd: list[tuple[JournalStep, ImageEntry]] = []
    todo = [s for s in reversed(journal.steps) if journal.states.get(s.step) != StepState.UNDONE]
    already = len(journal.steps) - len(todo)
    with JournalWriter(journal.path) as log:
        while todo:
            undone = []
            with writer.batch():  # one commit of the index per batch, as in apply
                for step in todo[:_BATCH]:
                    try:
                        did = _UNDO[step.action](step, writer)
                    except (OSError, InvalidInputError) as exc:
                        problems.append(f"{step.source}: {exc}")
                        continue
                    entry = _lost_entry(step, writer)
                    if entry is not None:
                        readd.append((step, entry))  # undone once it is indexed again
                    else:
                        undone.append(step.step)
                    restored += did
                    already += not did
            del todo[:_BATCH]
            log.mark_many(undone, StepState.UNDONE)  # only once the index has committed
        if readd:
            images = [s.image for s, _ in readd if s.image is not None]
            writer.restore(
                [(entry, i.metadata) for (_, entry), i in zip(readd, images, strict=True)],
                np.stack([i.vector for i in images]),
            )
            log.mark_many([step.step for step, _ in readd], StepState.UNDONE)
    writer.keep_neighbours()
    return UndoReport(restored, already, tuple(problems))


def _lost_entry(step: JournalStep, writer: IndexWriter) -> ImageEntry | None:
    """The catalog row to add back for a trashed image that is back on disk but not indexed."""
    if step.image is None or not Path(step.source).exists():
        return None
    if writer.holds(step.source):
        return None
    stat = Path(step.source).stat()
    return ImageEntry(step.source, stat.st_size, stat.st_mtime_ns, step.hash, step.image.label)


def _undo_move(step: JournalStep, writer: IndexWriter) -> bool:
    assert step.target is not None
    source, target = Path(step.source), Path(step.target)
    if os.path.lexists(target):
        if os.path.lexists(source):
            if not source.samefile(target):
                raise InvalidInputError(
                    f"a file appeared here since the apply; it was left alone and the moved "
                    f"file stays at {target}: move one of them by hand and run undo again"
                )
            target.unlink()  # killed between linking the new name and removing the old
            fsync_dir(target.parent)
        else:
            move_file(target, source)
        writer.move_image(step.target, step.source)
        return True
    if not os.path.lexists(source):
        raise InvalidInputError(f"gone, and nothing is at {target} either; nothing to put back")
    writer.move_image(step.target, step.source)  # a crash after the file came back
    return False


def _undo_trash(step: JournalStep, writer: IndexWriter) -> bool:
    assert step.target is not None and step.trash_info is not None
    source, target = Path(step.source), Path(step.target)
    moved = False
    if os.path.lexists(target):
        if os.path.lexists(source):
            raise InvalidInputError(
                f"a file appeared here since the apply; it was left alone and the trashed file "
                f"stays at {target}: move one of them by hand and run undo again"
            )
        move_file(target, source)
        moved = True
    elif not os.path.lexists(source):
        raise InvalidInputError(
            f"it is no longer in the trash at {target} (was the trash emptied?); nothing to "
            "put back"
        )
    info = Path(step.trash_info)
    if info.exists() and describes(info, source):
        info.unlink()  # only ours: another file may have claimed the name since
    return moved


def _undo_hardlink(step: JournalStep, writer: IndexWriter) -> bool:
    source = Path(step.source)
    backup = Path(step.backup) if step.backup else None
    if step.scratch is not None:
        Path(step.scratch).unlink(missing_ok=True)  # killed between making and placing it
    linked = os.path.lexists(source) and source.samefile(step.keeper)
    if not linked:
        if not os.path.lexists(source) and backup is not None and backup.exists():
            move_file(backup, source)
            writer.refingerprint(step.source, step.hash)
            return True
        stat = source.stat()  # FileNotFoundError: reported
        if (stat.st_size, stat.st_mtime_ns) != (step.size, step.mtime_ns):
            raise InvalidInputError(
                "it changed since the apply and was left alone"
                + (f"; its original bytes are in {backup}" if backup is not None else "")
            )
        if backup is not None and backup.exists() and backup.samefile(source):
            backup.unlink()  # killed after keeping the bytes, before the link replaced it
        writer.refingerprint(step.source, step.hash)
        return False
    scratch = temporary_name(source)
    try:
        if backup is not None:
            if not backup.exists():
                raise InvalidInputError(f"its original bytes are gone from {backup}")
            keep_bytes(backup, scratch)
        else:  # it held the keeper's very bytes: a separate copy of them is the original
            if content_hash(step.keeper) != step.hash:
                raise InvalidInputError(
                    f"the file kept, {step.keeper}, changed since the apply (and this hard "
                    "link with it): its original bytes cannot be made again; left alone"
                )
            copy_durably(Path(step.keeper), scratch)
            os.utime(scratch, ns=(step.mtime_ns, step.mtime_ns))
        scratch.chmod(step.mode)
        scratch.replace(source)
    finally:
        scratch.unlink(missing_ok=True)
    fsync_dir(source.parent)
    if backup is not None:
        backup.unlink()
        fsync_dir(backup.parent)
    writer.refingerprint(step.source, step.hash)
    return True


_UNDO: dict[Action, Callable[[JournalStep, IndexWriter], bool]] = {
    Action.MOVE: _undo_move,
    Action.TRASH: _undo_trash,
    Action.HARDLINK: _undo_hardlink,
}

__all__ = [
    "ApplyOptions",
    "ApplyReport",
    "UndoReport",
    "apply_plan",
    "backup_folder",
    "default_journal",
    "undo_journal",
]
