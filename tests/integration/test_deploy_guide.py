"""docs/deploy-aws.md, run: the guide's commands are the ones this test runs, so it cannot drift.

The guide's shell blocks are fenced as ```` ```sh step=NAME ```` (GitHub highlights them as `sh`
and ignores the rest of the line). This test reads every one, in order, and runs each command in
it against the local endpoint, in one deployment from intake to teardown:

- `export NAME=VALUE ...` sets the environment of the commands after it (the guide exports the
  profile and the region; the test writes that profile into AWS config files of its own).
- `ansible-playbook playbooks/X.yml ARGS` runs from the repository root, as the guide says;
  `capillary ARGS` runs in a scratch folder (the operator's working folder).
- A block fenced ```` ```sh step=NAME run=no ```` is what the local endpoint cannot do (Packer's
  AMI build, upstream's 33 GB download, AWS's quota API). Its commands are still checked: each
  `capillary` line parses with the real parser, each playbook exists and reads every `-e` variable
  the line gives; and the test names who runs it instead (`NOT_RUN_HERE`).
- `LOCAL_ONLY` adds arguments a step needs only here (plain HTTP, the bake's record step alone);
  they are appended to the guide's line, never replace it, and each says why.
- A ```` ```text prints=NAME ```` block after a step is what it prints: each line of it must match
  a line of the step's output, with `<uuid>`, `<n>`, `<time>` and `...` as wildcards.

Every step's wall time is printed (`pytest -s`): the guide's "local" timings come from here.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from capillary.cli import build_parser
from capillary.contract.naming import deployment_names
from capillary.local.endpoint import LocalAWS, SpotPrice
from capillary.local.playbook import REPO, run_playbook
from tests.support.samples import options_toml, vcf_text

pytestmark = pytest.mark.integration

GUIDE = REPO / "docs" / "deploy-aws.md"
DEPLOYMENT = "mycentre"
PROFILE = "capillary"
RELEASE = "2.3.2"
PRICES = REPO / "tests" / "data" / "spot" / "eu-west-1.json"
_FENCE = re.compile(r"^```(\w+)(.*)$")

# Steps the local endpoint cannot run, and where they are run instead.
NOT_RUN_HERE = {
    "quota": "AWS's Service Quotas API (moto has none); the guide says what the answer means",
    "mirror": "a 33 GB download from upstream; tests/integration/test_refdata.py runs "
    "mirror_refdata.yml against a local upstream",
    "verify": "the Resource Groups Tagging API (moto's misses most types); this test lists each type",
    "bake-image": "Packer's amazon-ebs build needs a real EC2; tests/integration/"
    "test_packer_amazon_ebs.py and test_bake.py run it (the lead runs those)",
}
# Arguments appended to a guide line here only, and why.
LOCAL_ONLY: dict[str, list[str]] = {
    # The local endpoint speaks plain HTTP: a bucket policy denying it would deny the test.
    "playbooks/intake.yml": ["-e", "intake_bucket_require_tls=false"],
}


@dataclass
class Command:
    step: str
    argv: list[str]
    run: bool


@dataclass
class Step:
    name: str
    run: bool
    commands: list[Command] = field(default_factory=list)
    prints: list[str] = field(default_factory=list)


def read_guide(text: str) -> list[Step]:
    steps: list[Step] = []
    block: list[str] | None = None
    kind, info = "", {}
    for line in text.splitlines():
        if block is None:
            match = _FENCE.match(line)
            if match:
                kind = match.group(1)
                info = dict(w.split("=", 1) for w in match.group(2).split() if "=" in w)
                block = []
            continue
        if line.startswith("```"):
            if kind == "sh":
                assert "step" in info, f"{GUIDE.name}: a sh block without step=: {block}"
                step = Step(info["step"], info.get("run", "yes") != "no")
                step.commands = [Command(step.name, argv, step.run) for argv in _commands(block)]
                steps.append(step)
            elif kind == "text" and "prints" in info:
                assert steps and steps[-1].name == info["prints"], (
                    f"prints={info['prints']} follows no such step"
                )
                steps[-1].prints += [p for p in block if p.strip()]
            block = None
            continue
        block.append(line)
    return steps


def _commands(lines: list[str]) -> Iterator[list[str]]:
    joined = "\n".join(lines).replace("\\\n", " ")
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            yield shlex.split(line)


def _pattern(line: str) -> re.Pattern[str]:
    wild = {"<uuid>": "[0-9a-f]{6,}", "<n>": r"\d+", "<time>": r"[0-9TZ:.+ -]+", "...": ".*"}
    parts = re.split("(" + "|".join(re.escape(w) for w in wild) + ")", line.strip())
    return re.compile("".join(wild.get(p, re.escape(p)) for p in parts))


def _playbook_reads(playbook: Path, variable: str) -> bool:
    """Whether the playbook, or a role it runs, documents `variable`."""
    if variable in playbook.read_text():
        return True
    specs = " ".join(p.read_text() for p in (REPO / "roles").glob("*/meta/argument_specs.yml"))
    return re.search(rf"^\s+{re.escape(variable)}:", specs, re.M) is not None


def check_command(command: Command) -> None:
    """What holds of every command, run here or not."""
    argv = command.argv
    if argv[0] == "export":
        assert all(re.match(r"^[A-Z_]+=\S+$", a) for a in argv[1:]), argv
    elif argv[0] == "capillary":
        try:
            build_parser().parse_args(argv[1:])
        except SystemExit as exc:
            raise AssertionError(f"the guide's `{shlex.join(argv)}` does not parse") from exc
    elif argv[0] == "ansible-playbook":
        playbook = REPO / argv[1]
        assert playbook.is_file(), f"{argv[1]}: no such playbook"
        for i, arg in enumerate(argv):
            if arg == "-e":
                name = argv[i + 1].split("=", 1)[0]
                assert _playbook_reads(playbook, name), f"{argv[1]} reads no variable {name}"
    elif argv[0] == "aws":
        assert not command.run, f"the test has no aws CLI: {shlex.join(argv)} must be in a run=no block"
    else:
        raise AssertionError(
            f"the guide runs {argv[0]!r}: the test knows export, capillary, ansible-playbook"
        )


def test_the_guide_is_well_formed() -> None:
    steps = read_guide(GUIDE.read_text())
    names = [s.name for s in steps]
    for expected in (
        "policy",
        "intake",
        "mirror",
        "bake-image",
        "up",
        "pack",
        "submit",
        "status",
        "teardown",
    ):
        assert expected in names, f"the guide has no step {expected}"
    assert {s.name for s in steps if not s.run} == set(NOT_RUN_HERE)
    for step in steps:
        for command in step.commands:
            check_command(command)


def _profile(tmp: Path, aws: LocalAWS) -> dict[str, str | None]:
    """The environment of an operator with a named profile: no keys in the environment."""
    config, credentials = tmp / "aws-config", tmp / "aws-credentials"
    config.write_text(f"[profile {PROFILE}]\nregion = {aws.region}\n")
    credentials.write_text(f"[{PROFILE}]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    return {
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        "AWS_ACCESS_KEY_ID": None,
        "AWS_SECRET_ACCESS_KEY": None,
        "AWS_SESSION_TOKEN": None,
        "AWS_REGION": None,
        "AWS_DEFAULT_REGION": None,
    }


def _seed_prices(aws: LocalAWS) -> None:
    """The recorded eu-west-1 series, moved to end an hour ago (up.yml looks back 24 hours)."""
    records = json.loads(PRICES.read_text())
    last = max(dt.datetime.fromisoformat(r["Timestamp"].replace("Z", "+00:00")) for r in records)
    shift = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1) - last
    aws.seed_spot_prices(
        SpotPrice(
            r["InstanceType"],
            r["AvailabilityZone"],
            float(r["SpotPrice"]),
            dt.datetime.fromisoformat(r["Timestamp"].replace("Z", "+00:00")) + shift,
        )
        for r in records
    )


def _record_image(aws: LocalAWS) -> dict[str, str]:
    """An AMI as Packer leaves it (tagged, with its snapshot): what bake.yml's record step records."""
    names = deployment_names(DEPLOYMENT)
    ec2 = aws.client("ec2")
    builder = ec2.run_instances(ImageId="ami-785db401", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    image: str = ec2.create_image(InstanceId=builder, Name=f"capillary-worker-{RELEASE}")["ImageId"]
    snapshots = [
        m["Ebs"]["SnapshotId"]
        for m in ec2.describe_images(ImageIds=[image])["Images"][0]["BlockDeviceMappings"]
    ]
    ec2.create_tags(Resources=[image, *snapshots], Tags=[{"Key": names.tag_deployment, "Value": DEPLOYMENT}])
    ec2.terminate_instances(InstanceIds=[builder])
    return {"image": image}


def _folder(cwd: Path, name: str) -> None:
    """A sample as a centre has it: a plain-text VCF and its options."""
    folder = cwd / name
    folder.mkdir()
    (folder / "tumour.vcf").write_text(vcf_text())
    (folder / "sample.toml").write_text(options_toml({"genome_assembly": "grch38", "assay": "WGS"}))


def _run(command: Command, env: dict[str, str], cwd: Path, image: dict[str, str]) -> tuple[int, str]:
    argv = command.argv
    if argv[0] == "ansible-playbook":
        extra = list(LOCAL_ONLY.get(argv[1], []))
        if command.step == "bake-record":
            # The record step alone: what Packer and the smoke test would have handed it.
            facts = {
                "_bake_image_id": image["image"],
                "_bake_version": RELEASE,
                "_bake_commit": "0123456789ab",
                "_bake_release": {"version": RELEASE, "current": True},
            }
            extra += ["--tags", "bake_record", "-e", json.dumps(facts)]
        recap = run_playbook(argv[1], env=env, args=[*argv[2:], *extra], timeout=900)
        return recap.rc, recap.stdout + recap.stderr
    result = subprocess.run(
        [sys.executable, "-m", "capillary", *argv[1:]],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
        timeout=300,
    )
    return result.returncode, result.stdout + result.stderr


def test_the_guide_runs_from_intake_to_teardown(
    aws: LocalAWS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = read_guide(GUIDE.read_text())
    cwd = tmp_path / "work"
    cwd.mkdir()
    for name, value in _profile(tmp_path, aws).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    _seed_prices(aws)
    _folder(cwd, "tumour-01")
    image: dict[str, str] = {}
    timings: list[str] = []
    for step in steps:
        if not step.run:
            continue
        if step.name == "bake-record":
            image = _record_image(aws)
        output = ""
        started = time.monotonic()
        for command in step.commands:
            check_command(command)
            if command.argv[0] == "export":
                for assignment in command.argv[1:]:
                    monkeypatch.setenv(*assignment.split("=", 1))
                continue
            rc, out = _run(command, dict(os.environ), cwd, image)
            assert rc == 0, f"step {step.name}: `{shlex.join(command.argv)}` exited {rc}:\n{out[-3000:]}"
            assert "Traceback" not in out, out
            output += out
        timings.append(f"{step.name}: {time.monotonic() - started:.1f} s")
        lines = output.splitlines()
        for shown in step.prints:
            pattern = _pattern(shown)
            assert any(pattern.search(line) for line in lines), (
                f"step {step.name}: the guide shows {shown!r}, the run printed:\n{output[-3000:]}"
            )
    print("\nlocal timings:\n  " + "\n  ".join(timings))

    # THEN nothing of the deployment is left, from the APIs' view
    names = deployment_names(DEPLOYMENT)
    mine = f"capillary-{DEPLOYMENT}-"
    assert not [b["Name"] for b in aws.client("s3").list_buckets()["Buckets"] if b["Name"].startswith(mine)]
    assert not [u for u in aws.client("sqs").list_queues().get("QueueUrls", []) if mine in u]
    assert not [
        r["RoleName"] for r in aws.client("iam").list_roles()["Roles"] if r["RoleName"].startswith(mine)
    ]
    assert not aws.client("ssm").get_parameters_by_path(Path=names.ssm_prefix, Recursive=True)["Parameters"]
    tag = [{"Name": f"tag:{names.tag_deployment}", "Values": [DEPLOYMENT]}]
    assert not aws.client("ec2").describe_images(Owners=["self"], Filters=tag)["Images"]
