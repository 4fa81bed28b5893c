"""A duplicate plan: for each group, the file to keep, why, and the others, with every fact an
action later checks (size, modification time, content hash) as they were when it was made.

Written by ``lookalike duplicates --plan``, downloaded from the page, read by ``lookalike
duplicates apply``. Nothing is acted on here. A file that cannot be read any more (gone since
it was indexed) never becomes a keeper and is never an "other": its group lists it under
``missing``, and a group left with fewer than two files is left out (with a note).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lookalike.catalog_records import ImageRecord
from lookalike.duplicates.keep_rules import KeepRule, choose_keeper, parse_rules
from lookalike.duplicates.report import DuplicatePair, DuplicateReport, Tier, TieredGroup
from lookalike.errors import InvalidInputError
from lookalike.image_facts import ImageFacts, read_facts
from lookalike.sources import content_hash

PLAN_FORMAT = "lookalike-duplicate-plan"
PLAN_VERSION = 1

FactsReader = Callable[[str], ImageFacts]


@dataclass(frozen=True)
class PlanFile:
    """One file of a plan, as it was when the plan was made."""

    id: int
    path: str
    size: int
    mtime_ns: int
    hash: str
    width: int | None
    height: int | None
    format: str | None
    taken: str | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PlanOther:
    """A file the plan does not keep: its pair's tier and score with the keeper (the group's
    tier and lowest score where the two are linked only through others)."""

    file: PlanFile
    tier: Tier
    score: float

    def to_json(self) -> dict[str, Any]:
        return {**self.file.to_json(), "tier": self.tier.value, "score": self.score}


@dataclass(frozen=True)
class MissingFile:
    """A file of a group that could not be read when the plan was made."""

    id: int
    path: str
    error: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PlanGroup:
    tier: Tier
    keep: PlanFile
    reason: str
    others: tuple[PlanOther, ...]
    missing: tuple[MissingFile, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "tier": self.tier.value,
            "keep": self.keep.to_json(),
            "reason": self.reason,
            "others": [o.to_json() for o in self.others],
            "missing": [m.to_json() for m in self.missing],
        }


@dataclass(frozen=True)
class Plan:
    """What to keep in each duplicate group of one index, and by which rules."""

    index: str
    created: str
    rules: tuple[KeepRule, ...]
    groups: tuple[PlanGroup, ...]
    #: What the plan left out, in words (groups with fewer than two readable files).
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "version": PLAN_VERSION,
            "index": self.index,
            "created": self.created,
            "rules": [r.text() for r in self.rules],
            "groups": [g.to_json() for g in self.groups],
            "notes": list(self.notes),
        }

    def write(self, path: Path) -> None:
        """Write the plan as JSON (an ordinary file: a plan is the user's, not the index's)."""
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> Plan:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInputError(
                f"{path}: not a readable plan file ({exc}); write one with "
                "`lookalike duplicates --plan FILE`"
            ) from exc
        return cls.from_json(data, source=str(path))

    @classmethod
    def from_json(cls, data: object, *, source: str = "plan") -> Plan:
        """A plan from its JSON; a missing or wrong field is an error naming it."""
        top = _Fields(data, source)
        if top.text("format") != PLAN_FORMAT:
            raise InvalidInputError(
                f"{source}: field 'format' is {top.raw('format')!r}, not {PLAN_FORMAT!r}: this is "
                "not a duplicate plan; write one with `lookalike duplicates --plan FILE`"
            )
        version = top.integer("version")
        if version != PLAN_VERSION:
            raise InvalidInputError(
                f"{source}: field 'version' is {version}; this lookalike reads version "
                f"{PLAN_VERSION}: make the plan again with this version"
            )
        try:
            rules = parse_rules([str(r) for r in top.items("rules")])
        except InvalidInputError as exc:
            raise InvalidInputError(f"{source}: field 'rules': {exc}") from exc
        groups = tuple(
            _group(_Fields(g, f"{source}: groups[{n}]")) for n, g in enumerate(top.items("groups"))
        )
        notes = tuple(str(n) for n in top.items("notes", default=[]))
        return cls(top.text("index"), top.text("created"), rules, groups, notes)


def make_plan(
    report: DuplicateReport,
    rules: Sequence[KeepRule | str] | None = None,
    *,
    keepers: Collection[int] = (),
    facts: FactsReader = read_facts,
    index: Path | str = "",
    now: datetime | None = None,
) -> Plan:
    """The plan for ``report``'s groups: each group's keeper by ``rules`` (default:
    ``DEFAULT_RULES``), or the one of ``keepers`` (ids the user chose) in it.

    Example:
        >>> report = engine.find_duplicates()  # doctest: +SKIP
        >>> plan = make_plan(report, ["prefer-path */originals/*"])  # doctest: +SKIP
    """
    ordered = parse_rules(rules)
    chosen = {int(i) for i in keepers}
    placed: set[int] = set()
    groups: list[PlanGroup] = []
    notes: list[str] = []
    for group in report.groups:
        files, missing = _read_group(group, report.records, facts)
        mine = [i for i in group.ids if i in chosen]
        if len(mine) > 1:
            raise InvalidInputError(
                f"keepers {mine} are in one duplicate group: choose one keeper per group"
            )
        placed.update(mine)
        if len(files) < 2:
            names = ", ".join(m.path or str(m.id) for m in missing)
            notes.append(
                f"a group of {len(group.ids)} files left out: {names} cannot be read "
                "(gone since indexed?)"
            )
            continue
        if mine:
            at = next((n for n, (i, _) in enumerate(files) if i == mine[0]), None)
            if at is None:
                raise InvalidInputError(
                    f"keeper {mine[0]} cannot be read ({_missing_error(missing, mine[0])}); "
                    "choose another file of its group"
                )
            keeper, reason = at, "chosen by the user"
        else:
            choice = choose_keeper([(i, f.facts) for i, f in files], ordered)
            keeper, reason = choice.keeper, choice.reason
        keep_id = files[keeper][0]
        others = tuple(
            _other(group, keep_id, plan_file.file)
            for n, (_, plan_file) in enumerate(files)
            if n != keeper
        )
        groups.append(PlanGroup(group.tier, files[keeper][1].file, reason, others, missing))
    stray = sorted(chosen - placed)
    if stray:
        raise InvalidInputError(
            f"keepers {stray} are in no duplicate group of this scan; "
            "choose ids of the groups shown"
        )
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    return Plan(
        index=str(index),
        created=moment.isoformat().replace("+00:00", "Z"),
        rules=ordered,
        groups=tuple(groups),
        notes=tuple(notes),
    )


@dataclass(frozen=True)
class _Read:
    file: PlanFile
    facts: ImageFacts


def _read_group(
    group: TieredGroup, records: Mapping[int, ImageRecord], facts: FactsReader
) -> tuple[list[tuple[int, _Read]], tuple[MissingFile, ...]]:
    files: list[tuple[int, _Read]] = []
    missing: list[MissingFile] = []
    for image_id in group.ids:
        record = records.get(image_id)
        if record is None:
            missing.append(MissingFile(image_id, "", "no longer in the index"))
            continue
        try:
            found = facts(record.path)
            same = found.size == record.size and found.mtime_ns == record.mtime_ns
            # A file changed since it was indexed: its content hash is read again, so that the
            # plan holds what is on disk now.
            digest = record.hash if same and record.hash else content_hash(record.path)
        except OSError as exc:
            missing.append(MissingFile(image_id, record.path, exc.strerror or str(exc)))
            continue
        plan_file = PlanFile(
            image_id,
            record.path,
            found.size,
            found.mtime_ns,
            digest,
            found.width,
            found.height,
            found.format,
            found.taken,
        )
        files.append((image_id, _Read(plan_file, found)))
    return files, tuple(missing)


def _missing_error(missing: Sequence[MissingFile], image_id: int) -> str:
    return next((m.error for m in missing if m.id == image_id), "unknown")


def _other(group: TieredGroup, keep_id: int, file: PlanFile) -> PlanOther:
    low, high = min(keep_id, file.id), max(keep_id, file.id)
    direct: DuplicatePair | None = next(
        (p for p in group.pairs if p.first == low and p.second == high), None
    )
    if direct is not None:
        return PlanOther(file, direct.tier, direct.score)
    return PlanOther(file, group.tier, group.min_score)


class _Fields:
    """Typed reads of one JSON object, each error naming the field and where it is."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise InvalidInputError(f"{where}: expected a JSON object, got {type(data).__name__}")
        self.data: dict[str, Any] = data
        self.where = where

    def raw(self, name: str) -> object:
        return self.data.get(name)

    def _get(self, name: str, kinds: tuple[type, ...], what: str) -> Any:
        if name not in self.data:
            raise InvalidInputError(f"{self.where}: field {name!r} is missing ({what} expected)")
        value = self.data[name]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise InvalidInputError(f"{self.where}: field {name!r} must be {what}, got {value!r}")
        return value

    def text(self, name: str) -> str:
        return str(self._get(name, (str,), "a string"))

    def integer(self, name: str) -> int:
        return int(self._get(name, (int,), "an integer"))

    def number(self, name: str) -> float:
        return float(self._get(name, (int, float), "a number"))

    def items(self, name: str, default: list[Any] | None = None) -> list[Any]:
        if default is not None and name not in self.data:
            return default
        return list(self._get(name, (list,), "a list"))

    def optional(self, name: str, kinds: tuple[type, ...], what: str) -> Any:
        if self.data.get(name) is None:
            return None
        return self._get(name, kinds, what)


