"""The shape of an option table: what one release of one program (PCGR or CPSR) accepts.

This module holds no fact about any release: the per-release modules beside it do. Here are the
types they are written in and the checks every table runs the same way:

- `OptionSpec`: one option a sample's TOML may set. `name` is the TOML key, Capillary's name for
  the option (stable across releases); `flag` is the release's own flag for it (PCGR renamed some
  between 1.4 and 2.x). Type, range or choices, and PCGR's default at that release.
- `Rule`: one cross-option rule of the release (`estimate_msi` needs `estimate_tmb`...), checked on
  the sample's options completed with the release's defaults, as PCGR checks its parsed arguments.
- `ReleaseTable`: one release's options, rules, the flags the engine sets itself (paths, run-time
  switches) and the PCGR options no sample may set, with the reason.

Every check returns `Problem`s naming the option and the rule; a refused value is printed with
`vocabulary.shown()`, so nothing a sample carries reaches a terminal raw. String values are
checked against the safe vocabulary (`capillary.contract.vocabulary`) before anything else.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from capillary.contract import vocabulary
from capillary.contract.problems import Problem

OptionType = Literal["str", "int", "float", "bool"]
# Which allow-list of the safe vocabulary a string option's value is checked against.
Vocabulary = Literal["token", "info_tag", "info_tags", "sample_id"]
# PCGR's "no INFO tag given" value for its *_tag options.
NO_TAG = "_NA_"

_TYPE_NAMES = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false"}
_VOCABULARY: dict[str, Callable[[str], str | None]] = {
    "token": vocabulary.token_problem,
    "info_tag": vocabulary.info_tag_problem,
    "info_tags": vocabulary.info_tags_problem,
    "sample_id": vocabulary.sample_id_problem,
}


def release_label(program: str, release: str) -> str:
    """How messages name one release of one program: `PCGR 2.3.2`, `CPSR 2.2.5`."""
    return f"{program.upper()} {release}"


def number_text(value: float) -> str:
    """A bound or value as a message prints it: 1 not 1.0, 0.002 as written."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass(frozen=True)
