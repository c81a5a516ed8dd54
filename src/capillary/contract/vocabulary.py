"""The one safe vocabulary: what a string from a sample may look like before it reaches a command.

A sample tarball comes from outside the centre's control, and PCGR 2.x interpolates several of
its values (the sample id, INFO tag names, file names) into command lines it runs through a
shell. So every string a sample carries onto a command line is checked here, against an
allow-list that holds no shell metacharacter, no path separator and no whitespace: before upload
(`capillary validate`, `capillary submit`) and again on the worker. The engines then pass argv
lists only. Each check returns the reason a value is refused, or None; `shown()` prints a refused
value safely (escaped, bounded), so a newline or an escape sequence never reaches a terminal raw.
"""

from __future__ import annotations

import re

# A sample id: letters, digits, '.', '_', '-'; starts with a letter or digit. Its length range is
# the release's own (PCGR's pcgr_vars.SAMPLE_ID_MIN_LENGTH/MAX_LENGTH), kept in the option tables.
SAMPLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# A VCF INFO key as the VCF 4.x specification defines it.
INFO_TAG = re.compile(r"[A-Za-z_][0-9A-Za-z_.]*")
# One component of a member path in a sample tarball.
MEMBER_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
MEMBER_MAX_LENGTH = 255
MEMBER_MAX_DEPTH = 4
# Any other string option value that reaches argv (choices and lists of names): no quoting needed.
TOKEN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._,+-]*")
TOKEN_MAX_LENGTH = 200
# A number as the engines write one onto argv: digits, an optional sign, fraction and exponent.
NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?")
# A flag: `--` and a lowercase name.
FLAG = re.compile(r"--[a-z][a-z0-9_]*")
_SHOWN_MAX = 80


def shown(value: object) -> str:
    """`value` as a message may print it: Python's escaped repr, at most 80 characters."""
    text = repr(value)
    return text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 1] + "…"


def sample_id_problem(value: str) -> str | None:
    if not SAMPLE_ID.fullmatch(value):
        return (
            f"{shown(value)} may hold only letters, digits, '.', '_' and '-', starting with a "
            "letter or digit (it becomes part of file names and command lines)"
        )
    return None


def info_tag_problem(value: str) -> str | None:
    if not INFO_TAG.fullmatch(value):
        return f"{shown(value)} is not a VCF INFO tag name ([A-Za-z_][0-9A-Za-z_.]*)"
    return None


def info_tags_problem(value: str) -> str | None:
    """A comma-separated list of INFO tags (PCGR's retained_info_tags)."""
    for tag in value.split(","):
        problem = info_tag_problem(tag)
        if problem is not None:
            return f"item {problem}"
    return None


def token_problem(value: str) -> str | None:
    if len(value) > TOKEN_MAX_LENGTH:
        return f"is {len(value)} characters long; the limit is {TOKEN_MAX_LENGTH}"
    if not TOKEN.fullmatch(value):
        return (
            f"{shown(value)} may hold only letters, digits and '.', '_', ',', '+', '-' "
            "(no spaces, quotes, slashes or shell characters)"
        )
    return None


def member_problem(name: str) -> str | None:
    """A member path of a sample tarball: safe components joined by '/', not too deep or long."""
    if len(name) > MEMBER_MAX_LENGTH:
        return f"name is {len(name)} characters long; the limit is {MEMBER_MAX_LENGTH}"
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if len(parts) > MEMBER_MAX_DEPTH:
        return f"is {len(parts)} directories deep; the limit is {MEMBER_MAX_DEPTH}"
    for part in parts:
        if not MEMBER_COMPONENT.fullmatch(part):
            return (
                f"name {shown(name)} may hold only letters, digits, '.', '_', '+' and '-' in each "
                "part, each part starting with a letter or digit (no spaces, no shell characters)"
            )
    return None


def argument_problem(value: str) -> str | None:
    """One argument an engine puts on a command line, other than its own paths: a flag, a number
    or a token. The engines check every such argument last, so nothing a sample carries reaches
    argv unchecked, whatever a table or a formatter gets wrong."""
    if FLAG.fullmatch(value) or NUMBER.fullmatch(value) or token_problem(value) is None:
        return None
    return f"{shown(value)} is not a flag, a number or a plain token"
