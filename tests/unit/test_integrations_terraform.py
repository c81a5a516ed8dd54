"""The Terraform example, checked by parsing: no terraform binary can be installed here.

python-hcl2 parses every file (a syntax error fails here as `terraform validate` would); the
rest checks what `validate` would not: names match capillary.contract.naming, the IAM statements match
roles/intake's, and the hand-over runs the playbook Ansible owns.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from capillary.contract.naming import deployment_names

hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 is not installed")

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"
INTAKE_ROLE = REPO / "roles" / "intake"


def _files() -> dict[str, str]:
    files = {p.name: p.read_text() for p in sorted(TERRAFORM.glob("*.tf"))}
    assert files, "no .tf files"
    return files


def _parsed() -> dict[str, dict[str, Any]]:
    return {name: hcl2.loads(text) for name, text in _files().items()}


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def _all_text() -> str:
    # Comments dropped so that a variable named only in a comment does not count as used.
    return "\n".join(re.sub(r"(?m)\s#.*$", "", text) for text in _files().values())


def test_every_file_parses() -> None:
    parsed = _parsed()
    assert {"versions.tf", "variables.tf", "main.tf", "outputs.tf"} <= set(parsed)


def test_referenced_variables_are_declared_and_declared_ones_are_used() -> None:
    declared = {_unquote(k) for block in _parsed()["variables.tf"]["variable"] for k in block}
    text = _all_text()
    referenced = set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_]*)", text))
    assert referenced - declared == set(), "referenced but not declared"
    assert declared - referenced == set(), "declared but never used"
    assert "capillary_deployment" in declared


def test_referenced_locals_are_defined() -> None:
    (locals_block,) = _parsed()["main.tf"]["locals"]
    defined = set(locals_block) | {f"names.{k}" for k in locals_block["names"]}
    for ref in re.findall(r"\blocal\.([A-Za-z_][A-Za-z0-9_.]*)", _all_text()):
        top, _, rest = ref.partition(".")
        assert top in defined, ref
        if top == "names" and rest:
            assert f"names.{rest.split('.')[0]}" in defined, ref


def test_names_match_capillary_naming() -> None:
    # GIVEN the names Terraform derives for deployment "demo" (no bucket override)
    (locals_block,) = _parsed()["main.tf"]["locals"]
    names = locals_block["names"]
    derived: dict[str, str] = {}
    for key, expr in names.items():
        expr = _unquote(expr)
        if "?" in expr:  # the bucket's override: the branch taken when intake_bucket_name == ""
            expr = _unquote(expr.split(":", 1)[1].strip().rstrip("}"))
        derived[key] = expr.replace("${var.capillary_deployment}", "demo")

    # THEN each is what capillary.contract.naming gives, the one home of the convention
    expected = deployment_names("demo").as_dict()
    assert {k: expected[k] for k in derived} == derived


def _resources() -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in _parsed()["main.tf"]["resource"]:
        for rtype, by_name in entry.items():
            for rname, body in by_name.items():
                found[(_unquote(rtype), _unquote(rname))] = body
    return found


@pytest.mark.parametrize(
    ("resource", "attribute", "key"),
    [
        (("aws_s3_bucket", "samples"), "bucket", "bucket"),
        (("aws_sqs_queue", "work"), "name", "work_queue"),
        (("aws_sqs_queue", "dead_letter"), "name", "dead_letter_queue"),
        (("aws_sqs_queue", "intake_failures"), "name", "intake_failures_queue"),
        (("aws_sns_topic", "notify"), "name", "notify_topic"),
        (("aws_iam_role", "worker"), "name", "worker_role"),
        (("aws_iam_instance_profile", "worker"), "name", "worker_instance_profile"),
        (("aws_iam_role", "intake"), "name", "intake_role"),
    ],
)
def test_resources_take_their_names_from_the_derived_names(
    resource: tuple[str, str], attribute: str, key: str
) -> None:
    assert _resources()[resource][attribute] == "${local.names." + key + "}"


def test_work_queue_redrives_to_the_dead_letter_queue() -> None:
    work = _resources()[("aws_sqs_queue", "work")]
    assert "aws_sqs_queue.dead_letter.arn" in work["redrive_policy"]
    assert "var.intake_max_receive_count" in work["redrive_policy"]


def test_intake_failures_queue_is_kept_and_encrypted_like_the_dead_letter_queue() -> None:
    # The intake-failures queue is long-lived like the DLQ: Terraform owns it whenever it owns the
    # queues (intake.yml then only checks it exists and points the Lambda's destination at it).
    failures = _resources()[("aws_sqs_queue", "intake_failures")]
    dlq = _resources()[("aws_sqs_queue", "dead_letter")]
    assert failures["message_retention_seconds"] == dlq["message_retention_seconds"]
    assert failures["sqs_managed_sse_enabled"] is True
    handover = _resources()[("terraform_data", "intake_playbook")]
    assert "${aws_sqs_queue.intake_failures.arn}" in handover["triggers_replace"]


def _role_statements(policy_name: str) -> dict[str, set[str]]:
    tasks = yaml.safe_load((INTAKE_ROLE / "tasks" / "install.yml").read_text())
    (task,) = [t for t in tasks if t.get("amazon.aws.iam_policy", {}).get("policy_name") == policy_name]
    statements = task["vars"]["_policy"]["Statement"]
    return {s["Sid"]: set([s["Action"]] if isinstance(s["Action"], str) else s["Action"]) for s in statements}


def _terraform_statements(resource_name: str) -> dict[str, set[str]]:
    text = _files()["main.tf"]
    start = text.index(f'resource "aws_iam_role_policy" "{resource_name}"')
    end = text.find("\nresource ", start + 1)
    block = text[start : end if end > 0 else len(text)]
    marks = list(re.finditer(r'Sid\s*=\s*"(\w+)"', block))
    statements: dict[str, set[str]] = {}
    for i, mark in enumerate(marks):
        segment = block[mark.end() : marks[i + 1].start() if i + 1 < len(marks) else len(block)]
        statements[mark.group(1)] = set(
            re.findall(r'"((?:s3|sqs|ssm|sns|logs|autoscaling|ec2):[A-Z][A-Za-z*]*)"', segment)
        )
    return statements


@pytest.mark.parametrize(
    ("role_policy", "resource"), [("capillary-worker", "worker"), ("capillary-intake", "intake")]
)
def test_iam_statements_match_the_intake_roles(role_policy: str, resource: str) -> None:
    if not (INTAKE_ROLE / "tasks" / "install.yml").is_file():
        pytest.fail("roles/intake/tasks/install.yml is missing: the policies' home")
    assert _terraform_statements(resource) == _role_statements(role_policy)


def test_worker_policy_never_grants_terminate() -> None:
    # A worker's only EC2 action is the read its run record's spot price needs.
    assert set(re.findall(r'"(ec2:[A-Za-z*]+)"', _all_text())) == {"ec2:DescribeSpotPriceHistory"}


def test_hand_over_runs_intake_yml_for_the_same_deployment_without_its_resources() -> None:
    handover = _resources()[("terraform_data", "intake_playbook")]
    (provisioner,) = handover["provisioner"]
    command = _unquote(provisioner['"local-exec"']["command"])
    assert "playbooks/intake.yml" in command
    assert "-e capillary_deployment=${var.capillary_deployment}" in command
    assert "-e intake_bucket_name=${local.names.bucket}" in command
    assert "-e intake_external_resources=true" in command


def test_the_intake_role_knows_the_switch_terraform_passes() -> None:
    defaults = yaml.safe_load((INTAKE_ROLE / "defaults" / "main.yml").read_text())
    assert "intake_external_resources" in defaults