def _file(fields: _Fields) -> PlanFile:
    return PlanFile(
        id=fields.integer("id"),
        path=fields.text("path"),
        size=fields.integer("size"),
        mtime_ns=fields.integer("mtime_ns"),
        hash=fields.text("hash"),
        width=fields.optional("width", (int,), "an integer or null"),
        height=fields.optional("height", (int,), "an integer or null"),
        format=fields.optional("format", (str,), "a string or null"),
        taken=fields.optional("taken", (str,), "an ISO date or null"),
    )


def _tier(fields: _Fields) -> Tier:
    text = fields.text("tier")
    try:
        return Tier(text)
    except ValueError:
        raise InvalidInputError(
            f"{fields.where}: field 'tier' is {text!r}; tiers: {', '.join(t.value for t in Tier)}"
        ) from None


def _group(fields: _Fields) -> PlanGroup:
    keep = _file(_Fields(fields.raw("keep"), f"{fields.where}.keep"))
    others = []
    for n, raw in enumerate(fields.items("others")):
        other = _Fields(raw, f"{fields.where}.others[{n}]")
        others.append(PlanOther(_file(other), _tier(other), other.number("score")))
    missing = []
    for n, raw in enumerate(fields.items("missing", default=[])):
        gone = _Fields(raw, f"{fields.where}.missing[{n}]")
        missing.append(MissingFile(gone.integer("id"), gone.text("path"), gone.text("error")))
    return PlanGroup(_tier(fields), keep, fields.text("reason"), tuple(others), tuple(missing))


__all__ = [
    "PLAN_FORMAT",
    "PLAN_VERSION",
    "MissingFile",
    "Plan",
    "PlanFile",
    "PlanGroup",
    "PlanOther",
    "make_plan",
]
