"""Every bad use of the `capillary` CLI ends in one line naming the input and the reason, a non-zero
exit status, and no traceback: as a user meets them, in a subprocess, against the local endpoint.

Each case is (what is wrong, the command line, environment changes, what the line must say). A
case that needs AWS gets the `aws` fixture's endpoint; "no region" and "no credentials" take the
variables away.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from capillary.local.endpoint import LocalAWS
from tests.support.samples import make_sample_tarball, options_toml, vcf_text

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NO_AWS = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE")


@dataclass
class Case:
    name: str
    argv: list[str]
    says: tuple[str, ...]
    env: dict[str, str | None] = field(default_factory=dict)
    code: int | None = None  # None: any non-zero status
    lines: int | None = 1  # how many stderr lines (None: the first names the problem, more may follow)
    unprivileged: bool = False


# Root reads a file whatever its mode: an unreadable file is one to a root without the capabilities
# that bypass file permissions (setpriv, util-linux).
_NO_DAC = [
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
]


def _run(
    argv: list[str], env: dict[str, str | None], cwd: Path, unprivileged: bool = False
) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ)
    for name, value in env.items():
        if value is None:
            full.pop(name, None)
        else:
            full[name] = value
    prefix = _NO_DAC if unprivileged and os.geteuid() == 0 else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "capillary", *argv],
        capture_output=True,
        text=True,
        env=full,
        cwd=cwd,
        check=False,
        timeout=120,
    )


@pytest.fixture
def world(aws: LocalAWS, tmp_path: Path) -> dict[str, Path]:
    """Files a user has at hand: a valid sample, folders good and bad, an unreadable tarball."""
    sample = make_sample_tarball(tmp_path, batch="cohort")
    folder = tmp_path / "no-toml"
    folder.mkdir()
    (folder / "tumor.vcf").write_text(vcf_text())
    gzip_folder = tmp_path / "gzip-not-bgzip"
    gzip_folder.mkdir()
    (gzip_folder / "tumor.vcf.gz").write_bytes(gzip.compress(vcf_text().encode()))
    (gzip_folder / "sample.toml").write_text(options_toml({"genome_assembly": "grch38"}))
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "tumor.vcf").write_text(vcf_text())
    (plain / "sample.toml").write_text(options_toml({"genome_assembly": "grch38", "assay": "WGS"}))
    empty = tmp_path / "empty"
    empty.mkdir()
    locked = tmp_path / "locked-abc123-somatic.tar.gz"
    shutil.copy(sample, locked)
    locked.chmod(0o000)
    # A plain install: the package copied out of the checkout, with no catalogue beside it.
    site = tmp_path / "site"
    shutil.copytree(
        REPO / "src" / "capillary", site / "capillary", ignore=shutil.ignore_patterns("__pycache__")
    )
    aws.client("s3").create_bucket(
        Bucket="capillary-cli-samples", CreateBucketConfiguration={"LocationConstraint": aws.region}
    )
    return {
        "sample": sample,
        "no_toml": folder,
        "gzip": gzip_folder,
        "plain": plain,
        "empty": empty,
        "locked": locked,
        "site": site,
        "vcf": plain / "tumor.vcf",
    }


def _cases(w: dict[str, Path], aws: LocalAWS) -> list[Case]:
    no_region = {name: None for name in NO_AWS} | {"AWS_CONFIG_FILE": os.devnull}
    no_credentials = {
        "AWS_ACCESS_KEY_ID": None,
        "AWS_SECRET_ACCESS_KEY": None,
        "AWS_SESSION_TOKEN": None,
        "AWS_PROFILE": None,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    no_bgzip = {"PATH": str(Path(sys.executable).parent)}
    sample = str(w["sample"])
    return [
        Case(
            "submit to a bucket that does not exist",
            ["submit", sample, "--bucket", "no-such-bucket"],
            ("s3://no-such-bucket", "no such bucket"),
            code=2,
        ),
        Case(
            "submit to a deployment that was never deployed",
            ["submit", sample, "--deployment", "ghost"],
            ("s3://capillary-ghost-samples", "no such bucket"),
            code=2,
        ),
        Case("submit without saying where", ["submit", sample], ("--deployment",), code=2),
        Case(
            "submit a file that does not exist",
            ["submit", "nowhere.tar.gz", "--bucket", "b"],
            ("nowhere.tar.gz", "no such file"),
            code=2,
        ),
        Case(
            "submit a VCF instead of a tarball",
            ["submit", str(w["vcf"]), "--bucket", "b"],
            ("tumor.vcf", ".tar.gz", "capillary pack"),
            code=2,
        ),
        Case(
            "submit a folder without tarballs",
            ["submit", str(w["empty"]), "--bucket", "b"],
            ("empty", "no *.tar.gz"),
            code=2,
        ),
        Case(
            "submit an unreadable tarball",
            ["submit", str(w["locked"]), "--bucket", "b"],
            ("locked-abc123-somatic.tar.gz", "not readable"),
            code=2,
            unprivileged=True,
        ),
        Case(
            "submit with parts below S3's minimum",
            ["submit", sample, "--bucket", "b", "--multipart-threshold-mb", "1"],
            ("--multipart-threshold-mb", "5 MiB"),
            code=2,
        ),
        Case(
            "submit with a bad batch name",
            ["submit", sample, "--bucket", "b", "--batch", "x_"],
            ("--batch", "x_"),
            code=2,
        ),
        Case(
            "submit without credentials",
            ["submit", sample, "--bucket", "capillary-cli-samples"],
            ("no AWS credentials",),
            env=no_credentials,
        ),
        Case(
            "status of a deployment without a region",
            ["status", "--deployment", "demo"],
            ("no AWS region", "--region"),
            env=no_region,
            code=2,
        ),
        Case(
            "status of a deployment that is not there",
            ["status", "--deployment", "nowhere"],
            ("/capillary/nowhere/config/work_queue_url does not exist", aws.region),
            code=1,
        ),
        Case(
            "status with a deployment name AWS cannot take",
            ["status", "--deployment", "Prod_1"],
            ("--deployment", "'Prod_1' is invalid"),
            code=2,
        ),
        Case(
            "status with a region that is no region",
            ["status", "--deployment", "demo", "--region", "mars"],
            ("--region", "'mars' is not an AWS region"),
            code=2,
        ),
        Case(
            "status with an unknown profile",
            ["status", "--deployment", "demo", "--profile", "nosuch"],
            ("--profile nosuch", "no such profile"),
            env={"AWS_CONFIG_FILE": os.devnull},
            code=2,
        ),
        Case(
            "status when the endpoint cannot be reached",
            ["status", "--deployment", "demo"],
            ("cannot reach", "127.0.0.1:9"),
            env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"},
        ),
        Case(
            "status on a controller without --deployment",
            ["status", "--config", "/nonexistent/consumer.toml"],
            ("consumer.toml",),
        ),
        Case(
            "status with nothing recent to list",
            ["status", "--deployment", "demo", "--recent", "0"],
            ("--recent 0",),
            code=2,
        ),
        Case(
            "costs without a deployment",
            ["costs"],
            ("--deployment: required",),
            code=2,
        ),
        Case(
            "costs of a deployment that is not there",
            ["costs", "--deployment", "nowhere"],
            ("bucket capillary-nowhere-samples does not exist", aws.region),
            code=1,
        ),
        Case(
            "costs since a date that is no date",
            ["costs", "--deployment", "demo", "--since", "last tuesday"],
            ("--since", "'last tuesday' is not an ISO 8601 date"),
            code=2,
        ),
        Case(
            "costs of a deployment without a region",
            ["costs", "--deployment", "demo"],
            ("no AWS region", "--region"),
            env=no_region,
            code=2,
        ),
        Case(
            "costs when the endpoint cannot be reached",
            ["costs", "--deployment", "demo"],
            ("cannot reach", "127.0.0.1:9"),
            env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"},
        ),
        Case(
            "intake-local without its environment",
            ["intake-local", "--queue-url", "http://127.0.0.1:9/q", "--once"],
            ("CAPILLARY_DEPLOYMENT and CAPILLARY_WORK_QUEUE_URL not set",),
            env={"CAPILLARY_DEPLOYMENT": None, "CAPILLARY_WORK_QUEUE_URL": None},
            code=2,
        ),
        Case(
            "intake-local without a queue",
            ["intake-local", "--once"],
            ("--queue-url",),
            env={"CAPILLARY_EVENTS_QUEUE_URL": None},
            code=2,
        ),
        Case(
            "intake-local with an env file that is not there",
            ["intake-local", "--env-file", "missing.env"],
            ("--env-file missing.env", "no such file"),
            code=2,
        ),
        Case(
            "intake-local waiting longer than SQS allows",
            ["intake-local", "--wait-seconds", "99"],
            ("--wait-seconds", "99"),
            code=2,
        ),
        Case(
            "releases check from a plain install",
            ["releases", "check", "--url", "http://127.0.0.1:9/releases"],
            ("capillary releases check",),
            env={"PYTHONPATH": str(w["site"])},
            code=1,
        ),
        Case(
            "validate a folder",
            ["validate", str(w["plain"])],
            ("plain", "a folder, not a tarball", "capillary pack"),
            code=2,
        ),
        Case(
            "an unknown log level",
            ["--log-level", "verbose", "validate", sample],
            ("--log-level", "VERBOSE"),
            code=2,
        ),
        Case("an unknown command", ["sumbit", sample], ("sumbit",), code=2),
        Case("pack a folder that does not exist", ["pack", "nowhere"], ("nowhere", "no such folder"), code=2),
        Case("pack a tarball", ["pack", sample], ("not a folder", "capillary validate"), code=2),
        Case(
            "pack a folder without a TOML",
            ["pack", str(w["no_toml"])],
            ("no-toml", "exactly one .toml"),
            code=2,
        ),
        Case(
            "pack a VCF that is gzip, not bgzip",
            ["pack", str(w["gzip"])],
            ("tumor.vcf.gz", "gzip, not bgzip"),
            code=2,
        ),
        Case(
            "pack a plain VCF without bgzip to hand",
            ["pack", str(w["plain"])],
            ("tumor.vcf", "bgzip is not on PATH"),
            env=no_bgzip,
            code=2,
        ),
        Case(
            "operator-policy for an account that is no account",
            [
                "operator-policy",
                "--deployment",
                "demo",
                "--account",
                "12",
                "--region",
                "eu-west-1",
                "--playbook",
                "intake",
            ],
            ("account '12'", "12-digit"),
            code=2,
        ),
    ]


def test_every_bad_use_is_one_line_with_a_reason_and_no_traceback(
    aws: LocalAWS, world: dict[str, Path], tmp_path: Path
) -> None:
    cases = _cases(world, aws)
    assert len(cases) >= 20
    failures = []
    for case in cases:
        result = _run(case.argv, case.env, tmp_path, unprivileged=case.unprivileged)
        err = result.stderr.strip()
        lines = err.splitlines()
        problems = []
        if "Traceback" in result.stderr + result.stdout or '"exception"' in result.stderr:
            problems.append("printed a traceback")
        if result.returncode == 0:
            problems.append("exited 0")
        elif case.code is not None and result.returncode != case.code:
            problems.append(f"exited {result.returncode}, not {case.code}")
        if not lines:
            problems.append("said nothing on stderr")
        elif case.lines is not None and len(lines) != case.lines:
            problems.append(f"{len(lines)} lines on stderr, not {case.lines}")
        first = lines[0] if lines else ""
        missing = [s for s in case.says if s not in first]
        if missing:
            problems.append(f"the line does not say {missing}")
        if problems:
            failures.append(
                f"{case.name}: {'; '.join(problems)}\n    $ capillary {' '.join(case.argv)}\n    {err}"
            )
    assert not failures, "\n".join(failures)


def test_intake_local_help_names_its_environment() -> None:
    result = _run(["intake-local", "--help"], {}, REPO)
    assert result.returncode == 0
    for name in ("CAPILLARY_DEPLOYMENT", "CAPILLARY_WORK_QUEUE_URL", "--deployment", "--env-file"):
        assert name in result.stdout, name


def test_a_log_level_in_any_case_is_taken(world: dict[str, Path], tmp_path: Path) -> None:
    for level in ("debug", "Warning", "ERROR"):
        result = _run(["--log-level", level, "validate", str(world["sample"])], {}, tmp_path)
        assert result.returncode == 0, result.stderr
        assert "valid sample" in result.stdout
