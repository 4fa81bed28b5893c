"""Duplicate plans (keep rules, the plan file), not-duplicate decisions and --against, on a
small archive of real photos and copies of them made the ways archives get them."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from lookalike import SearchEngine
from lookalike.duplicates.keep_rules import KeepRule, parse_rules
from lookalike.duplicates.plan import Plan, PlanGroup
from lookalike.duplicates.report import DuplicateOptions, Tier
from lookalike.errors import EmbedderMismatchError, InvalidInputError
from tests.archive import make_archive
from tests.conftest import FAST_EMBEDDER
from tests.helpers import run_cli

#: Raw pixels of any two photos are alike: only near-exact copies pass this (see
#: test_duplicates.py); every copy made below is one.
OPTIONS = DuplicateOptions(threshold=0.98)


@pytest.fixture
def archive(small_photos: Path, tmp_path: Path) -> tuple[Path, Path]:
    folder = make_archive(small_photos, tmp_path)
    index = tmp_path / "archive.idx"
    with SearchEngine.create(index, embedder=FAST_EMBEDDER) as engine:
        engine.index_folder(folder)
    return folder, index


def _group_of(plan: Plan, name: str) -> PlanGroup:
    found = [g for g in plan.groups if any(Path(f.path).name == name for f in _files(g))]
    assert len(found) == 1, (name, plan.to_json())
    return found[0]


def _files(group: PlanGroup) -> list[object]:
    return [group.keep, *(o.file for o in group.others)]


def _rel(folder: Path, path: str) -> str:
    return Path(path).relative_to(folder).as_posix()


def test_default_rules_keep_the_largest_resolution_then_the_smallest_id(
    archive: tuple[Path, Path],
) -> None:
    folder, index = archive
    with SearchEngine.open(index) as engine:
        plan = engine.duplicate_plan(options=OPTIONS)
    assert [r.text() for r in plan.rules] == [
        "largest-resolution",
        "largest-file",
        "oldest-exif-date",
    ]
    assert len(plan.groups) == 2  # chelsea's three files, coffee's two; rocket is alone
    chelsea = _group_of(plan, "chelsea-small.jpg")
    assert _rel(folder, chelsea.keep.path) == "backup/chelsea.jpg"  # the two tie: smaller id
    w, h = chelsea.keep.width, chelsea.keep.height
    assert chelsea.reason == (
        f"largest resolution: {w}x{h} against {w // 2}x{h // 2}; the rules tie: smallest id"
    )
    others = {_rel(folder, o.file.path): o for o in chelsea.others}
    assert set(others) == {"originals/chelsea.jpg", "phone/chelsea-small.jpg"}
    assert others["originals/chelsea.jpg"].tier is Tier.IDENTICAL
    assert others["originals/chelsea.jpg"].file.hash == chelsea.keep.hash
    assert chelsea.keep.taken == "2021-05-01T10:00:00"
    coffee = _group_of(plan, "coffee.png")
    # Same pixels: the PNG wins on the next rule, its larger file.
    assert _rel(folder, coffee.keep.path) == "backup/coffee.png"
    assert coffee.reason.startswith("largest file: ")
    assert coffee.keep.format == "png" and coffee.keep.size > coffee.others[0].file.size


@pytest.mark.parametrize(
    ("rules", "chelsea_keeper", "coffee_keeper", "reason"),
    [
        (
            ["prefer-path */originals/*"],
            "originals/chelsea.jpg",
            "originals/coffee.jpg",
            "prefer path */originals/*",
        ),
        (
            ["oldest-exif-date"],
            "phone/chelsea-small.jpg",
            "backup/coffee.png",
            "oldest EXIF date: 2019-01-02T03:04:05 against 2021-05-01T10:00:00",
        ),
        (["newest"], "phone/chelsea-small.jpg", "originals/coffee.jpg", "newest: 2023-11-14"),
        (
            ["prefer-format jpeg,png", "largest-file"],
            "backup/chelsea.jpg",
            "originals/coffee.jpg",
            "prefer format jpeg,png",
        ),
        (["largest-file"], "backup/chelsea.jpg", "backup/coffee.png", "largest file: "),
    ],
)
def test_each_rule_picks_its_keeper(
    archive: tuple[Path, Path],
    rules: list[str],
    chelsea_keeper: str,
    coffee_keeper: str,
    reason: str,
) -> None:
    folder, index = archive
    with SearchEngine.open(index) as engine:
        plan = engine.duplicate_plan(rules, options=OPTIONS)
    chelsea = _group_of(plan, "chelsea-small.jpg")
    assert _rel(folder, chelsea.keep.path) == chelsea_keeper
    assert _rel(folder, _group_of(plan, "coffee.png").keep.path) == coffee_keeper
    assert reason in chelsea.reason + " | " + _group_of(plan, "coffee.png").reason


def test_plan_round_trips_and_a_bad_plan_names_the_field(
    archive: tuple[Path, Path], tmp_path: Path
) -> None:
    _, index = archive
    with SearchEngine.open(index) as engine:
        plan = engine.duplicate_plan(["prefer-path */phone/*", "newest"], options=OPTIONS)
    path = tmp_path / "plan.json"
    plan.write(path)
    data = json.loads(path.read_text())
    assert data["format"] == "lookalike-duplicate-plan" and data["version"] == 1
    assert data["index"] == str(index.resolve())
    assert data["rules"] == ["prefer-path */phone/*", "newest"]
    assert Plan.read(path) == plan
    digest = data["groups"][0]["others"][0].pop("hash")
    path.write_text(json.dumps(data))
    with pytest.raises(
        InvalidInputError, match=r"groups\[0\]\.others\[0\]: field 'hash' is missing"
    ):
        Plan.read(path)
    data["groups"][0]["others"][0]["hash"] = digest
    data["groups"][0]["tier"] = "twin"
    with pytest.raises(InvalidInputError, match=r"groups\[0\]: field 'tier' is 'twin'"):
        Plan.from_json(data)
    with pytest.raises(InvalidInputError, match="not a duplicate plan"):
        Plan.from_json({**data, "format": "something"})
    path.write_text("{not json")
    with pytest.raises(InvalidInputError, match="not a readable plan file"):
        Plan.read(path)


def test_rule_errors_list_the_valid_rules() -> None:
    with pytest.raises(InvalidInputError, match="largest-resolution, largest-file"):
        parse_rules(["biggest"])
    with pytest.raises(InvalidInputError, match="needs a GLOB"):
        parse_rules(["prefer-path"])
    with pytest.raises(InvalidInputError, match="unknown format gif2"):
        KeepRule.parse("prefer-format raw,gif2")
    assert KeepRule.parse("prefer-path */My Photos/*").argument == "*/My Photos/*"


def test_a_gone_file_never_keeps_and_user_keepers_win(archive: tuple[Path, Path]) -> None:
    folder, index = archive
    (folder / "backup" / "chelsea.jpg").unlink()
    with SearchEngine.open(index) as engine:
        plan = engine.duplicate_plan(options=OPTIONS)
        chelsea = _group_of(plan, "chelsea-small.jpg")
        assert _rel(folder, chelsea.keep.path) == "originals/chelsea.jpg"
        assert [_rel(folder, m.path) for m in chelsea.missing] == ["backup/chelsea.jpg"]
        assert len(chelsea.others) == 1
        small = engine.record_by_path(str(folder / "phone" / "chelsea-small.jpg")).id
        chosen = engine.duplicate_plan(options=OPTIONS, keepers=[small])
        picked = _group_of(chosen, "chelsea-small.jpg")
        assert (picked.keep.id, picked.reason) == (small, "chosen by the user")
        assert _group_of(chosen, "coffee.png").reason.startswith("largest file")
        gone = engine.record_by_path(str(folder / "backup" / "chelsea.jpg")).id
        with pytest.raises(InvalidInputError, match=f"keeper {gone} cannot be read"):
            engine.duplicate_plan(options=OPTIONS, keepers=[gone])
        rocket = engine.record_by_path(str(folder / "originals" / "rocket.jpg")).id
        with pytest.raises(InvalidInputError, match=rf"keepers \[{rocket}\] are in no duplicate"):
            engine.duplicate_plan(options=OPTIONS, keepers=[rocket])


def test_a_dismissed_pair_never_comes_back_even_after_reindexing(
    archive: tuple[Path, Path],
) -> None:
    folder, index = archive
    with SearchEngine.open(index, writable=True) as engine:
        coffee = engine.record_by_path(str(folder / "originals" / "coffee.jpg")).id
        png = engine.record_by_path(str(folder / "backup" / "coffee.png")).id
        before = engine.find_duplicates(OPTIONS)
        assert any({coffee, png} <= set(g.ids) for g in before.groups)
        assert before.dismissed_pairs == 0
        assert engine.dismiss_pair(png, coffee) is True
        assert engine.dismiss_pair(coffee, png) is False  # already recorded
        after = engine.find_duplicates(OPTIONS)
        assert not any({coffee, png} & set(g.ids) for g in after.groups)
        assert after.dismissed_pairs == 1 and len(after.groups) == len(before.groups) - 1
        original = engine.record_by_path(str(folder / "originals" / "chelsea.jpg")).id
        twin = engine.record_by_path(str(folder / "backup" / "chelsea.jpg")).id
        with pytest.raises(InvalidInputError, match="same content"):
            engine.dismiss_pair(original, twin)
    # Renamed, moved and indexed again: the decision holds (it is kept by content).
    (folder / "backup" / "coffee.png").rename(folder / "originals" / "coffee-lossless.png")
    shutil.rmtree(folder / "phone")
    with SearchEngine.open(index, writable=True) as engine:
        engine.index_folder(folder)
        report = engine.find_duplicates(OPTIONS)
    names = [sorted(_rel(folder, report.records[i].path) for i in g.ids) for g in report.groups]
    assert names == [["backup/chelsea.jpg", "originals/chelsea.jpg"]]
    assert report.dismissed_pairs == 1


def test_against_lists_what_the_old_collection_already_has(
    archive: tuple[Path, Path], small_photos: Path, tmp_path: Path
) -> None:
    folder, old_index = archive
    card = tmp_path / "card"
    card.mkdir()
    shutil.copy(folder / "originals" / "chelsea.jpg", card / "IMG_0001.jpg")  # same bytes
    coffee = Image.open(folder / "originals" / "coffee.jpg")
    coffee.save(card / "IMG_0002.jpg", quality=70)  # re-encoded
    shutil.copy(small_photos / "things" / "motorcycle_left.jpg", card / "IMG_0003.jpg")  # new
    new_index = tmp_path / "card.idx"
    with SearchEngine.create(new_index, embedder=FAST_EMBEDDER) as engine:
        engine.index_folder(card)
        report = engine.find_against(old_index, OPTIONS)
    by_name = {Path(m.image.path).name: m for m in report.matches}
    assert by_name["IMG_0001.jpg"].tier is Tier.IDENTICAL
    assert by_name["IMG_0001.jpg"].match is not None
    assert Path(by_name["IMG_0001.jpg"].match.path).name == "chelsea.jpg"
    assert by_name["IMG_0002.jpg"].tier is not None and by_name["IMG_0002.jpg"].match is not None
    assert by_name["IMG_0002.jpg"].match.path.endswith("coffee.jpg") or by_name[
        "IMG_0002.jpg"
    ].match.path.endswith("coffee.png")
    assert by_name["IMG_0003.jpg"].tier is None and by_name["IMG_0003.jpg"].match is None
    assert [Path(m.image.path).name for m in report.new] == ["IMG_0003.jpg"]
    assert report.old_images == 6
    other = tmp_path / "other.idx"
    with SearchEngine.create(other, embedder="histogram") as engine:
        engine.index_folder(card)
        with pytest.raises(EmbedderMismatchError, match="do not compare"):
            engine.find_against(old_index, OPTIONS)


def test_cli_plan_not_duplicates_and_against(
    archive: tuple[Path, Path], small_photos: Path, tmp_path: Path
) -> None:
    folder, index = archive
    plan_file, table, dump = tmp_path / "plan.json", tmp_path / "d.csv", tmp_path / "d.json"
    result = run_cli(
        "duplicates", "--index", index, "--threshold", "0.98", "--keep", "prefer-path */phone/*",
        "--keep", "largest-file", "--plan", plan_file, "--csv", table, "--json", dump,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "2 groups holding 5 of 6 images (pairs: identical 1, " in text
    assert f"keep {folder / 'phone' / 'chelsea-small.jpg'}  (prefer path */phone/*)" in text
    assert "keep rules: prefer-path */phone/*, largest-file" in text
    assert f"plan written to {plan_file}: 2 groups, 3 files not kept" in text
    plan = Plan.read(plan_file)
    assert [r.text() for r in plan.rules] == ["prefer-path */phone/*", "largest-file"]
    with table.open() as fh:
        rows = list(csv.DictReader(fh))
    kept = {Path(r["path"]).relative_to(folder).as_posix() for r in rows if r["keep"] == "yes"}
    assert kept == {"phone/chelsea-small.jpg", "backup/coffee.png"}
    tiers = {Path(r["path"]).relative_to(folder).as_posix(): r["tier"] for r in rows}
    assert tiers["originals/chelsea.jpg"] == tiers["backup/chelsea.jpg"] != "identical"
    data = json.loads(dump.read_text())
    pairs = [p for g in data["groups"] for p in g["pairs"]]
    assert {p["tier"] for p in pairs} >= {"identical"} and len(pairs) >= 3

    bad = run_cli("duplicates", "--index", index, "--keep", "biggest")
    assert bad.returncode == 2 and "valid rules: largest-resolution" in bad.stderr

    marked = run_cli(
        "duplicates", "not-duplicates", folder / "originals" / "coffee.jpg",
        folder / "backup" / "coffee.png", "--index", index,
    )  # fmt: skip
    assert marked.returncode == 0, marked.stderr
    assert "recorded:" in marked.stdout
    again = run_cli("duplicates", "--index", index, "--threshold", "0.98", "--json", dump)
    assert "1 groups holding 3 of 6 images" in again.stdout
    assert "1 pairs left out: marked as not duplicates." in again.stdout
    assert json.loads(dump.read_text())["dismissed_pairs"] == 1

    card = tmp_path / "card"
    card.mkdir()
    shutil.copy(folder / "backup" / "coffee.png", card / "IMG_0001.png")
    shutil.copy(small_photos / "things" / "retina.jpg", card / "IMG_0002.jpg")
    card_index = tmp_path / "card.idx"
    assert (
        run_cli("index", card, "--index", card_index, "--embedder", FAST_EMBEDDER).returncode == 0
    )
    found = run_cli(
        "duplicates", "--index", card_index, "--against", index, "--threshold", "0.98",
        "--json", dump, "--csv", table,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert (
        f"1 of 2 images of {card_index} already exist in {index} (6 images): identical 1."
        in found.stdout
    )
    assert f"{card / 'IMG_0001.png'}  ->  {folder / 'backup' / 'coffee.png'}  (identical" in (
        found.stdout
    )
    answer = json.loads(dump.read_text())
    assert [Path(m["path"]).name for m in answer["new"]] == ["IMG_0002.jpg"]
    assert answer["tiers"]["identical"] == 1
    with table.open() as fh:
        assert sorted(r["status"] for r in csv.DictReader(fh)) == ["found", "new"]


def test_an_older_catalog_read_only_has_no_decisions(archive: tuple[Path, Path]) -> None:
    _, index = archive
    with sqlite3.connect(index / "catalog.sqlite") as db:  # as schema 3 left it
        db.execute("DROP TABLE not_duplicates")
        db.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    with SearchEngine.open(index) as engine:
        report = engine.find_duplicates(OPTIONS)
    assert len(report.groups) == 2 and report.dismissed_pairs == 0
    with SearchEngine.open(index, writable=True) as engine:  # a writer migrates it
        first, second = report.groups[1].ids[:2]
        assert engine.dismiss_pair(first, second)
        assert engine.find_duplicates(OPTIONS).dismissed_pairs == 1