class OptionSpec:
    """One option of one release, as a sample's TOML sets it and as the release's parser takes it."""

    name: str
    type: OptionType
    help: str
    # The release's flag; empty means `--<name>` (set once in __post_init__, never guessed later).
    flag: str = ""
    # PCGR's default at this release; None where PCGR has none (the option is then unset).
    default: Any = None
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    # Open bounds: PCGR's "(0, 1]" is minimum=0, min_exclusive=True, maximum=1.
    min_exclusive: bool = False
    max_exclusive: bool = False
    # A comma-separated list whose items come from `items`; `permutation`: each item exactly once.
    items: tuple[str, ...] | None = None
    permutation: bool = False
    # String options: the allow-list the value must match (every string reaching argv has one).
    vocabulary: Vocabulary | None = None
    # String options: the length range in characters (PCGR's sample id limits).
    length: tuple[int, int] | None = None
    required: bool = False

    def __post_init__(self) -> None:
        if not self.flag:
            object.__setattr__(self, "flag", f"--{self.name}")
        if self.type == "str" and self.vocabulary is None:
            object.__setattr__(self, "vocabulary", "token")

    # -- checks ------------------------------------------------------------------------------------

    def problems(self, value: Any, release: str, program: str = "pcgr") -> list[Problem]:
        """Every problem with `value` for this option, each naming the option, the rule and the
        program and release whose rule it is (`PCGR 2.3.2`, `CPSR 2.3.2`)."""
        where = f"option {self.name}"
        release = release_label(program, release)
        type_problem = self._type_problem(value)
        if type_problem is not None:
            return [Problem("option_type", type_problem, where)]
        if isinstance(value, str):
            return self._string_problems(value, release, where)
        problems: list[Problem] = []
        if self.choices is not None and value not in self.choices:
            problems.append(
                Problem(
                    "option_choice",
                    f"{self.name} must be one of {self._choices_text()} in {release} "
                    f"(found {vocabulary.shown(value)})",
                    where,
                )
            )
        if not isinstance(value, bool) and not self.in_range(value):
            problems.append(
                Problem(
                    "option_range",
                    f"{self.name} must be {self.range_text()} in {release} (found {vocabulary.shown(value)})",
                    where,
                )
            )
        return problems

    def _type_problem(self, value: Any) -> str | None:
        if self.type == "bool":
            ok = isinstance(value, bool)
        elif self.type == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif self.type == "float":
            if isinstance(value, float) and not math.isfinite(value):
                return f"{self.name} must be a finite number (found {value!r})"
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if ok:
            return None
        return f"{self.name} must be {_TYPE_NAMES[self.type]} (found {type(value).__name__})"

    def _string_problems(self, value: str, release: str, where: str) -> list[Problem]:
        check = _VOCABULARY[self.vocabulary or "token"]
        refused = check(value)
        if refused is not None:
            return [Problem("option_value", f"{self.name}: {refused}", where)]
        problems: list[Problem] = []
        if self.length is not None and not self.length[0] <= len(value) <= self.length[1]:
            problems.append(
                Problem(
                    "option_length",
                    f"{self.name} must be {self.length[0]} to {self.length[1]} characters long in "
                    f"{release} (found {len(value)})",
                    where,
                )
            )
        if self.choices is not None and value not in self.choices:
            problems.append(
                Problem(
                    "option_choice",
                    f"{self.name} must be one of {self._choices_text()} in {release} "
                    f"(found {vocabulary.shown(value)})",
                    where,
                )
            )
        if self.items is not None:
            problems.extend(self._item_problems(value, release, where))
        return problems

    def _item_problems(self, value: str, release: str, where: str) -> list[Problem]:
        assert self.items is not None
        given = value.split(",")
        unknown = [item for item in given if item not in self.items]
        if unknown:
            return [
                Problem(
                    "option_choice",
                    f"{self.name} items must come from {self.items_text()} in {release} "
                    f"(unknown: {', '.join(vocabulary.shown(i) for i in unknown)})",
                    where,
                )
            ]
        if self.permutation and sorted(given) != sorted(self.items):
            missing = [item for item in self.items if item not in given]
            repeated = sorted({item for item in given if given.count(item) > 1})
            detail = "; ".join(
                part
                for part in (
                    f"missing: {', '.join(missing)}" if missing else "",
                    f"repeated: {', '.join(repeated)}" if repeated else "",
                )
                if part
            )
            return [
                Problem(
                    "option_choice",
                    f"{self.name} must list each of {', '.join(self.items)} exactly once, in the "
                    f"order wanted ({release} checks all {len(self.items)}; {detail})",
                    where,
                )
            ]
        return []

    def in_range(self, value: float) -> bool:
        if self.minimum is not None and (
            value < self.minimum or (self.min_exclusive and value == self.minimum)
        ):
            return False
        return self.maximum is None or not (
            value > self.maximum or (self.max_exclusive and value == self.maximum)
        )

    def range_text(self) -> str:
        """The range as PCGR writes it: `within (0, 1]`, `>= 100`, `> 0`."""
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            left = "(" if self.min_exclusive else "["
            right = ")" if self.max_exclusive else "]"
            return f"within {left}{number_text(low)}, {number_text(high)}{right}"
        if low is not None:
            return f"{'>' if self.min_exclusive else '>='} {number_text(low)}"
        if high is not None:
            return f"{'<' if self.max_exclusive else '<='} {number_text(high)}"
        return "any number"

    def items_text(self) -> str:
        """The items as a message lists them: `0-43` for a run of whole numbers, else each one."""
        items = self.items or ()
        if len(items) > 3 and all(i.isdigit() for i in items):
            numbers = [int(i) for i in items]
            if numbers == list(range(numbers[0], numbers[0] + len(numbers))):
                return f"{numbers[0]}-{numbers[-1]}"
        return ", ".join(items)

    def _choices_text(self) -> str:
        return ", ".join(repr(c) for c in self.choices or ())

    # -- the command line ------------------------------------------------------------------------

    def argv(self, value: Any) -> list[str]:
        """The release's flag for `value`, formatted as its parser takes it: a switch for true and
        nothing for false, an integer as digits, a number without loss, a string as it is."""
        if self.type == "bool":
            return [self.flag] if value else []
        if self.type == "int":
            return [self.flag, str(int(value))]
        if self.type == "float":
            return [self.flag, str(value) if isinstance(value, int) else repr(float(value))]
        return [self.flag, str(value)]


@dataclass(frozen=True)
class Rule:
    """A cross-option rule of one release, read from its argument checks.

    `broken` gets the effective options (the sample's valid ones over the release's defaults) and
    returns the sentence saying how they break the rule, or None. The problem is reported against
    the first of `options` the sample set. `needs_cna`: PCGR checks this rule only when it is given a
    copy-number file (`--input_cna`), so Capillary does too.
    """

    options: tuple[str, ...]
    broken: Callable[[Mapping[str, Any]], str | None]
    needs_cna: bool = False


