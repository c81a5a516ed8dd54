"""A PCGR or CPSR parser built from the option tables, and the option sets the engines are tested with.

`fact_parser(table)` is an argparse parser constructed from one program's release table the way
PCGR's `cli()` (CPSR's `get_args()`) declares its arguments (flags, types, choices, defaults,
required ones, store_true switches), and `fact_checks(table, namespace)` applies the table's
ranges and rules to what it parsed, as the argument checker applies its own to its namespace.
Every helper works from the table alone, so one module serves both programs. A command line the engine
builds must get through both: that catches a flag the release lacks, a float where it wants an
integer, a switch given a value, a rule broken by the engine's own additions (threads).

`option_cases(table)` yields, per release, every option alone (on the options the program
requires, `base_options`) at its boundary values (with the
companions its rules ask for) and every pair of options, plus the values just outside each range,
so a test can check both halves: what the validator accepts, the parser accepts; what it refuses,
it refuses naming the option.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from capillary.contract.pcgr_options import NO_TAG, OptionSpec, ReleaseTable, validate_options
from capillary.worker.engines.pcgr import build_args

VCF = "/w/input/s/tumor.vcf.gz"
CNA = "/w/input/s/s.cna.tsv"
PATHS = {"vcf": VCF, "cna": CNA, "refdata": "/ref/grch38", "vep": "/vep", "output": "/w/out/s"}

# Values that satisfy the rules asking for a companion option (a tag, a switch).
COMPANIONS: dict[str, Any] = {
    "tumor_dp_tag": "TDP",
    "tumor_af_tag": "TAF",
    "control_dp_tag": "NDP",
    "control_af_tag": "NAF",
    "estimate_tmb": True,
    "tumor_only": True,
}


class ParseError(Exception):
    """The fact parser refused a command line (argparse would exit)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise ParseError(message)


_TYPES = {"int": int, "float": float, "str": str}


def fact_parser(table: ReleaseTable) -> argparse.ArgumentParser:
    """The program's command line at `table.release`, built from the table alone."""
    parser = _Parser(prog=f"{table.program}-{table.release}", add_help=False, allow_abbrev=False)
    for role, flag in table.inputs.items():
        parser.add_argument(flag, dest=f"path_{role}", required=role != "cna")
    for spec in table.options.values():
        if spec.type == "bool":
            parser.add_argument(spec.flag, dest=spec.name, action="store_true")
            continue
        parser.add_argument(
            spec.flag,
            dest=spec.name,
            type=_TYPES[spec.type],
            default=spec.default,
            choices=spec.choices,
            required=spec.required or spec.name == "sample_id",
        )
    return parser


def fact_checks(table: ReleaseTable, namespace: argparse.Namespace) -> list[str]:
    """What the release's argument checks say about a parsed command line: each option's range,
    choices, items and vocabulary, then every rule on the parsed values."""
    parsed = {name: getattr(namespace, name) for name in table.options}
    problems = [
        str(problem)
        for name, value in parsed.items()
        if value is not None
        for problem in table.options[name].problems(value, table.release, table.program)
    ]
    has_cna = getattr(namespace, "path_cna", None) is not None
    for rule in table.rules:
        if rule.needs_cna and not has_cna:
            continue
        reason = rule.broken({k: v for k, v in parsed.items() if v is not None})
        if reason is not None:
            problems.append(reason)
    return problems


def engine_args(table: ReleaseTable, options: Mapping[str, Any], *, cna: bool) -> list[str]:
    """The engine's arguments for `options` (raises EngineInputError when it refuses)."""
    return build_args(
        release=table.release,
        options=options,
        vcf=PATHS["vcf"],
        cna=PATHS["cna"] if cna else None,
        output_dir=PATHS["output"],
        refdata_dir=PATHS["refdata"],
        vep_dir=PATHS["vep"],
        sample_id="b1-0a1b2c-somatic",
        program=table.program,
    )


def base_options(table: ReleaseTable) -> dict[str, Any]:
    """What every case starts from: genome_assembly and each other option the program requires
    (CPSR's panel_id) at its first valid value."""
    base: dict[str, Any] = {"genome_assembly": "grch38"}
    for spec in table.options.values():
        if spec.required and spec.name not in base:
            base[spec.name] = spec.items[0] if spec.items else valid_values(spec)[0]
    return base


def cna_choices(table: ReleaseTable) -> tuple[bool, ...]:
    """With and without a copy-number file, for a program that takes one (CPSR takes none)."""
    return (False, True) if "cna" in table.inputs else (False,)


