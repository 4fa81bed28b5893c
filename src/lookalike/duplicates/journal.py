"""The journal of an applied duplicate plan: what was done to each file, written to disk
before each action and again after it, so that ``undo`` can put everything back even after
the process was killed half-way.

It is JSON Lines, append-only: a header line (format, version, plan, index, action), then for
each action a ``begun`` line holding everything undo needs (the file's original facts, where
it went, its index record and vector when the index forgets it) and a ``done`` line once it
is complete; undo appends ``undone`` lines. Every line is flushed to disk (fsync) before the
next step, and the file is created atomically with its header (``lookalike.durable``). A
line torn by a crash is the last one and is ignored: its action had not started."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lookalike.durable import fsync_dir, write_bytes
from lookalike.errors import InvalidInputError

JOURNAL_FORMAT = "lookalike-duplicate-journal"
JOURNAL_VERSION = 1


class Action(StrEnum):
    """What is done to each duplicate (never to the file kept)."""

    MOVE = "move"  # moved under a folder, keeping its path below the files' common folder
    HARDLINK = "hardlink"  # replaced by a hard link to the kept file
    TRASH = "trash"  # sent to the freedesktop trash


class StepState(StrEnum):
    BEGUN = "begun"  # written before the action: it may or may not have happened
    DONE = "done"
    UNDONE = "undone"


@dataclass(frozen=True)
class IndexedImage:
    """An image's index record, kept when the index forgets it (trash) so undo can put it
    back with its vector instead of embedding the file again."""

    label: str | None
    metadata: dict[str, object]
    vector: npt.NDArray[np.float32]

    def to_json(self) -> dict[str, object]:
        data = np.ascontiguousarray(self.vector, dtype="<f4").tobytes()
        return {
            "label": self.label,
            "metadata": self.metadata,
            "vector": base64.b64encode(data).decode("ascii"),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> IndexedImage:
        raw = base64.b64decode(str(data["vector"]))
        metadata = data.get("metadata")
        label = data.get("label")
        return cls(
            label=label if isinstance(label, str) else None,
            metadata=metadata if isinstance(metadata, dict) else {},
            vector=np.frombuffer(raw, dtype="<f4").astype(np.float32),
        )


@dataclass(frozen=True)
class JournalStep:
    """One action on one duplicate, as recorded before it was taken."""

    step: int
    action: Action
    #: The duplicate's path when the plan was made (where undo puts it back).
    source: str
    #: The file kept in its group.
    keeper: str
    #: The duplicate's facts before the action (undo restores them).
    size: int
    mtime_ns: int
    hash: str
    mode: int
    #: move: its new path; trash: its path in the trash's files folder.
    target: str | None = None
    #: trash: the ``.trashinfo`` file written for it.
    trash_info: str | None = None
    #: hardlink of a file whose bytes differ from the keeper's: where its bytes were kept.
    backup: str | None = None
    #: hardlink: the temporary name the link is made under before it replaces the file.
    scratch: str | None = None
    #: trash: its index record, when it was indexed.
    image: IndexedImage | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "step": self.step,
            "action": str(self.action),
            "source": self.source,
            "keeper": self.keeper,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "hash": self.hash,
            "mode": self.mode,
            "target": self.target,
            "trash_info": self.trash_info,
            "backup": self.backup,
            "scratch": self.scratch,
            "image": self.image.to_json() if self.image is not None else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> JournalStep:
        image = data.get("image")

        def text(name: str) -> str | None:
            value = data.get(name)
            return value if isinstance(value, str) else None

        def number(name: str) -> int:
            value = data[name]
            if not isinstance(value, int):
                raise TypeError(f"{name} must be an integer")
            return value

        return cls(
            step=number("step"),
            action=Action(str(data["action"])),
            source=str(data["source"]),
            keeper=str(data["keeper"]),
            size=number("size"),
            mtime_ns=number("mtime_ns"),
            hash=str(data["hash"]),
            mode=number("mode"),
            target=text("target"),
            trash_info=text("trash_info"),
            backup=text("backup"),
            scratch=text("scratch"),
            image=IndexedImage.from_json(image) if isinstance(image, dict) else None,
        )


@dataclass
class Journal:
    """A journal read back: its header, its steps in order, and each step's latest state."""

    path: Path
    plan: str
    index: str
    action: Action
    steps: list[JournalStep] = field(default_factory=list)
    states: dict[int, StepState] = field(default_factory=dict)


