"""The hostile corpus (`tests/data/hostile/`): every case through `capillary validate`, verdict checked.

GIVEN a tarball built from the case (a synthetic VCF, the case's TOML file, its member names)
WHEN `capillary validate --json --show-command` judges it
THEN a refused case exits 1 naming the option or member and the rule, and an accepted one prints a
command line that carries no shell metacharacter, path separator or space outside the engine's
own paths. The README lists the same cases with the same verdicts.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from capillary.cli import main
from capillary.contract import vocabulary
from tests.support.samples import make_sample_tarball, make_vcf

CORPUS = Path(__file__).resolve().parents[1] / "data" / "hostile"
CASES: list[dict[str, Any]] = tomllib.loads((CORPUS / "cases.toml").read_text())["case"]
SAMPLE = "hostile-0a1b2c-somatic"
FORBIDDEN = set(";&|$`\\\"'<>(){}[]*?!#~ \t\n\r\x00=")
# The engine's own path roots: the worker's data root, the conda prefix, the container mounts.
OWN_ROOTS = ("/srv/capillary/", "/opt/pcgr/", "/mnt/")


def build(case: dict[str, Any], tmp_path: Path) -> Path:
    toml_text = (CORPUS / "tomls" / case["toml"]).read_bytes().decode("utf-8")
    member = case.get("member")
    if member is None:
        return make_sample_tarball(tmp_path, batch="hostile", uuid="0a1b2c", toml_text=toml_text)
    name = member.format(sample=SAMPLE)
    if case["member_kind"] == "vcf":
        vcf = make_vcf(tmp_path / "scratch" / "t.vcf.gz")
        return make_sample_tarball(
            tmp_path, batch="hostile", uuid="0a1b2c", vcfs=0, toml_text=toml_text, extra_members={name: vcf}
        )
    cna = "Chromosome\tStart\tEnd\tnMajor\tnMinor\nchr7\t55019017\t55211628\t6\t1\n"
    return make_sample_tarball(
        tmp_path, batch="hostile", uuid="0a1b2c", toml_text=toml_text, extra_members={name: cna}
    )


def validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    code = main(["validate", *args])
    out = capsys.readouterr().out
    return code, json.loads(out) if "--json" in args else out


def release_args(case: dict[str, Any]) -> list[str]:
    return ["--release", case["release"]] if "release" in case else []


def assert_safe_argument(arg: str) -> None:
    if arg.startswith(OWN_ROOTS):
        # One of the engine's paths; the part under the sample's input is a member name.
        for root in ("/mnt/input/", "/srv/capillary/work/msg-XXXXXXXX/input/"):
            if arg.startswith(root):
                assert vocabulary.member_problem(arg.removeprefix(root)) is None, arg
        assert not set(arg) & FORBIDDEN, arg
        return
    assert vocabulary.argument_problem(arg) is None, arg
    assert not set(arg) & (FORBIDDEN | {"/"}), arg


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_each_case_gets_its_verdict(
    case: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the case's tarball
    tarball = build(case, tmp_path)
    # WHEN capillary validate judges it and shows the command the worker would run
    code, out = validate(capsys, "--json", "--show-command", *release_args(case), str(tarball))
    if case["verdict"] == "accepted":
        # THEN it exits 0 and every argument is safe
        assert code == 0, out
        argv = out["commands"][0]["argv"]
        assert out["commands"][0]["engine"] == "pcgr" and argv
        for arg in argv:
            assert_safe_argument(arg)
        return
    # THEN it exits 1 with the refusal named
    assert code == 1 and out["ok"] is False, out
    problems = out["problems"]
    if "code" in case:
        assert case["code"] in {p["code"] for p in problems}, problems
    said = [f"{p['member'] or ''} {p['message']}" for p in problems]
    assert any(case["mentions"] in text for text in said), said
    for problem in problems:
        assert "\n" not in problem["message"] and "\x1b" not in problem["message"], problem
    if "member" not in case:
        # AND plain `capillary validate` refuses it the same way, one printable line per problem
        plain_code, plain = validate(capsys, "--json", *release_args(case), str(tarball))
        assert plain_code == 1 and case["code"] in {p["code"] for p in plain["problems"]}
        text_code, text = validate(capsys, *release_args(case), str(tarball))
        assert text_code == 1 and len(text.splitlines()) == 1 + len(plain["problems"]), text


def test_the_readme_lists_every_case_with_its_verdict() -> None:
    readme = (CORPUS / "README.md").read_text()
    rows = {
        line.split("|")[1].strip().strip("`"): line for line in readme.splitlines() if line.startswith("| `")
    }
    assert set(rows) == {case["name"] for case in CASES}
    for case in CASES:
        verdict = case["verdict"] + (f" (`{case['code']}`)" if "code" in case else "")
        assert rows[case["name"]].rstrip().endswith(f"| {verdict} |"), case["name"]
    for case in CASES:
        assert (CORPUS / "tomls" / case["toml"]).is_file()
