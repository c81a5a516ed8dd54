"""The safe vocabulary refuses every shell metacharacter, separator and space, and names the value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capillary.contract import vocabulary as v

SHELL = [";", "$(", "${IFS}", "`", "|", "&", ">", "<", "'", '"', "\\", " ", "\t", "\n", "*", "?", "~", "#"]


@pytest.mark.parametrize("bad", [*SHELL, "/"])
def test_every_check_refuses_shell_and_path_characters(bad: str) -> None:
    # GIVEN a plausible value with one hostile part WHEN each check reads it THEN each refuses it
    value = f"tumor{bad}x"
    assert v.sample_id_problem(value) is not None
    assert v.info_tag_problem(value) is not None
    assert v.token_problem(value) is not None
    assert v.info_tags_problem(f"AF,{value}") is not None
    if bad != "/":
        assert v.member_problem(f"sample/{value}.vcf.gz") is not None


@pytest.mark.parametrize("value", ["", "-rf", ".hidden", "..", "_under"])
def test_a_value_must_start_with_a_letter_or_digit(value: str) -> None:
    # "-rf" would read as a flag, "." and ".." as directories
    assert v.sample_id_problem(value) is not None
    assert v.member_problem(f"{value}/x.vcf.gz") is not None or value == ""


def test_plain_values_pass() -> None:
    assert v.sample_id_problem("COLO829-T_1.b") is None
    assert v.info_tags_problem("AF,DP,_CUSTOM.tag") is None
    assert v.token_problem("mane_select,canonical") is None
    assert v.member_problem("sample/tumor.vcf.gz") is None


def test_members_cannot_climb_or_nest_deeply() -> None:
    assert v.member_problem("../x.vcf.gz") is not None
    assert v.member_problem("a/b/c/d/e/x.vcf.gz") is not None


def test_a_refused_value_is_shown_escaped_and_bounded() -> None:
    problem = v.member_problem("tumor\n\x1b[2J.vcf.gz")
    assert problem is not None
    assert "\n" not in problem and "\x1b" not in problem
    assert "\\n" in problem
    assert len(v.shown("x" * 10_000)) <= 80


@given(st.text())
def test_nothing_accepted_holds_a_shell_character_a_separator_or_a_space(text: str) -> None:
    forbidden = set(";&|$`\\\"'<>(){}[]*?!#~/ \t\n\r\x00=")
    for check in (v.sample_id_problem, v.info_tag_problem, v.token_problem):
        if check(text) is None:
            assert not (set(text) & forbidden), (check.__name__, text)
            assert text and text[0] not in "-."


@pytest.mark.parametrize("arg", ["--vep_n_forks", "8", "-0.8", "0.002", "1e-05", "TDP,TAF", "grch38", "_NA_"])
def test_flags_numbers_and_tokens_may_go_onto_a_command_line(arg: str) -> None:
    assert v.argument_problem(arg) is None


@pytest.mark.parametrize(
    "arg", ["-rf", "--x;y", "1;2", "a b", "/etc/passwd", "$(id)", "", "--", "-", "nan\n"]
)
def test_anything_else_is_refused_as_an_argument(arg: str) -> None:
    problem = v.argument_problem(arg)
    assert problem is not None and "\n" not in problem


@given(st.text())
def test_an_accepted_argument_holds_no_shell_character_separator_or_space(text: str) -> None:
    if v.argument_problem(text) is None:
        assert not set(text) & set(";&|$`\\\"'<>(){}[]*?!#~/ \t\n\r\x00=")