def read_journal(path: Path | str) -> Journal:
    """Read a journal; a torn last line (a crash while it was written) is ignored."""
    source = Path(path)
    try:
        lines = source.read_bytes().splitlines()
    except FileNotFoundError:
        raise InvalidInputError(
            f"{source}: no such journal; `lookalike duplicates apply` writes it (by default "
            "beside the plan, as PLAN.journal.json)"
        ) from None
    records = []
    for number, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            if number == len(lines) - 1:
                break  # torn by a crash mid-write: that step had not started
            raise InvalidInputError(
                f"{source}: line {number + 1} is not JSON; the journal is damaged"
            ) from None
    if not records or records[0].get("format") != JOURNAL_FORMAT:
        raise InvalidInputError(f"{source}: not a lookalike duplicate journal")
    if records[0].get("version") != JOURNAL_VERSION:
        raise InvalidInputError(
            f"{source}: journal version {records[0].get('version')!r} is not understood "
            f"(this lookalike reads version {JOURNAL_VERSION}); undo it with the lookalike "
            "that wrote it"
        )
    header = records[0]
    journal = Journal(
        source, str(header["plan"]), str(header["index"]), Action(str(header["action"]))
    )
    try:
        for record in records[1:]:
            state = StepState(record["state"])
            if state is StepState.BEGUN:
                journal.steps.append(JournalStep.from_json(record["entry"]))
            journal.states[int(record["step"])] = state
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"{source}: a journal line is damaged ({exc})") from None
    return journal


class JournalWriter:
    """Appends to a journal, each line flushed to disk before returning."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = path.open("ab")

    @classmethod
    def create(cls, path: Path, *, plan: Path, index: Path, action: Action) -> JournalWriter:
        """Start a new journal; an existing one is never overwritten (it may be the only way
        back from an earlier apply)."""
        if path.exists():
            raise InvalidInputError(
                f"{path}: a journal is already there; undo it with `lookalike duplicates undo "
                f"{path}` or give another --journal FILE"
            )
        header = {
            "format": JOURNAL_FORMAT,
            "version": JOURNAL_VERSION,
            "plan": str(plan),
            "index": str(index),
            "action": str(action),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, (json.dumps(header) + "\n").encode("utf-8"))
        return cls(path)

    def begin(self, step: JournalStep) -> None:
        """Record a step before it is taken (on disk when this returns)."""
        self._append({"step": step.step, "state": "begun", "entry": step.to_json()})

    def mark(self, step: int, state: StepState) -> None:
        """Record a step's new state. ``done`` is not waited for on disk: undo never trusts
        it (it looks at the files of every begun step), so losing it in a crash costs
        nothing; ``undone`` is (a re-run of undo skips those steps)."""
        self._append({"step": step, "state": str(state)}, durable=state is not StepState.DONE)

    def mark_many(self, steps: list[int], state: StepState) -> None:
        """Record the same new state for several steps, on disk when this returns."""
        for step in steps:
            self._append({"step": step, "state": str(state)}, durable=False)
        os.fsync(self._fh.fileno())

    def _append(self, record: dict[str, object], *, durable: bool = True) -> None:
        self._fh.write((json.dumps(record) + "\n").encode("utf-8"))
        self._fh.flush()
        if durable:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        os.fsync(self._fh.fileno())
        self._fh.close()
        fsync_dir(self.path.parent)

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "JOURNAL_FORMAT",
    "JOURNAL_VERSION",
    "Action",
    "IndexedImage",
    "Journal",
    "JournalStep",
    "JournalWriter",
    "StepState",
    "read_journal",
]
