"""`lookalike duplicates apply PLAN` moves, hard-links or trashes a plan's duplicates (never the
file kept), refuses files changed since the plan, journals every step, keeps the index in step,
and `lookalike duplicates undo JOURNAL` puts every byte and index path back, even after the
apply was killed with SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from lookalike import SearchEngine
from lookalike.duplicates.actions import ApplyOptions, apply_plan, undo_journal
from lookalike.duplicates.journal import Action, StepState, read_journal
from lookalike.duplicates.plan_checks import PlanChangedError, check_plan
from lookalike.duplicates.plan_file import read_plan
from lookalike.evaluation.copies import skimage_originals
from lookalike.image_facts import read_facts
from lookalike.metadata import MetadataTable
from tests.conftest import FAST_EMBEDDER
from tests.helpers import cli_env, run_cli

NAMES = ("chelsea", "coffee", "astronaut")


def _archive(root: Path, names: tuple[str, ...] = NAMES, copies: int = 1) -> dict[str, list[Path]]:
    """Real photos in ``root/originals`` and, per photo, copies under ``root/copies``: a
    half-size re-encode (other bytes) and a byte-identical copy, ``copies`` times each.
    Returns {original path: [its copies]}."""
    photos = dict(skimage_originals())
    groups: dict[str, list[Path]] = {}
    (root / "originals").mkdir(parents=True)
    for name in names:
        original = root / "originals" / f"{name}.jpg"
        image = photos[name].resize((160, 120))
        image.save(original, quality=92)
        group = []
        for n in range(copies):
            folder = root / "copies" / f"set{n}"
            folder.mkdir(parents=True, exist_ok=True)
            small = folder / f"{name}-small.jpg"
            image.resize((80, 60), Image.Resampling.BICUBIC).save(small, quality=80 + n % 10)
            same = folder / f"{name}-same.jpg"
            shutil.copy2(original, same)
            group += [small, same]
        groups[str(original)] = group
    return groups


def _index(root: Path, index: Path) -> None:
    with SearchEngine.create(index, embedder=FAST_EMBEDDER) as engine:
        engine.index_folder(root)


def _plan(index: Path, groups: dict[str, list[Path]], target: Path) -> Path:
    """A plan in the shared format: keep each original, act on its copies."""
    with SearchEngine.open(index) as engine:
        records = {r.path: r for r in engine.collection.snapshot().records.values()}

    def file(path: Path | str) -> dict[str, object]:
        record = records[str(path)]
        facts = read_facts(path)
        return {
            "id": record.id,
            "path": str(path),
            "size": facts.size,
            "mtime_ns": facts.mtime_ns,
            "hash": record.hash,
            "width": facts.width,
            "height": facts.height,
            "format": facts.format,
            "taken": facts.taken,
        }

    plan = {
        "format": "lookalike-duplicate-plan",
        "version": 1,
        "index": str(index),
        "created": "2026-01-01T00:00:00Z",
        "rules": ["largest-resolution"],
        "groups": [
            {
                "tier": "same-picture",
                "keep": file(keep),
                "reason": "largest resolution",
                "others": [{**file(o), "tier": "same-picture", "score": 0.97} for o in others],
            }
            for keep, others in groups.items()
        ],
    }
    target.write_text(json.dumps(plan))
    return target


@pytest.fixture
def archive(tmp_path: Path) -> tuple[Path, Path, dict[str, list[Path]], dict[Path, bytes]]:
    """(photos, index, groups, every file's bytes) of a fresh small archive, indexed."""
    photos = tmp_path / "photos"
    groups = _archive(photos)
    _index(photos, tmp_path / "index")
    contents = {p: p.read_bytes() for p in photos.rglob("*.jpg")}
    return photos, tmp_path / "index", groups, contents


def _indexed_paths(index: Path) -> set[str]:
    with SearchEngine.open(index) as engine:
        return {r.path for r in engine.collection.snapshot().records.values()}


def _vectors_by_path(index: Path) -> dict[str, np.ndarray]:
    with SearchEngine.open(index) as engine:
        records = engine.collection.snapshot().records
        ids = sorted(records)
        vectors = engine.collection.vectors_for(ids)
        return {records[i].path: vectors[n] for n, i in enumerate(ids)}


def _assert_restored(photos: Path, index: Path, contents: dict[Path, bytes]) -> None:
    on_disk = {p: p.read_bytes() for p in photos.rglob("*.jpg")}
    assert on_disk == contents
    assert _indexed_paths(index) == {str(p) for p in contents}


def test_move_to_then_undo_restores_files_and_index_paths(
    archive: tuple[Path, Path, dict[str, list[Path]], dict[Path, bytes]], tmp_path: Path
) -> None:
    photos, index, groups, contents = archive
    plan = _plan(index, groups, tmp_path / "plan.json")
    vectors = _vectors_by_path(index)
    mtimes = {p: p.stat().st_mtime_ns for p in contents}
    moved_to = tmp_path / "dups"
    # A file already at one target: it must not be overwritten.
    blocker = moved_to / "copies" / "set0" / "coffee-same.jpg"
    blocker.parent.mkdir(parents=True)
    blocker.write_bytes(b"not a photo")

    done = run_cli("duplicates", "apply", plan, "--move-to", moved_to)
    assert done.returncode == 0, done.stderr
    assert "moved 6 duplicate(s)" in done.stdout
    assert blocker.read_bytes() == b"not a photo"
    others = [o for group in groups.values() for o in group]
    for original in groups:
        assert Path(original).read_bytes() == contents[Path(original)]  # keepers untouched
    for other in others:
        assert not other.exists()
    expected = {moved_to / o.relative_to(photos) for o in others}
    expected = {p if p != blocker else p.with_name("coffee-same~1.jpg") for p in expected}
    assert set(moved_to.rglob("*.jpg")) == expected | {blocker}
    new_vectors = _vectors_by_path(index)
    assert set(new_vectors) == {str(p) for p in groups} | {str(p) for p in expected}
    for other in others:  # the same vector under the new path: nothing was embedded again
        new = moved_to / other.relative_to(photos)
        new = new if new != blocker else new.with_name("coffee-same~1.jpg")
        assert np.array_equal(new_vectors[str(new)], vectors[str(other)])

    journal = tmp_path / "plan.journal.json"
    back = run_cli("duplicates", "undo", journal)
    assert back.returncode == 0, back.stderr
    assert "put back 6 file(s)" in back.stdout
    _assert_restored(photos, index, contents)
    assert {p: p.stat().st_mtime_ns for p in contents} == mtimes
    assert blocker.read_bytes() == b"not a photo"
    again = run_cli("duplicates", "undo", journal)  # idempotent
    assert again.returncode == 0 and "put back 0 file(s); 6 already in place" in again.stdout
    _assert_restored(photos, index, contents)


def test_hardlink_keeps_differing_bytes_and_undo_separates_the_files(
    archive: tuple[Path, Path, dict[str, list[Path]], dict[Path, bytes]], tmp_path: Path
) -> None:
    photos, index, groups, contents = archive
    plan = read_plan(_plan(index, groups, tmp_path / "plan.json"))
    with SearchEngine.open(index, writable=True) as engine:
        report = apply_plan(plan, ApplyOptions(Action.HARDLINK), engine.writer)
        records = {r.path: r for r in engine.collection.snapshot().records.values()}
    assert report.acted == 6 and report.backup == tmp_path / ".plan.journal.backup"
    for keep, others in groups.items():
        for other in others:
            assert other.samefile(keep)  # one file on disk now
            assert records[str(other)].hash == records[keep].hash
    kept = sorted(report.backup.iterdir())
    assert len(kept) == 3  # only the re-encoded copies had bytes of their own
    assert {p.read_bytes() for p in kept} == {
        contents[o] for group in groups.values() for o in group if "small" in o.name
    }

    with SearchEngine.open(index, writable=True) as engine:
        undone = undo_journal(report.journal, engine.writer)
    assert (undone.restored, undone.problems) == (6, ())
    _assert_restored(photos, index, contents)
    for keep, others in groups.items():
        for other in others:
            assert not other.samefile(keep)
    assert not any(report.backup.iterdir())
    with SearchEngine.open(index) as engine:
        hashes = {r.path: r.hash for r in engine.collection.snapshot().records.values()}
    small = groups[str(photos / "originals" / "chelsea.jpg")][0]
    assert hashes[str(small)] != hashes[str(photos / "originals" / "chelsea.jpg")]


def test_trash_follows_the_freedesktop_spec_and_undo_reindexes_with_the_vector(
    archive: tuple[Path, Path, dict[str, list[Path]], dict[Path, bytes]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    photos, index, groups, contents = archive
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    vectors = _vectors_by_path(index)
    small = groups[str(photos / "originals" / "coffee.jpg")][0]
    with SearchEngine.open(index, writable=True) as engine:
        engine.set_metadata(MetadataTable({str(small): {"album": "summer"}}, "path"))
    plan = read_plan(_plan(index, groups, tmp_path / "plan.json"))
    with SearchEngine.open(index, writable=True) as engine:
        report = apply_plan(plan, ApplyOptions(Action.TRASH), engine.writer)
    trash = tmp_path / "xdg" / "Trash"
    others = [o for group in groups.values() for o in group]
    assert report.acted == 6 and not any(o.exists() for o in others)
    assert _indexed_paths(index) == set(groups)
    infos = {}
    for info in (trash / "info").glob("*.trashinfo"):
        lines = info.read_text().splitlines()
        assert lines[0] == "[Trash Info]" and lines[2].startswith("DeletionDate=")
        infos[unquote(lines[1].removeprefix("Path="))] = info.name.removesuffix(".trashinfo")
    assert set(infos) == {str(o) for o in others}
    for other in others:
        assert (trash / "files" / infos[str(other)]).read_bytes() == contents[other]

    with SearchEngine.open(index, writable=True) as engine:
        undone = undo_journal(report.journal, engine.writer)
        record = engine.collection.record_by_path(str(small))
        _, metadata = engine.collection.record(record.id)
    assert (undone.restored, undone.problems) == (6, ())
    _assert_restored(photos, index, contents)
    assert not any((trash / "files").iterdir()) and not any((trash / "info").iterdir())
    restored = _vectors_by_path(index)
    for other in others:  # back with the vector it had, not embedded again
        assert np.array_equal(restored[str(other)], vectors[str(other)])
    assert metadata == {"album": "summer"}


def test_a_changed_file_refuses_the_whole_plan_unless_skip_changed(
    archive: tuple[Path, Path, dict[str, list[Path]], dict[Path, bytes]], tmp_path: Path
) -> None:
    photos, index, groups, _ = archive
    plan_path = _plan(index, groups, tmp_path / "plan.json")
    edited = groups[str(photos / "originals" / "chelsea.jpg")][1]
    stat = edited.stat()
    data = bytearray(edited.read_bytes())
    data[-3] ^= 0xFF  # same size and mtime, other bytes: only the hash can tell
    edited.write_bytes(bytes(data))
    os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    (photos / "originals" / "coffee.jpg").unlink()  # a keeper gone: its group is refused

    refused = run_cli("duplicates", "apply", plan_path, "--move-to", tmp_path / "dups")
    assert refused.returncode == 2
    assert f"{edited}: its bytes differ from the plan's (content hash)" in refused.stderr
    assert "coffee.jpg, changed: it is gone" in refused.stderr
    assert "--skip-changed" in refused.stderr
    assert not (tmp_path / "dups").exists() and not (tmp_path / "plan.journal.json").exists()

    plan = read_plan(plan_path)
    with SearchEngine.open(index, writable=True) as engine:
        with pytest.raises(PlanChangedError) as caught:
            apply_plan(plan, ApplyOptions(Action.TRASH), engine.writer)
        assert len(caught.value.refused) == 3
        report = apply_plan(
            plan, ApplyOptions(Action.MOVE, move_to=tmp_path / "dups", skip_changed=True),
            engine.writer,
        )  # fmt: skip
    assert report.acted == 3  # chelsea-small and both astronaut copies
    assert {r.path for r in report.refused} == {
        str(edited),
        *(str(o) for o in groups[str(photos / "originals" / "coffee.jpg")]),
    }
    assert edited.exists()


def test_undo_leaves_alone_a_file_that_appeared_since(
    archive: tuple[Path, Path, dict[str, list[Path]], dict[Path, bytes]], tmp_path: Path
) -> None:
    photos, index, groups, contents = archive
    plan = read_plan(_plan(index, groups, tmp_path / "plan.json"))
    with SearchEngine.open(index, writable=True) as engine:
        report = apply_plan(
            plan, ApplyOptions(Action.MOVE, move_to=tmp_path / "dups"), engine.writer
        )
    newcomer = groups[str(photos / "originals" / "astronaut.jpg")][0]
    newcomer.write_bytes(b"a new file the user made")
    back = run_cli("duplicates", "undo", report.journal)
    assert back.returncode == 1
    assert f"left alone: {newcomer}: a file appeared here since the apply" in back.stderr
    assert newcomer.read_bytes() == b"a new file the user made"
    moved = tmp_path / "dups" / "copies" / "set0" / newcomer.name
    assert moved.read_bytes() == contents[newcomer]
    journal = read_journal(report.journal)
    undone = [s for s, state in journal.states.items() if state is StepState.UNDONE]
    assert len(undone) == 5


def test_move_across_filesystems_onto_a_full_disk_then_undo(
    archive: tuple[Path, Path, dict[str, list[Path]], dict[Path, bytes]], tmp_path: Path
) -> None:
    """A small tmpfs as the target: files are copied across, the disk fills mid-apply, the
    error names the file, and undo puts everything back."""
    photos, index, groups, contents = archive
    disk = tmp_path / "small-disk"
    disk.mkdir()
    sizes = sorted(len(b) for p, b in contents.items() if "copies" in p.parts)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={sizes[0] + sizes[1] + 8192}", "tmpfs", str(disk)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        plan = _plan(index, groups, tmp_path / "plan.json")
        full = run_cli("duplicates", "apply", plan, "--move-to", disk / "dups")
        assert full.returncode == 2 and "Traceback" not in full.stderr
        assert "move failed (No space left on device)" in full.stderr
        assert "lookalike duplicates undo" in full.stderr
        moved = list((disk / "dups").rglob("*.jpg"))
        assert moved  # some files did cross before the disk filled
        assert not list((disk / "dups").rglob(".*.tmp"))  # no partial copy left behind
        assert all(p.read_bytes() in contents.values() for p in moved)
        back = run_cli("duplicates", "undo", tmp_path / "plan.journal.json")
        assert back.returncode == 0, back.stderr
        _assert_restored(photos, index, contents)
        assert not list((disk / "dups").rglob("*.jpg"))
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_trash_on_another_filesystem_uses_that_disks_trash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Photos on their own disk (a tmpfs) go to its ``.Trash-UID``, not the home trash, with
    paths relative to the disk's top in their info files."""
    disk = tmp_path / "card"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
        groups = _archive(disk / "photos", names=("chelsea",))
        index = tmp_path / "index"
        _index(disk / "photos", index)
        contents = {p: p.read_bytes() for p in (disk / "photos").rglob("*.jpg")}
        plan = read_plan(_plan(index, groups, tmp_path / "plan.json"))
        with SearchEngine.open(index, writable=True) as engine:
            report = apply_plan(plan, ApplyOptions(Action.TRASH), engine.writer)
        assert report.acted == 2
        trash = disk / f".Trash-{os.getuid()}"
        assert sorted(p.name for p in (trash / "files").iterdir()) == [
            "chelsea-same.jpg",
            "chelsea-small.jpg",
        ]
        info = (trash / "info" / "chelsea-same.jpg.trashinfo").read_text()
        assert "Path=photos/copies/set0/chelsea-same.jpg" in info.splitlines()
        assert not (tmp_path / "xdg" / "Trash").exists()
        with SearchEngine.open(index, writable=True) as engine:
            undo_journal(report.journal, engine.writer)
        _assert_restored(disk / "photos", index, contents)

        # A hard link cannot cross disks: a duplicate on another one is refused by name.
        elsewhere = tmp_path / "elsewhere.jpg"
        shutil.copy2(disk / "photos" / "copies" / "set0" / "chelsea-small.jpg", elsewhere)
        far = replace(plan.groups[0].others[0], path=str(elsewhere))
        crossing = replace(plan, groups=(replace(plan.groups[0], others=(far,)),))
        refused = check_plan(crossing, Action.HARDLINK).refused
        assert [r.path for r in refused] == [str(elsewhere)]
        assert "another filesystem" in refused[0].reason
        assert "use --move-to DIR or --trash" in refused[0].reason
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.heavy  # a real process killed with SIGKILL mid-apply
def test_sigkill_mid_apply_then_undo_restores_everything(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    groups = _archive(photos, copies=40)  # 240 duplicates
    index = tmp_path / "index"
    _index(photos, index)
    contents = {p: p.read_bytes() for p in photos.rglob("*.jpg")}
    plan = _plan(index, groups, tmp_path / "plan.json")
    journal = tmp_path / "plan.journal.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "lookalike", "duplicates", "apply", str(plan), "--trash"],
        env=cli_env(XDG_DATA_HOME=str(tmp_path / "xdg")),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if journal.exists() and journal.read_bytes().count(b"\n") > 60:
            break
        time.sleep(0.001)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the apply finished before it could be killed"
    steps = read_journal(journal)
    done = sum(state is StepState.DONE for state in steps.states.values())
    assert 0 < done < 240
    trashed = list((tmp_path / "xdg" / "Trash" / "files").iterdir())
    assert len(trashed) >= done

    back = run_cli("duplicates", "undo", journal, "--index", index)
    assert back.returncode == 0, back.stderr
    _assert_restored(photos, index, contents)
    assert not any((tmp_path / "xdg" / "Trash" / "files").iterdir())
    assert not any((tmp_path / "xdg" / "Trash" / "info").iterdir())


def test_apply_needs_exactly_one_action_and_a_valid_plan(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"format": "something-else"}))
    both = run_cli("duplicates", "apply", plan, "--trash", "--hardlink")
    assert both.returncode == 2 and "choose one action" in both.stderr
    wrong = run_cli("duplicates", "apply", plan, "--trash")
    assert wrong.returncode == 2
    assert f"{plan}: field 'format' is 'something-else'" in wrong.stderr
    missing = run_cli("duplicates", "undo", tmp_path / "nope.journal.json")
    assert missing.returncode == 2 and "no such journal" in missing.stderr
    # The group's own job (grouping) still needs --index when no subcommand is given.
    bare = run_cli("duplicates")
    assert bare.returncode == 2 and "missing option --index" in bare.stderr
