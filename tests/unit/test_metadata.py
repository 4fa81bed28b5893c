"""Metadata CSV files: which column names the image, numbers as numbers, and bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from lookalike.errors import InvalidInputError
from lookalike.metadata import read_metadata_csv


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def test_rows_are_keyed_by_absolute_path_and_numbers_are_numbers(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    table = _write(
        tmp_path / "products.csv",
        "file,title,price,stock,code,ratio\n"
        "shoes/red.jpg,Red shoe,30,7,007,0.5\n"
        f"{tmp_path / 'elsewhere' / 'blue.jpg'},  Blue shoe ,12.50,-3,1e3,inf\n",
    )
    result = read_metadata_csv(table, photos)
    assert result.key_column == "file"
    red = str((photos / "shoes" / "red.jpg").resolve())
    blue = str((tmp_path / "elsewhere" / "blue.jpg").resolve())
    assert set(result.rows) == {red, blue}
    assert result.rows[red] == {
        "title": "Red shoe",
        "price": 30,
        "stock": 7,
        "code": 7,
        "ratio": 0.5,
    }
    assert type(result.rows[red]["price"]) is int
    blue_row = result.rows[blue]
    assert blue_row["title"] == "Blue shoe"  # surrounding spaces dropped
    assert blue_row["price"] == 12.5 and type(blue_row["price"]) is float  # "12.50" has a point
    assert blue_row["stock"] == -3
    assert blue_row["code"] == 1000 and type(blue_row["code"]) is int  # 1e3: whole, no point
    assert blue_row["ratio"] == "inf"  # not finite: kept as text, never a number to filter on


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("path,title", "path"),
        ("title,Filename", "Filename"),
        ("title,image", "image"),
        ("name,title", "name"),
        ("title,FILE,path", "FILE"),  # the first column that looks like one
    ],
)
def test_key_column_is_found_by_name(tmp_path: Path, header: str, expected: str) -> None:
    values = ",".join("a.jpg" if column == expected else "x" for column in header.split(","))
    table = _write(tmp_path / "m.csv", f"{header}\n{values}\n")
    result = read_metadata_csv(table, tmp_path)
    assert result.key_column == expected
    assert list(result.rows) == [str((tmp_path / "a.jpg").resolve())]
    assert expected not in result.rows[str((tmp_path / "a.jpg").resolve())]


def test_key_column_can_be_named_and_a_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    table = _write(tmp_path / "m.csv", "sku,picture,price\nA1,a.jpg,3\n", encoding="utf-8-sig")
    result = read_metadata_csv(table, tmp_path, key_column="picture")
    assert result.rows == {str((tmp_path / "a.jpg").resolve()): {"sku": "A1", "price": 3}}
    bom_key = _write(tmp_path / "b.csv", "path,price\nb.jpg,4\n", encoding="utf-8-sig")
    assert read_metadata_csv(bom_key, tmp_path).key_column == "path"


def test_a_short_row_gives_none_for_its_missing_fields(tmp_path: Path) -> None:
    table = _write(tmp_path / "m.csv", "file,title,price\na.jpg,only a title\n")
    row = read_metadata_csv(table, tmp_path).rows[str((tmp_path / "a.jpg").resolve())]
    assert row == {"title": "only a title", "price": None}


def test_without_a_key_column_the_error_lists_the_columns(tmp_path: Path) -> None:
    table = _write(tmp_path / "m.csv", "sku,price\nA1,3\n")
    with pytest.raises(
        InvalidInputError, match=r"no column names the image file.*\['sku', 'price'\]"
    ):
        read_metadata_csv(table, tmp_path)
    with pytest.raises(InvalidInputError, match="looked for picture"):
        read_metadata_csv(table, tmp_path, key_column="picture")


def test_bad_rows_and_files_are_clear_errors(tmp_path: Path) -> None:
    empty_key = _write(tmp_path / "m.csv", "file,price\na.jpg,1\n  ,2\n")
    with pytest.raises(InvalidInputError, match=r"m\.csv, line 3: empty 'file'"):
        read_metadata_csv(empty_key, tmp_path)
    latin1 = _write(tmp_path / "l.csv", "file,title\na.jpg,caf\xe9\n", encoding="latin-1")
    with pytest.raises(InvalidInputError, match="not UTF-8"):
        read_metadata_csv(latin1, tmp_path)
    huge = _write(tmp_path / "huge.csv", 'file,title\na.jpg,"' + "x" * 200_000 + '"\n')
    with pytest.raises(InvalidInputError, match=r"malformed CSV \(field larger than"):
        read_metadata_csv(huge, tmp_path)
    with pytest.raises(InvalidInputError, match="metadata file not found"):
        read_metadata_csv(tmp_path / "absent.csv", tmp_path)
