"""Which file of a duplicate group to keep: an ordered list of rules the user understands.

A rule is ``NAME`` or ``NAME ARG`` (``largest-resolution``, ``prefer-path */originals/*``). The
rules rank a group's files one after another, each breaking the ties the ones before it left;
the last tie-break is the smallest image id. A value a file lacks (no EXIF date, an unreadable
header) ranks after every value it could have had.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path

from lookalike.errors import InvalidInputError
from lookalike.image_facts import ImageFacts

#: Format names a ``prefer-format`` list may use, and the formats (PIL names or file
#: extensions) each one covers.
FORMAT_FAMILIES: dict[str, frozenset[str]] = {
    "raw": frozenset(
        {"raw", "dng", "cr2", "cr3", "crw", "nef", "nrw", "arw", "srf", "sr2", "raf", "orf"}
        | {"rw2", "pef", "srw", "x3f", "3fr", "iiq", "erf", "kdc", "mrw", "mos"}
    ),
    "heic": frozenset({"heic", "heif", "hif"}),
    "avif": frozenset({"avif"}),
    "jpeg": frozenset({"jpeg", "jpg", "jpe", "mpo"}),
    "png": frozenset({"png"}),
    "tiff": frozenset({"tiff", "tif"}),
    "webp": frozenset({"webp"}),
    "gif": frozenset({"gif"}),
    "bmp": frozenset({"bmp"}),
}

#: Key: a comparable value, higher is better (ints stay exact: nanosecond times); None ranks
#: last.
Key = tuple[float, ...]


@dataclass(frozen=True)
class RuleKind:
    """One kind of rule: its name, whether it takes an argument, and what it says."""

    name: str
    takes: str | None  # what the argument is, for help and errors; None: no argument
    help: str


RULE_KINDS: tuple[RuleKind, ...] = (
    RuleKind("largest-resolution", None, "the most pixels (as shown)"),
    RuleKind("largest-file", None, "the largest file on disk"),
    RuleKind("oldest-exif-date", None, "the earliest EXIF date taken"),
    RuleKind("newest", None, "the most recently modified file"),
    RuleKind("prefer-path", "GLOB", "a path matching GLOB (e.g. */originals/*)"),
    RuleKind("prefer-format", "LIST", "the first format of LIST (e.g. raw,heic,jpeg)"),
)
_KINDS = {kind.name: kind for kind in RULE_KINDS}


def rules_help() -> str:
    """The valid rules in one line, for errors and ``--help``."""
    return ", ".join(f"{k.name} {k.takes}" if k.takes else k.name for k in RULE_KINDS)


@dataclass(frozen=True)
class KeepRule:
    """One rule: a kind from ``RULE_KINDS`` and its argument (None for those without one)."""

    name: str
    argument: str | None = None

    def __post_init__(self) -> None:
        kind = _KINDS.get(self.name)
        if kind is None:
            raise InvalidInputError(
                f"keep rule {self.name!r} is unknown; valid rules: {rules_help()}"
            )
        if kind.takes and not (self.argument or "").strip():
            raise InvalidInputError(f"keep rule {self.name!r} needs a {kind.takes}: {kind.help}")
        if not kind.takes and self.argument is not None:
            raise InvalidInputError(
                f"keep rule {self.name!r} takes no argument, got {self.argument!r}; "
                f"valid rules: {rules_help()}"
            )
        if self.name == "prefer-format":
            unknown = [f for f in self.formats() if f not in FORMAT_FAMILIES]
            if unknown:
                raise InvalidInputError(
                    f"keep rule 'prefer-format {self.argument}': unknown format "
                    f"{', '.join(unknown)}; formats: {', '.join(FORMAT_FAMILIES)}"
                )

    @classmethod
    def parse(cls, text: str) -> KeepRule:
        """``NAME`` or ``NAME ARG`` (the argument is the rest of the text, spaces kept)."""
        name, _, argument = text.strip().partition(" ")
        return cls(name.strip(), argument.strip() or None)

    def text(self) -> str:
        return self.name if self.argument is None else f"{self.name} {self.argument}"

    def formats(self) -> list[str]:
        return [f.strip().lower() for f in (self.argument or "").split(",") if f.strip()]

    def key(self, facts: ImageFacts) -> Key | None:
        """How good ``facts`` is by this rule (higher is better; None: the value is unknown)."""
        return _KEYS[self.name](self, facts)

    def shown(self, facts: ImageFacts) -> str:
        """The value this rule looks at, in words."""
        return _SHOWN[self.name](self, facts)

    def reason(self, keeper: ImageFacts, beaten: ImageFacts) -> str:
        """Why ``keeper`` goes before ``beaten`` by this rule, in words."""
        if self.name == "prefer-path":
            return self.phrase()
        return f"{self.phrase()}: {self.shown(keeper)} against {self.shown(beaten)}"

    def phrase(self) -> str:
        """What the rule prefers, in words ("largest resolution")."""
        if self.argument is None:
            return self.name.replace("-", " ").replace("exif", "EXIF")
        return f"{self.name.replace('-', ' ')} {self.argument}"


DEFAULT_RULES: tuple[KeepRule, ...] = (
    KeepRule("largest-resolution"),
    KeepRule("largest-file"),
    KeepRule("oldest-exif-date"),
)


def parse_rules(texts: Sequence[str | KeepRule] | None) -> tuple[KeepRule, ...]:
    """Rules from their texts, in order (None or empty: ``DEFAULT_RULES``)."""
    if not texts:
        return DEFAULT_RULES
    return tuple(t if isinstance(t, KeepRule) else KeepRule.parse(t) for t in texts)


def _format_of(facts: ImageFacts) -> set[str]:
    names = {Path(facts.path).suffix.lower().lstrip(".")}
    if facts.format:
        names.add(facts.format.lower())
    return names


def _format_rank(rule: KeepRule, facts: ImageFacts) -> Key | None:
    names = _format_of(facts)
    for position, family in enumerate(rule.formats()):
        if names & FORMAT_FAMILIES[family]:
            return (-position,)
    return None


def _taken_key(facts: ImageFacts) -> Key | None:
    if facts.taken is None:
        return None
    moment = datetime.fromisoformat(facts.taken)
    return (-moment.replace(tzinfo=moment.tzinfo or UTC).timestamp(),)


def _mtime(facts: ImageFacts) -> str:
    return datetime.fromtimestamp(facts.mtime_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_KEYS: dict[str, Callable[[KeepRule, ImageFacts], Key | None]] = {
    "largest-resolution": lambda r, f: (f.pixels,) if f.width and f.height else None,
    "largest-file": lambda r, f: (f.size,),
    "oldest-exif-date": lambda r, f: _taken_key(f),
    "newest": lambda r, f: (f.mtime_ns,),
    "prefer-path": lambda r, f: (1,) if fnmatchcase(f.path, r.argument or "") else (0,),
    "prefer-format": _format_rank,
}

_SHOWN: dict[str, Callable[[KeepRule, ImageFacts], str]] = {
    "largest-resolution": lambda r, f: f"{f.width}x{f.height}" if f.width else "unreadable",
    "largest-file": lambda r, f: f"{f.size:,} bytes",
    "oldest-exif-date": lambda r, f: f.taken or "no EXIF date",
    "newest": lambda r, f: _mtime(f),
    "prefer-path": lambda r, f: "matches" if fnmatchcase(f.path, r.argument or "") else "does not",
    "prefer-format": lambda r, f: f.format or Path(f.path).suffix.lstrip(".") or "unknown",
}


@dataclass(frozen=True)
class Choice:
    """The file a group keeps (an index into the files ranked) and why, in words."""

    keeper: int
    reason: str


def choose_keeper(files: Sequence[tuple[int, ImageFacts]], rules: Sequence[KeepRule]) -> Choice:
    """The keeper among ``files`` ((image id, facts) pairs, at least one) by ``rules`` in
    order, then the smallest id. The reason names each rule that narrowed the choice, with
    the keeper's value against the best value it beat."""
    if not files:
        raise InvalidInputError("a duplicate group needs at least one readable file to keep")
    alive = [i for i, (_, facts) in enumerate(files) if facts.format is not None]
    reasons: list[str] = []
    if not alive:  # no header could be read: the rules still rank what stat() says
        alive = list(range(len(files)))
    elif len(alive) < len(files):
        reasons.append("the others' headers cannot be read")
    for rule in rules:
        keys = {i: rule.key(files[i][1]) for i in alive}
        best = max((k for k in keys.values() if k is not None), default=None)
        winners = [i for i in alive if keys[i] == best]
        if len(winners) < len(alive):
            losers = [i for i in alive if i not in winners]
            runner = max(losers, key=lambda i: keys[i] or (float("-inf"),))
            reasons.append(rule.reason(files[winners[0]][1], files[runner][1]))
            alive = winners
        if len(alive) == 1:
            break
    keeper = min(alive, key=lambda i: files[i][0])
    if len(alive) > 1:
        reasons.append("the rules tie: smallest id")
    return Choice(keeper, "; ".join(reasons))


__all__ = [
    "DEFAULT_RULES",
    "FORMAT_FAMILIES",
    "RULE_KINDS",
    "Choice",
    "KeepRule",
    "choose_keeper",
    "parse_rules",
    "rules_help",
]
