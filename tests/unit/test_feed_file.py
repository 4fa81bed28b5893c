"""Reading product feeds: CSV, JSON Lines and Parquet; detected and named columns; image lists;
metadata types; errors that name the file, the line and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lookalike.errors import InvalidInputError
from lookalike.feeds.feed_file import is_feed, read_feed


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_detected_columns_lists_and_numbers(tmp_path: Path) -> None:
    feed = _write(
        tmp_path / "shop.csv",
        "SKU,title,price,image_link,stock\n"
        'A1,Red shoe,29.90,"[""http://h/1.jpg"", ""http://h/2.jpg"", ""http://h/1.jpg""]",3\n'
        "0042,Blue hat,12,photos/hat.jpg,\n",
    )
    read = read_feed(feed)
    assert (read.id_column, read.image_column) == ("SKU", "image_link")
    first, second = read.rows
    assert first.id == "A1" and first.images == ("http://h/1.jpg", "http://h/2.jpg")
    assert first.fields == {"SKU": "A1", "title": "Red shoe", "price": 29.9, "stock": 3}
    assert second.id == "0042"  # ids stay text: leading zeros kept
    assert second.images == (str((tmp_path / "photos" / "hat.jpg").resolve()),)
    assert second.fields["price"] == 12 and second.line == 3


def test_jsonl_keeps_json_types_and_named_columns(tmp_path: Path) -> None:
    rows = [
        {"pid": 7, "pics": ["http://h/a.png"], "price": 5.5, "tags": ["x", "y"], "url": "u"},
        {"pid": 8, "pics": "http://h/b.png", "price": None},
    ]
    feed = _write(tmp_path / "f.jsonl", "".join(json.dumps(r) + "\n" for r in rows) + "\n")
    read = read_feed(feed, image_column="pics", id_column="pid")
    assert [r.id for r in read.rows] == ["7", "8"]
    assert read.rows[0].fields == {"pid": "7", "price": 5.5, "tags": '["x", "y"]', "url": "u"}
    assert read.rows[1].images == ("http://h/b.png",) and read.rows[1].fields["price"] is None


def test_parquet(tmp_path: Path) -> None:
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as parquet

    table = pyarrow.table({"id": ["a", "b"], "image_url": ["http://h/1.jpg", "x.jpg"], "p": [1, 2]})
    parquet.write_table(table, tmp_path / "f.parquet")
    read = read_feed(tmp_path / "f.parquet")
    assert [r.fields["p"] for r in read.rows] == [1, 2]
    assert read.rows[1].images == (str((tmp_path / "x.jpg").resolve()),)


def test_errors_name_the_problem_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"no image column found.*'name'.*--image-column"):
        read_feed(_write(tmp_path / "a.csv", "id,name\n1,x\n"))
    with pytest.raises(InvalidInputError, match=r"no column 'pic'.*--image-column"):
        read_feed(_write(tmp_path / "b.csv", "id,image\n1,x\n"), image_column="pic")
    with pytest.raises(InvalidInputError, match=r"line 3: id '1' already used on line 2"):
        read_feed(_write(tmp_path / "c.csv", "id,image\n1,x\n1,y\n"))
    with pytest.raises(InvalidInputError, match=r"line 2: empty 'id'"):
        read_feed(_write(tmp_path / "d.csv", "id,image\n,x\n"))
    with pytest.raises(InvalidInputError, match=r"line 2: 'image' starts with '\[' but is not"):
        read_feed(_write(tmp_path / "e.csv", 'id,image\n1,"[http://h/1.jpg"\n'))
    with pytest.raises(InvalidInputError, match=r"f.jsonl, line 2: not JSON"):
        read_feed(_write(tmp_path / "f.jsonl", '{"id": 1, "image": "a"}\n{oops\n'))
    with pytest.raises(InvalidInputError, match="feed file not found"):
        read_feed(tmp_path / "nothing.csv")


def test_is_feed(tmp_path: Path) -> None:
    assert is_feed(Path("shop.CSV")) and is_feed(Path("a.ndjson")) and is_feed(Path("p.parquet"))
    assert not is_feed(tmp_path) and not is_feed(Path("photos"))
    folder = tmp_path / "odd.csv"
    folder.mkdir()
    assert not is_feed(folder)