@dataclass(frozen=True)
class ReleaseTable:
    """One release of one program: its sample options, its rules and the flags the engine owns."""

    program: str
    release: str
    # Where the facts were read: the repository, tag and files.
    source: str
    options: Mapping[str, OptionSpec]
    rules: tuple[Rule, ...]
    # The flags the engine sets itself, by role: "vcf", "cna", "output", and "refdata" + "vep"
    # (2.x) or "refdata" alone (1.4's --pcgr_dir holds both).
    inputs: Mapping[str, str]
    # The release's options a sample may not set, each with the reason (paths, run-time switches,
    # secrets).
    not_sample_options: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return release_label(self.program, self.release)

    def defaults(self) -> dict[str, Any]:
        return {name: spec.default for name, spec in self.options.items() if spec.default is not None}

    def problems(self, mapping: Mapping[str, Any], *, cna: bool = False) -> list[Problem]:
        """Every problem with a sample's options for this release: options it does not have (the
        caller words those), bad values, missing required ones, broken cross-option rules."""
        problems: list[Problem] = []
        valid: dict[str, Any] = {}
        for name, value in mapping.items():
            spec = self.options.get(name)
            if spec is None:
                continue
            found = spec.problems(value, self.release, self.program)
            problems.extend(found)
            if not found:
                valid[name] = value
        for spec in self.options.values():
            if spec.required and spec.name not in mapping:
                allowed = f" (one of: {', '.join(spec.choices)})" if spec.choices else ""
                problems.append(Problem("option_missing", f"{spec.name} is required{allowed}"))
        effective = {**self.defaults(), **valid}
        for rule in self.rules:
            if rule.needs_cna and not cna:
                continue
            reason = rule.broken(effective)
            if reason is not None:
                # Reported against an option the sample set, the one it can change.
                named = next((name for name in rule.options if name in valid), rule.options[0])
                problems.append(Problem("option_conflict", f"{reason} ({self.label})", f"option {named}"))
        return problems

    def option_argv(self, options: Mapping[str, Any], skip: Iterable[str] = ()) -> list[str]:
        """The flags for a sample's (valid) options, in the order given, without `skip`."""
        leave_out = set(skip)
        argv: list[str] = []
        for name, value in options.items():
            if name not in leave_out:
                argv += self.options[name].argv(value)
        return argv


# -- short constructors the release tables are written with -------------------------------------


def switch(name: str, help: str, *, flag: str = "") -> OptionSpec:
    """A store_true flag: `true` passes it, `false` leaves it out (PCGR's default is off)."""
    return OptionSpec(name, "bool", help, flag=flag, default=False)


def integer(
    name: str,
    help: str,
    *,
    default: int | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
    choices: tuple[int, ...] | None = None,
    flag: str = "",
) -> OptionSpec:
    return OptionSpec(
        name, "int", help, flag=flag, default=default, minimum=minimum, maximum=maximum, choices=choices
    )


def number(
    name: str,
    help: str,
    *,
    default: float | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    min_exclusive: bool = False,
    max_exclusive: bool = False,
    flag: str = "",
) -> OptionSpec:
    return OptionSpec(
        name,
        "float",
        help,
        flag=flag,
        default=default,
        minimum=minimum,
        maximum=maximum,
        min_exclusive=min_exclusive,
        max_exclusive=max_exclusive,
    )


def choice(
    name: str, help: str, choices: tuple[str, ...], *, default: str | None = None, flag: str = ""
) -> OptionSpec:
    return OptionSpec(name, "str", help, flag=flag, default=default, choices=choices)


def info_tag(name: str, help: str, *, flag: str = "") -> OptionSpec:
    """A VCF INFO tag name; PCGR's default `_NA_` means none."""
    return OptionSpec(name, "str", help, flag=flag, default=NO_TAG, vocabulary="info_tag")


def item_list(
    name: str, help: str, items: tuple[str, ...], *, default: str, permutation: bool = False, flag: str = ""
) -> OptionSpec:
    return OptionSpec(name, "str", help, flag=flag, default=default, items=items, permutation=permutation)


def options(*specs: OptionSpec) -> dict[str, OptionSpec]:
    table = {spec.name: spec for spec in specs}
    if len(table) != len(specs):
        raise ValueError("an option table names an option twice")
    return table
