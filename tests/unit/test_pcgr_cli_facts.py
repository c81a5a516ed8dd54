"""Every command line the pcgr and cpsr engines build is one its release's parser and checks accept.

The parser is built from the option tables (`tests/support/pcgr_facts.py`: argparse as PCGR's
`cli()` and CPSR's `get_args()` declare it, the table's ranges and rules as the argument checker
applies them). For every program and release, every option alone at its boundary values and every
pair of options: when the validator accepts the set, the engine's argv parses and passes the
checks; when it refuses, the reason names the option and the rule, and the engine builds nothing.
"""

from __future__ import annotations

from collections import Counter

import pytest

from capillary.contract import vocabulary
from capillary.contract.pcgr_options import TABLES, table, validate_options
from capillary.worker.engines import EngineInputError
from capillary.worker.engines.pcgr import threaded_options
from tests.support.pcgr_facts import (
    PATHS,
    ParseError,
    engine_args,
    fact_checks,
    fact_parser,
    option_cases,
    refused_cases,
)

ALL_OPTIONS = {name for t in TABLES.values() for name in t.options}
COUNTS: Counter[str] = Counter()
# Every (program, release) with a table: PCGR's and CPSR's at each release of the catalogue.
TABLE_KEYS = list(TABLES)
# Fewer options, fewer pairs: CPSR's tables have about a third of PCGR's options.
MIN_BUILT = {"pcgr": 500, "cpsr": 150}


@pytest.mark.parametrize(("program", "release"), TABLE_KEYS)
def test_every_accepted_option_set_builds_a_command_its_release_accepts(program: str, release: str) -> None:
    # GIVEN the release's table and the parser built from it
    spec_table = table(release, program)
    parser = fact_parser(spec_table)
    seen: set[str] = set()
    built = accepted = refused = 0
    for case in option_cases(spec_table):
        # WHEN the validator judges the option set (threads applied, as the engine does)
        options = threaded_options(case.options, release, threads=64, program=program)
        problems = validate_options(options, release, cna=case.cna, program=program)
        if problems:
            # THEN a refusal names an option of the set, and the engine builds nothing
            refused += 1
            assert all(p.member and p.member.removeprefix("option ") in options for p in problems), case
            with pytest.raises(EngineInputError):
                engine_args(spec_table, options, cna=case.cna)
            continue
        # THEN the engine's argv parses with the release's parser and passes its checks
        argv = engine_args(spec_table, options, cna=case.cna)
        built += 1
        try:
            namespace = parser.parse_args(argv)
        except ParseError as exc:
            pytest.fail(f"{spec_table.label} {case.label}: {exc}\n{argv}")
        assert fact_checks(spec_table, namespace) == [], (case.label, argv)
        accepted += 1
        seen.update(name for name in options if spec_table.options[name].argv(options[name]))
    COUNTS[f"{spec_table.label} built"] += built
    COUNTS[f"{spec_table.label} accepted"] += accepted
    # AND every option of the table reached a command line at least once
    assert seen == set(spec_table.options)
    assert built == accepted and built > MIN_BUILT[program] and refused < built


@pytest.mark.parametrize(("program", "release"), TABLE_KEYS)
def test_everything_else_is_refused_naming_the_option_and_the_rule(program: str, release: str) -> None:
    spec_table = table(release, program)
    for case, name in refused_cases(spec_table, ALL_OPTIONS):
        # WHEN a value outside the release's facts, an option it lacks or a broken rule is validated
        problems = validate_options(case.options, release, cna=case.cna, program=program)
        # THEN it is refused, and the reason names the option (and, for ranges, the release)
        assert problems, case.label
        members = {p.member for p in problems}
        if name:
            assert f"option {name}" in members or any(name in str(p) for p in problems), (case, problems)
        else:
            assert {p.code for p in problems} == {"option_conflict"}, (case, problems)
            named = case.options | _tags()
            assert all(p.member and p.member.removeprefix("option ") in named for p in problems)
        for problem in problems:
            assert problem.code.startswith("option_")
            if problem.code in ("option_range", "option_choice", "option_length", "option_conflict"):
                assert spec_table.label in problem.message, problem


def _tags() -> dict[str, object]:
    # A rule may be reported against the tag it asks for (tumor_dp_min needs tumor_dp_tag).
    return dict.fromkeys(("tumor_dp_tag", "tumor_af_tag", "control_dp_tag", "control_af_tag", "estimate_tmb"))


@pytest.mark.parametrize(("program", "release"), TABLE_KEYS)
def test_no_option_value_reaches_argv_unchecked(program: str, release: str) -> None:
    # Every argument that is not one of the engine's paths is a flag, a number or a plain token.
    spec_table = table(release, program)
    own_paths = set(PATHS.values())
    for case in option_cases(spec_table):
        if validate_options(case.options, release, cna=case.cna, program=program):
            continue
        for arg in engine_args(spec_table, case.options, cna=case.cna):
            if arg not in own_paths:
                assert vocabulary.argument_problem(arg) is None, (case.label, arg)


@pytest.mark.parametrize(
    ("program", "release", "threads", "forks", "procs"),
    [
        ("pcgr", "2.3.2", 64, 8, 15),
        ("pcgr", "2.3.2", 1, 1, 1),
        ("pcgr", "2.2.5", 1, 2, 1),
        ("pcgr", "2.2.5", 12, 8, 12),
        ("pcgr", "1.4.1", 16, 4, 15),
        ("cpsr", "2.3.2", 1, 1, 1),
        ("cpsr", "2.2.5", 1, 2, 1),
        ("cpsr", "1.4.1", 16, 4, 15),
    ],
)
def test_threads_are_capped_to_the_releases_range(
    program: str, release: str, threads: int, forks: int, procs: int
) -> None:
    # GIVEN a worker with `threads` threads and a sample that sets neither option
    base = {"genome_assembly": "grch38", **({"panel_id": "0"} if program == "cpsr" else {})}
    options = threaded_options(base, release, threads, program=program)
    # THEN VEP's forks and vcfanno's processes stay within what the release accepts
    assert options["vep_n_forks"] == forks and options["vcfanno_n_proc"] == procs
    assert validate_options(options, release, program=program) == []


def test_a_sample_that_sets_forks_keeps_them() -> None:
    assert threaded_options({"vep_n_forks": 3}, "2.3.2", 64)["vep_n_forks"] == 3
