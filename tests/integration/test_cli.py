"""The command line as a user meets it: JSON output, summaries, skipped files, exit codes."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from lookalike.evaluation.copies import CopySet
from tests.conftest import FAST_DIM, FAST_EDITS, FAST_EMBEDDER
from tests.helpers import json_lines, run_cli, top_path


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG declaring width x height pixels with almost no data: a decompression bomb shape."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def messy_folder(copy_set: CopySet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four good photos and a corpus of bad files that must each be skipped with a reason."""
    root = tmp_path_factory.mktemp("messy")
    for path in copy_set.originals[:4]:
        shutil.copy(path, root / path.name)
    good_jpeg = copy_set.originals[4].read_bytes()
    (root / "empty.jpg").write_bytes(b"")
    (root / "truncated.jpg").write_bytes(good_jpeg[: len(good_jpeg) // 3])
    (root / "notes.png").write_text("this is not an image\n")
    (root / "bomb.png").write_bytes(_png_header_only(100_000, 100_000))
    (root / "huge.png").write_bytes(_png_header_only(20_000, 20_000))
    (root / "folder.jpg").mkdir()  # a directory with an image's name is not a file
    (root / "readme.txt").write_text("ignored: not an image extension")
    return root


EXPECTED_REASONS = {
    "empty.jpg": "empty file",
    "truncated.jpg": "cannot decode",
    "notes.png": "not an image",
    "bomb.png": "over the limit",
    "huge.png": "over the limit",
}


@pytest.fixture(scope="module")
def messy_index(messy_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    index = tmp_path_factory.mktemp("cli") / "messy.idx"
    result = run_cli("index", messy_folder, "--index", index, "--json", "--embedder", FAST_EMBEDDER)
    assert result.returncode == 0, result.stderr
    return index, json.loads(result.stdout)


def test_index_skips_every_bad_file_with_its_reason(messy_index: tuple[Path, dict]) -> None:
    _, summary = messy_index
    assert summary["added"] == 4 and summary["count"] == 4
    reasons = {Path(s["path"]).name: s["reason"] for s in summary["skipped"]}
    assert set(reasons) == set(EXPECTED_REASONS)
    for name, expected in EXPECTED_REASONS.items():
        assert expected in reasons[name], (name, reasons[name])


def test_text_summary_and_rerun(messy_folder: Path, messy_index: tuple[Path, dict]) -> None:
    index, _ = messy_index
    result = run_cli("index", messy_folder, "--index", index, "--quiet")
    assert result.returncode == 0
    assert "0 added" in result.stdout and "4 unchanged" in result.stdout
    assert (
        "5 skipped" in result.stdout and "skipped" in result.stdout and "bomb.png" in result.stdout
    )


def test_search_json_lines_for_many_queries(copy_set: CopySet, fast_gallery_index: Path) -> None:
    queries = [p for p in copy_set.copies if p.edit in FAST_EDITS][:6]
    result = run_cli(
        "search", *[q.copy for q in queries], "--index", fast_gallery_index, "-k", "3", "--json"
    )
    assert result.returncode == 0, result.stderr
    lines = json_lines(result.stdout)
    assert len(lines) == len(queries)
    for line, pair in zip(lines, queries, strict=True):
        assert line["query"] == str(pair.copy)
        matches = line["matches"]
        assert [m["rank"] for m in matches] == [1, 2, 3]
        scores = [m["score"] for m in matches]
        assert scores == sorted(scores, reverse=True)
        assert Path(top_path(line)).name == pair.original.name


def test_search_table_and_info(copy_set: CopySet, fast_gallery_index: Path) -> None:
    pair = next(p for p in copy_set.copies if p.edit in FAST_EDITS)
    result = run_cli("search", pair.copy, "--index", fast_gallery_index, "-k", "2")
    assert result.returncode == 0
    assert pair.original.name in result.stdout
    info = run_cli("info", "--index", fast_gallery_index, "--json")
    data = json.loads(info.stdout)
    assert data["count"] == 218
    assert (data["embedder"], data["dim"], data["metric"]) == (FAST_EMBEDDER, FAST_DIM, "cosine")
    assert data["format_version"] == 1 and data["size_bytes"] > 218 * FAST_DIM * 4
    text = run_cli("info", "--index", fast_gallery_index)
    assert FAST_EMBEDDER in text.stdout and "count:" in text.stdout


def test_euclidean_metric_is_recorded_and_scores_are_negated_distances(
    copy_set: CopySet, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in copy_set.originals:
        shutil.copy(path, folder / path.name)
    index = tmp_path / "euclid.idx"
    created = run_cli(
        "index", folder, "--index", index, "--metric", "euclidean", "--embedder", FAST_EMBEDDER
    )
    assert created.returncode == 0, created.stderr
    pair = next(p for p in copy_set.copies if p.edit in FAST_EDITS)
    line = json_lines(run_cli("search", pair.copy, "--index", index, "--json", "-k", "8").stdout)[0]
    matches = line["matches"]
    assert all(m["score"] == pytest.approx(-m["distance"]) for m in matches)
    assert all(0 <= m["distance"] <= 2.0 for m in matches)
    assert Path(top_path(line)).name == pair.original.name
    info = json.loads(run_cli("info", "--index", index, "--json").stdout)
    assert info["metric"] == "euclidean"
    # The metric is fixed at creation: asking for another one is refused.
    again = run_cli("index", folder, "--index", index, "--metric", "cosine")
    assert again.returncode == 2 and "metric" in again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "{bad}", "--index", "{index}"], "not an image"),
        (["search", "{missing}", "--index", "{index}"], "not found"),
        (["search", "{good}", "--index", "{nowhere}"], "no such index"),
        (["search", "{good}", "--index", "{photos}"], "not a lookalike index"),
        (["search", "{good}", "--index", "{index}", "-k", "0"], "-k must be at least 1"),
        (["search", "{good}", "--index", "{index}", "-k", "many"], "Invalid value"),
        (["index", "{missing}", "--index", "{tmp}/new.idx"], "folder not found"),
        (["index", "{photos}", "--index", "{index}", "--embedder", "lite1"], FAST_EMBEDDER),
        (["index", "{photos}", "--index", "{index}", "--embedder", "vgg"], "unknown embedder"),
        (
            ["index", "{photos}", "--index", "{photos}", "--embedder", FAST_EMBEDDER],
            "not empty and is not an index",
        ),
        (["remove", "{missing}", "--index", "{index}"], "not in the index"),
        (["info"], "Missing option"),
    ],
)
def test_user_errors_exit_2_with_one_clear_line(
    args: list[str],
    message: str,
    messy_folder: Path,
    messy_index: tuple[Path, dict],
    tmp_path: Path,
) -> None:
    index, _ = messy_index
    values = {
        "bad": str(messy_folder / "notes.png"),
        "missing": str(tmp_path / "missing.jpg"),
        "good": str(
            next(p for p in sorted(messy_folder.glob("*.jpg")) if p.stat().st_size > 10_000)
        ),
        "index": str(index),
        "nowhere": str(tmp_path / "nowhere.idx"),
        "photos": str(messy_folder),
        "tmp": str(tmp_path),
    }
    result = run_cli(*[a.format(**values) for a in args])
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "new.idx").exists() or not any((tmp_path / "new.idx").iterdir())


