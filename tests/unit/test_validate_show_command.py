"""`capillary validate --show-command`: the argv the worker would run, printed without running it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from capillary.cli import main
from capillary.release.catalogue import load_catalogue
from tests.support.samples import make_sample_tarball

WORKSPACE = "/srv/capillary/work/msg-XXXXXXXX"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    code = main(["validate", *args])
    captured = capsys.readouterr()
    out: Any = json.loads(captured.out) if "--json" in args and captured.out else captured.out
    return code, out, captured.err


def flag_value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_the_default_is_the_catalogues_current_release_with_the_workers_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a sample named like a key, with a CNA file
    tarball = make_sample_tarball(tmp_path, batch="b1", uuid="0a1b2c", cna=True)
    # WHEN its command is shown as JSON
    code, out, _ = run(capsys, "--json", "--show-command", str(tarball))
    # THEN it is the current release's command, with the worker's default layout
    current = load_catalogue().current.version
    assert code == 0 and out["release"] == current
    [command] = out["commands"]
    argv = command["argv"]
    assert command["engine"] == "pcgr"
    assert argv[0] == f"/opt/pcgr/{current}/envs/pcgr/bin/pcgr"
    assert flag_value(argv, "--input_vcf") == f"{WORKSPACE}/input/b1-0a1b2c-somatic/tumor1.vcf.gz"
    assert flag_value(argv, "--input_cna") == f"{WORKSPACE}/input/b1-0a1b2c-somatic/b1-0a1b2c-somatic.cna.tsv"
    assert flag_value(argv, "--refdata_dir") == "/srv/capillary/refdata/current/grch38"
    assert flag_value(argv, "--vep_dir") == "/srv/capillary/vep/current"
    assert flag_value(argv, "--output_dir") == f"{WORKSPACE}/out/b1-0a1b2c-somatic"
    assert flag_value(argv, "--sample_id") == "b1-0a1b2c-somatic"
    assert flag_value(argv, "--vep_n_forks") == "2"  # pcgr.threads' default
    assert out["placeholders"] == {"workspace": WORKSPACE}


def test_another_release_and_the_container_method(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tarball = make_sample_tarball(tmp_path, batch="b1", uuid="0a1b2c")
    code, out, _ = run(
        capsys,
        "--json",
        "--show-command",
        "--release",
        "1.4.1",
        "--method",
        "container",
        "--threads",
        "16",
        str(tarball),
    )
    assert code == 0
    argv = out["commands"][0]["argv"]
    image = load_catalogue().release("1.4.1").install.image_ref
    assert argv[:2] == ["podman", "run"] and "--user=UID:GID" in argv
    inner = argv[argv.index(image) + 1 :]
    assert inner[0] == "pcgr"
    assert flag_value(inner, "--pcgr_dir") == "/mnt/refdata" and "--vep_dir" not in inner
    assert flag_value(inner, "--vep_n_forks") == "4"  # 16 threads, capped to 1.4.1's 1-4
    assert "--estimate_msi_status" in inner
    assert out["placeholders"]["user"] == "UID:GID"


def test_a_file_not_named_like_a_sample_gets_a_placeholder_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tarball = make_sample_tarball(tmp_path, name="mine.tar.gz")
    code, out, _ = run(capsys, "--json", "--show-command", str(tarball))
    assert code == 0 and out["placeholders"]["sample"] == "batch-000000-somatic"
    assert flag_value(out["commands"][0]["argv"], "--output_dir").endswith("/out/batch-000000-somatic")


def test_the_text_form_is_one_quoted_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tarball = make_sample_tarball(tmp_path, batch="b1", uuid="0a1b2c")
    code, out, _ = run(capsys, "--show-command", str(tarball))
    assert code == 0 and len(out.splitlines()) == 1 and out.startswith("/opt/pcgr/")


@pytest.mark.parametrize(
    ("kwargs", "code", "needle"),
    [
        ({"options": {"cell_line": True, "tumor_only": True}}, "option_unavailable", "not available in PCGR"),
        ({"vcfs": 2}, "multiple_vcf", "exactly one VCF"),
    ],
)
def test_a_refused_sample_shows_no_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kwargs: dict[str, Any], code: str, needle: str
) -> None:
    tarball = make_sample_tarball(tmp_path, **kwargs)
    status, out, _ = run(capsys, "--json", "--show-command", str(tarball))
    assert status == 1 and out["ok"] is False and "commands" not in out
    assert [p["code"] for p in out["problems"]] == [code] and needle in out["problems"][0]["message"]


def test_a_sample_valid_for_an_older_release_is_judged_per_release(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tarball = make_sample_tarball(tmp_path, options={"cell_line": True, "tumor_only": True})
    assert run(capsys, str(tarball))[0] == 1
    assert run(capsys, "--release", "1.4.1", str(tarball))[0] == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--release", "9.9.9"], "no option table"), (["--threads", "0"], "--threads must be at least 1")],
)
def test_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    tarball = make_sample_tarball(tmp_path)
    code, _, err = run(capsys, "--show-command", *args, str(tarball))
    assert code == 2 and needle in err


def test_show_command_needs_a_tarball(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--show-command", "--key", "inputs/b1-0a1b2c-somatic.tar.gz")
    assert code == 2 and "needs a tarball" in err


# A germline sample's CPSR options: make_sample_tarball's PCGR defaults removed.
CPSR_OPTIONS: dict[str, Any] = {
    **dict.fromkeys(
        (
            "assay",
            "tumor_site",
            "tumor_purity",
            "tumor_ploidy",
            "tumor_dp_tag",
            "tumor_af_tag",
            "estimate_tmb",
            "estimate_msi",
        )
    ),
    "panel_id": "1,5",
    "gwas_findings": True,
}


def test_a_normal_sample_shows_the_cpsr_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a -normal sample with CPSR options
    tarball = make_sample_tarball(tmp_path, batch="b1", uuid="0a1b2c", kind="normal", options=CPSR_OPTIONS)
    # WHEN its command is shown
    code, out, _ = run(capsys, "--json", "--show-command", str(tarball))
    # THEN it is CPSR's, from the same install, bundle and VEP cache as PCGR's
    current = load_catalogue().current.version
    assert code == 0 and out["engine"] == "cpsr"
    [command] = out["commands"]
    argv = command["argv"]
    assert command["engine"] == "cpsr"
    assert argv[0] == f"/opt/pcgr/{current}/envs/pcgr/bin/cpsr"
    assert flag_value(argv, "--input_vcf") == f"{WORKSPACE}/input/b1-0a1b2c-normal/tumor1.vcf.gz"
    assert flag_value(argv, "--refdata_dir") == "/srv/capillary/refdata/current/grch38"
    assert flag_value(argv, "--vep_dir") == "/srv/capillary/vep/current"
    assert flag_value(argv, "--sample_id") == "b1-0a1b2c-normal"
    assert flag_value(argv, "--panel_id") == "1,5" and "--gwas_findings" in argv
    assert "--input_cna" not in argv


def test_a_normal_sample_on_1_4_1_runs_that_releases_cpsr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tarball = make_sample_tarball(tmp_path, batch="b1", uuid="0a1b2c", kind="normal", options=CPSR_OPTIONS)
    code, out, _ = run(
        capsys, "--json", "--show-command", "--release", "1.4.1", "--method", "container", str(tarball)
    )
    assert code == 0
    argv = out["commands"][0]["argv"]
    image = load_catalogue().release("1.4.1").install.image_ref
    inner = argv[argv.index(image) + 1 :]
    assert inner[0] == "cpsr"
    assert flag_value(inner, "--pcgr_dir") == "/mnt/refdata" and "--vep_dir" not in inner


def test_a_normal_sample_is_checked_against_cpsrs_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a -normal sample carrying PCGR's options and a copy-number file
    tarball = make_sample_tarball(tmp_path, batch="b1", uuid="0a1b2c", kind="normal", cna=True)
    # WHEN it is validated
    code, out, _ = run(capsys, "--json", str(tarball))
    # THEN CPSR's table refuses each PCGR option, asks for a panel and refuses the CNA file
    assert code == 1 and out["engine"] == "cpsr"
    codes = [p["code"] for p in out["problems"]]
    assert codes.count("option_unknown") == 8
    assert "option_missing" in codes and "cna_unused" in codes
    # AND --engine pcgr judges it as PCGR would (a deployment giving normal samples to PCGR)
    code, out, _ = run(capsys, "--json", "--engine", "pcgr", str(tarball))
    assert code == 0 and out["engine"] == "pcgr"