# -- the option sets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    label: str
    options: dict[str, Any]
    cna: bool


def valid_values(spec: OptionSpec) -> list[Any]:
    """Values at and inside the option's boundaries, each of which the option alone may take."""
    if spec.type == "bool":
        return [True, False]
    if spec.choices is not None:
        return list(spec.choices)
    if spec.vocabulary == "sample_id":
        low, high = spec.length or (3, 35)
        return ["x" * low, "P" * high, "PT-0042_T1.b"]
    if spec.vocabulary == "info_tag":
        return ["TDP", "_CUSTOM.tag", NO_TAG]
    if spec.vocabulary == "info_tags":
        return ["TDP,TAF", "None"]
    if spec.items is not None:
        if spec.permutation:
            return [",".join(spec.items), ",".join(reversed(spec.items))]
        return [",".join(spec.items), spec.items[0], ",".join(spec.items[1:]), ",".join(spec.items[::-1])]
    return _numbers(spec)


def _numbers(spec: OptionSpec) -> list[Any]:
    integer = spec.type == "int"
    step = 1 if integer else 0.001
    low, high = spec.minimum, spec.maximum
    values: list[Any] = []
    if low is not None:
        values.append(low + step if spec.min_exclusive else low)
    if high is not None:
        values.append(high - step if spec.max_exclusive else high)
    if low is not None and high is not None:
        values.append((low + high) // 2 if integer else (low + high) / 2)
    elif low is not None:
        values.append(low + 100 * step if integer else low + 10)
    elif high is not None:
        values.append(high - 100 * step if integer else high - 10)
    if spec.default is not None:
        values.append(spec.default)
    cast = int if integer else float
    # Floats that are whole numbers go in as TOML integers too (a float option takes both).
    shaped = [cast(v) for v in values]
    if not integer:
        shaped += [int(v) for v in values if float(v).is_integer()]
    return list(dict.fromkeys(shaped))


def invalid_values(spec: OptionSpec) -> list[Any]:
    """Values the release refuses: just outside each bound, the wrong type, non-finite numbers,
    unsafe strings, unknown choices."""
    if spec.type == "bool":
        return ["yes", 1]
    if spec.type == "str":
        bad: list[Any] = ["a;b", "$(id)", "x y", "../x", "-rf", 7]
        if spec.choices is not None or spec.items is not None:
            bad.append("bogus")
        if spec.length is not None:
            bad += ["x" * (spec.length[0] - 1), "x" * (spec.length[1] + 1)]
        if spec.permutation and spec.items:
            bad += [spec.items[0], ",".join([*spec.items, spec.items[0]])]
        return bad
    values: list[Any] = ["1", True]
    step = 1 if spec.type == "int" else 0.001
    if spec.minimum is not None:
        values.append(spec.minimum if spec.min_exclusive else spec.minimum - step)
    if spec.maximum is not None:
        values.append(spec.maximum if spec.max_exclusive else spec.maximum + step)
    if spec.type == "int":
        values = [int(v) if isinstance(v, float) else v for v in values]
        values.append(2.5)
    else:
        values += [float("nan"), float("inf")]
    if spec.choices is not None:
        values.append(max(int(c) for c in spec.choices) + 1)
    return values


def _with_companions(
    table: ReleaseTable, options: dict[str, Any], cna: bool
) -> tuple[dict[str, Any], list[Any]]:
    """`options` plus what the rules they break ask for, when a companion satisfies them."""
    first = validate_options(options, table.release, cna=cna, program=table.program)
    current = dict(options)
    for _ in range(3):
        problems = validate_options(current, table.release, cna=cna, program=table.program)
        if not problems or any(p.code != "option_conflict" for p in problems):
            break
        added = False
        for rule in table.rules:
            for name in rule.options:
                if name in COMPANIONS and name in table.options and name not in current:
                    trial = {**current, name: COMPANIONS[name]}
                    trial_problems = validate_options(trial, table.release, cna=cna, program=table.program)
                    if len(trial_problems) < len(problems):
                        current, added = trial, True
                        break
        if not added:
            break
    return current, first


def option_cases(table: ReleaseTable) -> Iterator[Case]:
    """Every option alone at each valid value, with and without a CNA file (where the program
    takes one); every pair of options (a third of them with a CNA file); all options at once."""
    assembly = base_options(table)
    takes_cna = "cna" in table.inputs
    yield Case("baseline", dict(assembly), False)
    yield Case("baseline grch37 cna", {**assembly, "genome_assembly": "grch37"}, takes_cna)
    singles: dict[str, list[dict[str, Any]]] = {}
    for spec in table.options.values():
        if spec.name == "genome_assembly":
            continue
        for value in valid_values(spec):
            for cna in cna_choices(table):
                options, _ = _with_companions(table, {**assembly, spec.name: value}, cna)
                yield Case(f"{spec.name}={value!r}{' cna' if cna else ''}", options, cna)
                if not cna:
                    singles.setdefault(spec.name, []).append(options)
    names = sorted(singles)
    for index, (left, right) in enumerate(itertools.combinations(names, 2)):
        # One end of each, alternating, so both ends of every option meet the others.
        a, b = (singles[left][0], singles[right][-1]) if index % 2 else (singles[left][-1], singles[right][0])
        yield Case(f"{left}+{right}", {**a, **b}, takes_cna and index % 3 == 0)
    everything = {**assembly}
    for name in names:
        everything.update(singles[name][0])
    yield Case("every option at its first value", everything, False)
    yield Case("every option at its first value, cna", everything, takes_cna)


def refused_cases(table: ReleaseTable, other_options: set[str]) -> Iterator[tuple[Case, str]]:
    """Option sets the release refuses, each with the option the refusal must name: values
    outside each option's range or type, options of other releases only, rules broken alone."""
    assembly = base_options(table)
    for spec in table.options.values():
        for value in invalid_values(spec):
            yield Case(f"{spec.name}={value!r}", {**assembly, spec.name: value}, False), spec.name
    for name in sorted(other_options - set(table.options)):
        yield Case(f"{name} (not in {table.label})", {**assembly, name: 1}, False), name
    for name in sorted(table.not_sample_options):
        yield Case(f"{name} (engine-owned)", {**assembly, name: "x"}, False), name
    for spec in table.options.values():
        for value in valid_values(spec):
            for cna in cna_choices(table):
                options = {**assembly, spec.name: value}
                _, first = _with_companions(table, options, cna)
                if first:
                    yield Case(f"{spec.name}={value!r} alone{' cna' if cna else ''}", options, cna), ""


# -- the options table of docs/sample-contract.md ----------------------------------------------------

DOC_BEGIN = "<!-- options table: generated from the option tables by tests/support/pcgr_facts.py -->"
DOC_END = "<!-- end of options table -->"


def doc_markers(program: str = "pcgr") -> tuple[str, str]:
    """Where `options_markdown(program)` sits in docs/sample-contract.md."""
    if program == "pcgr":
        return DOC_BEGIN, DOC_END
    return DOC_BEGIN.replace("options table", f"{program} options table"), DOC_END.replace(
        "options table", f"{program} options table"
    )


def _cell(spec: OptionSpec | None) -> str:
    if spec is None:
        return "—"
    if spec.type == "bool":
        text = "switch"
    elif spec.choices is not None:
        text = " \\| ".join(str(c) for c in spec.choices)
    elif spec.items is not None:
        if spec.permutation:
            return f"all {len(spec.items)} of {', '.join(spec.items)}, each once"
        text = "any of " + spec.items_text()
    elif spec.vocabulary == "sample_id" and spec.length:
        text = f"{spec.length[0]}-{spec.length[1]} characters"
    elif spec.vocabulary in ("info_tag", "info_tags"):
        text = "INFO tag" if spec.vocabulary == "info_tag" else "INFO tags, comma-separated"
    elif spec.minimum is not None or spec.maximum is not None:
        text = spec.range_text().removeprefix("within ")
    else:
        text = spec.type
    if spec.default not in (None, False):
        text += f" ({spec.default})"
    if spec.flag != f"--{spec.name}":
        text += f", `{spec.flag}`"
    return text


def options_markdown(program: str = "pcgr") -> str:
    """The table of every option of `program` and what each release accepts, as
    docs/sample-contract.md has it."""
    from capillary.contract.pcgr_options import releases, table

    tables = [table(release, program) for release in releases(program)]
    names: list[str] = []
    for spec_table in tables:
        names += [name for name in spec_table.options if name not in names]
    lines = [
        "| option | type | " + " | ".join(t.label for t in tables) + " |",
        "|---|---|" + "---|" * len(tables),
    ]
    for name in names:
        specs = [t.options.get(name) for t in tables]
        kind = next(s.type for s in specs if s is not None)
        lines.append(f"| `{name}` | {kind} | " + " | ".join(_cell(s) for s in specs) + " |")
    begin, end = doc_markers(program)
    return "\n".join([begin, *lines, end])