def test_remove_command(messy_folder: Path, tmp_path: Path) -> None:
    index = tmp_path / "rm.idx"
    created = run_cli("index", messy_folder, "--index", index, "-q", "--embedder", FAST_EMBEDDER)
    assert created.returncode == 0, created.stderr
    victim = next(p for p in sorted(messy_folder.glob("*.jpg")) if p.stat().st_size > 10_000)
    result = run_cli("remove", victim, "--index", index)
    assert (
        result.returncode == 0
        and "Removed 1 images" in result.stdout
        and "3 remain" in result.stdout
    )
    assert victim.exists()  # files on disk are never touched


def test_search_plot_saves_montage_and_histogram(
    copy_set: CopySet, fast_gallery_index: Path, tmp_path: Path
) -> None:
    from PIL import Image

    target = tmp_path / "plots" / "results.png"
    queries = [copy_set.copies[0].copy, copy_set.copies[10].copy]
    result = run_cli("search", *queries, "--index", fast_gallery_index, "-k", "4", "--plot", target)
    assert result.returncode == 0, result.stderr
    with Image.open(target) as montage:
        # One row per query; the query and its 4 results per row (128 px tiles + margins).
        assert montage.size == (5 * 134, 2 * 152)
    with Image.open(target.with_name("results-scores.png")) as histogram:
        assert histogram.width > 300
    bad = run_cli("search", queries[0], "--index", fast_gallery_index, "--plot", tmp_path / "x.jpg")
    assert bad.returncode == 2 and ".png" in bad.stderr


def test_search_walks_folders_of_queries_like_indexing_does(
    copy_set: CopySet, tmp_path: Path
) -> None:
    index = tmp_path / "pixels.idx"
    built = run_cli("index", copy_set.root, "--index", index, "--embedder", "pixels", "-q")
    assert built.returncode == 0, built.stderr
    queries = tmp_path / "queries"
    (queries / "nested").mkdir(parents=True)
    shutil.copy(copy_set.originals[0], queries / copy_set.originals[0].name)
    shutil.copy(copy_set.originals[1], queries / "nested" / copy_set.originals[1].name)
    (queries / "notes.txt").write_text("not an image")
    (queries / ".hidden.jpg").write_bytes(copy_set.originals[2].read_bytes())
    result = run_cli("search", queries, "--index", index, "-k", "1", "--json")
    assert result.returncode == 0, result.stderr
    lines = json_lines(result.stdout)
    assert [line["query"] for line in lines] == [
        str(queries / copy_set.originals[0].name),
        str(queries / "nested" / copy_set.originals[1].name),
    ]
    for line in lines:
        assert Path(top_path(line)).name == Path(str(line["query"])).name
    (queries / "empty").mkdir()
    empty = run_cli("search", queries / "empty", "--index", index)
    assert empty.returncode == 2 and "holds no images" in empty.stderr
