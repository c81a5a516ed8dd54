"""The kinds of cross-option rule PCGR's and CPSR's argument checks apply, as `Rule` factories.

Which rules a release has, with which options and thresholds, is written in that release's table;
these factories only say how each kind is checked and worded. Every rule reads the effective
options (the sample's over the release's defaults); an option PCGR leaves unset is absent.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from capillary.contract.pcgr_options.spec import NO_TAG, Rule, number_text


def _tag_set(options: Mapping[str, Any], tag: str) -> bool:
    return bool(options.get(tag, NO_TAG) != NO_TAG)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return number_text(value)
    return repr(value)


def needs_tag(option: str, tag: str) -> Rule:
    """A threshold on an INFO field needs the tag naming that field (`tumor_dp_min` -> `tumor_dp_tag`)."""

    def broken(o: Mapping[str, Any]) -> str | None:
        if o.get(option) is not None and not _tag_set(o, tag):
            return f"{option} needs {tag} (the VCF INFO tag PCGR reads that value from)"
        return None

    return Rule((option, tag), broken)


def needs_switch(option: str, needed: str) -> Rule:
    """A switch that only works with another one on (`estimate_msi` needs `estimate_tmb`)."""

    def broken(o: Mapping[str, Any]) -> str | None:
        if o.get(option) is True and o.get(needed) is not True:
            return f"{option} = true needs {needed} = true"
        return None

    return Rule((option, needed), broken)


def forbids_tag(switch: str, tag: str) -> Rule:
    """A switch that rules a tag out (`tumor_only` has no control sample, so no control tags)."""

    def broken(o: Mapping[str, Any]) -> str | None:
        if o.get(switch) is True and _tag_set(o, tag):
            return f"{switch} = true does not allow {tag} to be set"
        return None

    return Rule((tag, switch), broken)


def switch_needs_tag(condition: str, switch: str, tag: str) -> Rule:
    """With `condition` on, `switch` needs `tag` (tumor-only germline filters need the AF tag)."""

    def broken(o: Mapping[str, Any]) -> str | None:
        if o.get(condition) is True and o.get(switch) is True and not _tag_set(o, tag):
            return f"{switch} = true with {condition} = true needs {tag}"
        return None

    return Rule((switch, tag, condition), broken)


_WORDS = {"<": "below", "<=": "at most", ">": "above", ">=": "at least"}
_HOLDS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def compare(
    option: str,
    op: str,
    bound: str,
    *,
    when: tuple[str, tuple[Any, ...]] | None = None,
    also_set: tuple[str, ...] = (),
    only_above_zero: bool = False,
    needs_cna: bool = False,
) -> Rule:
    """`option <op> bound` when both are set (an allelic depth at most the depth, a gain
    threshold below the amplification one), and only while every option in `also_set` is set,
    `when[0]` has one of the values `when[1]` (the CNA threshold mode) and, with
    `only_above_zero`, `option` is above 0 (PCGR compares only then)."""
    holds = _HOLDS[op]

    def broken(o: Mapping[str, Any]) -> str | None:
        value, limit = o.get(option), o.get(bound)
        if value is None or limit is None or any(o.get(name) is None for name in also_set):
            return None
        if when is not None and o.get(when[0]) not in when[1]:
            return None
        if (only_above_zero and value <= 0) or holds(value, limit):
            return None
        return f"{option} ({_shown(value)}) must be {_WORDS[op]} {bound} ({_shown(limit)}){_while(when)}"

    return Rule((option, bound, *also_set) + ((when[0],) if when else ()), broken, needs_cna=needs_cna)


def set_together(option: str, needed: str, *, when: tuple[str, ...]) -> Rule:
    """With every option in `when` set, `option` needs `needed` set too (PCGR compares the two and
    fails on a missing one instead of reporting it)."""

    def broken(o: Mapping[str, Any]) -> str | None:
        if o.get(option) is None or o.get(needed) is not None:
            return None
        if all(o.get(name) is not None for name in when):
            return f"{option} with {' and '.join(when)} set needs {needed} as well"
        return None

    return Rule((option, needed, *when), broken)


def excludes_values(option: str, value: Any, other: str, values: tuple[Any, ...], why: str) -> Rule:
    """`option = value` rules out some values of `other` (sex and primary tumor site)."""

    def broken(o: Mapping[str, Any]) -> str | None:
        if o.get(option) == value and o.get(other) in values:
            return f"{other} = {_shown(o.get(other))} is not allowed with {option} = {_shown(value)} ({why})"
        return None

    return Rule((other, option), broken)


def within(option: str, low: float, high: float, *, needs_cna: bool = False, why: str = "") -> Rule:
    """A range PCGR checks only in some circumstances (tumor ploidy with a CNA file)."""

    def broken(o: Mapping[str, Any]) -> str | None:
        value = o.get(option)
        if value is None or low <= value <= high:
            return None
        return (
            f"{option} ({_shown(value)}) must be within [{number_text(low)}, {number_text(high)}]"
            f"{' ' + why if why else ''}"
        )

    return Rule((option,), broken, needs_cna=needs_cna)


def _while(when: tuple[str, tuple[Any, ...]] | None) -> str:
    if when is None:
        return ""
    return f" when {when[0]} is {' or '.join(repr(v) for v in when[1])}"


def item_alone(option: str, item: str, why: str) -> Rule:
    """In a comma-separated list, `item` may only stand alone (CPSR's exploratory panel 0 is not
    combined with the virtual panels)."""

    def broken(o: Mapping[str, Any]) -> str | None:
        value = o.get(option)
        if isinstance(value, str) and item in value.split(",") and value != item:
            return f"{option} {item!r} must stand alone ({why})"
        return None

    return Rule((option,), broken)
