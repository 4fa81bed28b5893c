"""Durable writes: a target is its old self or its new self, and failures leave no temporary."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import pytest

from lookalike import durable


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_write_bytes_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    durable.write_bytes(target, b"old")
    durable.write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert _hidden(tmp_path) == []


def test_a_write_that_raises_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "vectors.npy"
    target.write_bytes(b"old")

    def half_then_fail(fh: BinaryIO) -> None:
        fh.write(b"half of the new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        durable.write_with(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors.npy"]


def test_staged_commits_on_exit_and_discards_on_error(tmp_path: Path) -> None:
    target = tmp_path / "graph.bin"
    with durable.staged(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".") and tmp != target
        tmp.write_bytes(b"graph")  # as a library that wants a path would
        assert not target.exists()
    assert target.read_bytes() == b"graph"
    with pytest.raises(RuntimeError), durable.staged(target) as tmp:
        tmp.write_bytes(b"torn")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"graph"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.bin"]


def test_temporary_names_are_hidden_unique_and_matched_by_the_glob(tmp_path: Path) -> None:
    target = tmp_path / "seg-1.npy"
    first, second = durable.temporary_name(target), durable.temporary_name(target)
    assert first != second
    assert first.parent == tmp_path
    assert first.match(durable.TEMPORARY_GLOB) and not target.match(durable.TEMPORARY_GLOB)


def test_staged_folder_replaces_a_folder_whole(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights.safetensors").write_bytes(b"old weights")
    (target / "stale.png").write_bytes(b"old picture")
    with durable.staged_folder(target) as staging:
        (staging / "weights.safetensors").write_bytes(b"new weights")
        (staging / "parts").mkdir()
        (staging / "parts" / "encoder.onnx").write_bytes(b"onnx")
        assert (target / "stale.png").exists()  # the old model serves until the end
    assert sorted(p.name for p in target.iterdir()) == ["parts", "weights.safetensors"]
    assert (target / "weights.safetensors").read_bytes() == b"new weights"
    assert (target / "parts" / "encoder.onnx").read_bytes() == b"onnx"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_staged_folder_creates_a_new_folder_and_keeps_the_old_one_on_error(
    tmp_path: Path,
) -> None:
    target = tmp_path / "deep" / "model"
    with durable.staged_folder(target) as staging:
        (staging / "config.json").write_text("{}", encoding="utf-8")
    assert (target / "config.json").read_text(encoding="utf-8") == "{}"
    with pytest.raises(RuntimeError), durable.staged_folder(target) as staging:
        (staging / "config.json").write_text('{"half"', encoding="utf-8")
        raise RuntimeError("training crashed")
    assert (target / "config.json").read_text(encoding="utf-8") == "{}"
    assert sorted(p.name for p in target.parent.iterdir()) == ["model"]


def test_remove_temporaries_deletes_only_hidden_temporaries(tmp_path: Path) -> None:
    (tmp_path / ".seg-1.npy.abc.tmp").write_bytes(b"half")
    (tmp_path / ".model.abc.tmp").mkdir()
    (tmp_path / ".model.abc.tmp" / "weights.safetensors").write_bytes(b"half")
    kept = [".hidden", "notes.tmp", "seg-1.npy"]
    for name in kept:
        (tmp_path / name).write_bytes(b"keep")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".deeper.abc.tmp").write_bytes(b"not this folder's")
    durable.remove_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [*kept, "sub"]
    assert (tmp_path / "sub" / ".deeper.abc.tmp").exists()
    durable.remove_temporaries(tmp_path / "missing")  # nothing to clean is fine
