"""The apply journal reads back what was written, survives a line torn by a crash, and refuses
what it cannot trust; the plan reader names the field that is wrong; moves never overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lookalike.duplicates.file_moves import free_name, move_file
from lookalike.duplicates.journal import (
    Action,
    IndexedImage,
    JournalStep,
    JournalWriter,
    StepState,
    read_journal,
)
from lookalike.duplicates.plan_file import read_plan
from lookalike.errors import InvalidInputError


def _step(number: int, vector: np.ndarray | None = None) -> JournalStep:
    image = IndexedImage("cats", {"album": "summer"}, vector) if vector is not None else None
    return JournalStep(
        step=number,
        action=Action.TRASH,
        source=f"/photos/{number}.jpg",
        keeper="/photos/keep.jpg",
        size=10,
        mtime_ns=1_700_000_000_123_456_789,
        hash="ab" * 16,
        mode=0o644,
        target=f"/trash/files/{number}.jpg",
        trash_info=f"/trash/info/{number}.jpg.trashinfo",
        image=image,
    )


def test_round_trip_and_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "plan.journal.json"
    vector = np.random.default_rng(3).standard_normal(1280).astype(np.float32)
    with JournalWriter.create(
        path, plan=tmp_path / "plan.json", index=tmp_path / "idx", action=Action.TRASH
    ) as journal:
        journal.begin(_step(0, vector))
        journal.mark(0, StepState.DONE)
        journal.begin(_step(1))
    with path.open("ab") as fh:  # a crash in the middle of writing the next line
        fh.write(b'{"step": 2, "state": "begun", "entry": {"step": 2, "act')
    read = read_journal(path)
    assert read.action is Action.TRASH and read.index == str(tmp_path / "idx")
    assert [s.step for s in read.steps] == [0, 1]
    assert read.states == {0: StepState.DONE, 1: StepState.BEGUN}
    assert read.steps[1] == _step(1)
    restored = read.steps[0].image
    assert restored is not None and restored.metadata == {"album": "summer"}
    assert np.array_equal(restored.vector, vector)  # bit for bit
    assert read.steps[0].mtime_ns == 1_700_000_000_123_456_789


def test_a_damaged_journal_or_an_existing_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.json"
    with JournalWriter.create(path, plan=tmp_path, index=tmp_path, action=Action.MOVE) as j:
        j.begin(_step(0))
        j.mark(0, StepState.DONE)
    with pytest.raises(InvalidInputError, match="a journal is already there"):
        JournalWriter.create(path, plan=tmp_path, index=tmp_path, action=Action.MOVE)
    lines = path.read_bytes().splitlines()
    path.write_bytes(b"\n".join([lines[0], b"garbage", lines[2]]) + b"\n")
    with pytest.raises(InvalidInputError, match="line 2 is not JSON; the journal is damaged"):
        read_journal(path)
    header = json.loads(lines[0]) | {"version": 99}
    path.write_text(json.dumps(header) + "\n")
    with pytest.raises(InvalidInputError, match="journal version 99 is not understood"):
        read_journal(path)


def test_plan_reader_names_the_bad_field(tmp_path: Path) -> None:
    good_file = {
        "id": 1,
        "path": "/p/a.jpg",
        "size": 3,
        "mtime_ns": 4,
        "hash": "h",
        "width": 10,
        "height": 8,
        "format": "jpeg",
        "taken": None,
    }
    other = good_file | {"tier": "identical", "score": 1.0}
    plan = {
        "format": "lookalike-duplicate-plan",
        "version": 1,
        "index": "/idx",
        "created": "2026-11-30T05:00:00+00:00",
        "rules": ["largest-file"],
        "groups": [
            {
                "tier": "identical",
                "keep": good_file,
                "reason": "largest file",
                "others": [other | {"size": "3"}],
            }
        ],
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    with pytest.raises(
        InvalidInputError, match=r"groups\[0\]\.others\[0\]: field 'size' must be an integer"
    ):
        read_plan(path)
    plan["groups"][0]["others"] = [other | {"path": "relative.jpg"}]  # type: ignore[index]
    path.write_text(json.dumps(plan))
    with pytest.raises(InvalidInputError, match=r"others\[0\]\.path must be an absolute path"):
        read_plan(path)
    plan["groups"][0]["others"] = [other]  # type: ignore[index]
    path.write_text(json.dumps(plan))
    read = read_plan(path)
    assert read.groups[0].others[0].size == 3 and str(read.index) == "/idx"


def test_moves_never_overwrite(tmp_path: Path) -> None:
    source, target = tmp_path / "a.jpg", tmp_path / "out" / "a.jpg"
    source.write_bytes(b"mine")
    target.parent.mkdir()
    target.write_bytes(b"theirs")
    with pytest.raises(InvalidInputError, match="a file is already there"):
        move_file(source, target)
    assert source.read_bytes() == b"mine" and target.read_bytes() == b"theirs"
    free = free_name(target)
    assert free.name == "a~1.jpg"
    move_file(source, free)
    assert not source.exists() and free.read_bytes() == b"mine"
