"""Keep rules on file facts: each rule's order, unknown values last, reasons in words."""

from __future__ import annotations

from lookalike.duplicates.keep_rules import DEFAULT_RULES, KeepRule, choose_keeper, parse_rules
from lookalike.image_facts import ImageFacts


def _facts(
    path: str,
    *,
    size: int = 1000,
    mtime_ns: int = 0,
    wh: tuple[int, int] | None = (400, 300),
    fmt: str | None = "jpeg",
    taken: str | None = None,
) -> ImageFacts:
    width, height = wh if wh is not None else (None, None)
    return ImageFacts(path, size, mtime_ns, width, height, fmt, taken)


def test_prefer_format_knows_raw_and_heic_by_format_or_extension() -> None:
    files = [
        (1, _facts("/a/IMG_1.JPG")),
        (2, _facts("/a/IMG_1.HEIC", fmt="heif")),
        (3, _facts("/a/IMG_1.CR3", fmt=None, wh=None)),  # no reader installed for it
        (4, _facts("/a/IMG_1.dng", fmt="tiff")),
    ]
    choice = choose_keeper(files, parse_rules(["prefer-format raw,heic,jpeg"]))
    assert files[choice.keeper][0] == 4  # the readable RAW; the CR3's header cannot be read
    assert (
        choice.reason == "the others' headers cannot be read; prefer format raw,heic,jpeg: "
        "tiff against heif"
    )
    heic = choose_keeper(files[:2], parse_rules(["prefer-format heic,jpeg"]))
    assert (heic.keeper, heic.reason) == (1, "prefer format heic,jpeg: heif against jpeg")


def test_unknown_values_rank_last_and_ties_go_to_the_smallest_id() -> None:
    dated = _facts("/b/x.jpg", taken="2020-01-01T00:00:00")
    undated = _facts("/a/x.jpg")
    rules = parse_rules(["oldest-exif-date"])
    assert choose_keeper([(7, undated), (9, dated)], rules).keeper == 1
    same = choose_keeper([(9, undated), (7, undated)], DEFAULT_RULES)
    assert (same.keeper, same.reason) == (1, "the rules tie: smallest id")
    newest = choose_keeper(
        [(1, _facts("/a", mtime_ns=10**18)), (2, _facts("/b", mtime_ns=10**18 + 1))],
        [KeepRule("newest")],
    )
    assert newest.keeper == 1  # one nanosecond newer still wins (exact integer keys)
