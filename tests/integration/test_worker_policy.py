"""The worker role's SSM grant, read from the policy document playbooks/intake.yml writes.

moto authorizes every SSM call against the resource "*" (it does not scope SSM by parameter ARN),
so a worker credential reading `secrets/webhook_key` there would succeed whatever the policy
says: this test cannot exercise the refusal and asserts the DOCUMENT instead, matching each
parameter's ARN against the statement's resources with IAM's own wildcard rules (`*` any run of
characters including `/`, `?` one character; case-sensitive).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from capillary.contract.naming import deployment_names
from capillary.local.endpoint import LocalAWS

pytestmark = pytest.mark.integration

NAMES = deployment_names("poltest")
SSM_ACTIONS = ("ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath")


def _iam_match(pattern: str, arn: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, arn) is not None


def _allows(document: dict[str, Any], action: str, arn: str) -> bool:
    for statement in document["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        allowed = statement["Effect"] == "Allow" and any(_iam_match(a, action) for a in actions)
        if allowed and any(_iam_match(r, arn) for r in resources):
            return True
    return False


def test_the_worker_role_reads_its_config_and_never_the_secrets(aws: LocalAWS, playbook: Any) -> None:
    # GIVEN a deployment laid out by the intake playbook
    playbook(
        "playbooks/intake.yml", extra_vars={"capillary_deployment": "poltest", "intake_platform": "local"}
    ).assert_ok()
    iam = aws.client("iam")
    worker = iam.get_role_policy(RoleName=NAMES.worker_role, PolicyName="capillary-worker")["PolicyDocument"]
    intake = iam.get_role_policy(RoleName=NAMES.intake_role, PolicyName="capillary-intake")["PolicyDocument"]
    account = aws.client("sts").get_caller_identity()["Account"]

    def arn(name: str) -> str:
        return f"arn:aws:ssm:{aws.region}:{account}:parameter{name}"

    # THEN the worker may read its config path (the path itself for GetParametersByPath) and each setting
    for action in SSM_ACTIONS:
        assert _allows(worker, action, arn(NAMES.ssm_config)), action
        assert _allows(worker, action, arn(f"{NAMES.ssm_config}/work_queue_url")), action
    # AND no SSM action of the worker reaches the secrets (the webhook key, the Slack URL), the
    # image records or the deployment's root path
    for name in (
        f"{NAMES.ssm_secrets}/webhook_key",
        f"{NAMES.ssm_secrets}/slack_webhook_url",
        NAMES.ssm_secrets,
        f"{NAMES.ssm_images}/2.3.2",
        NAMES.ssm_prefix,
        f"{NAMES.ssm_prefix}/configuration-evil",
    ):
        for action in (*SSM_ACTIONS, "ssm:GetParameterHistory"):
            assert not _allows(worker, action, arn(name)), (action, name)
    # AND the intake handler still reads the webhook key it verifies webhooks with
    assert _allows(intake, "ssm:GetParameter", arn(f"{NAMES.ssm_secrets}/webhook_key"))


def test_the_worker_role_reads_spot_prices_in_its_region_and_no_other_ec2_action(
    aws: LocalAWS, playbook: Any
) -> None:
    # GIVEN a deployment laid out by the intake playbook
    playbook(
        "playbooks/intake.yml", extra_vars={"capillary_deployment": "poltest", "intake_platform": "local"}
    ).assert_ok()
    worker = aws.client("iam").get_role_policy(RoleName=NAMES.worker_role, PolicyName="capillary-worker")[
        "PolicyDocument"
    ]
    # THEN its one EC2 action is the price history its run records read, held to its region
    ec2 = [s for s in worker["Statement"] if any(str(a).startswith("ec2:") for a in _actions(s))]
    assert [(_actions(s), s["Resource"]) for s in ec2] == [(["ec2:DescribeSpotPriceHistory"], "*")]
    assert ec2[0]["Condition"] == {"StringEquals": {"aws:RequestedRegion": aws.region}}
    # AND nothing lets it start, stop or terminate instances, or read their details
    for action in (
        "ec2:TerminateInstances",
        "ec2:RunInstances",
        "ec2:DescribeInstances",
        "ec2:StopInstances",
    ):
        assert not _allows(worker, action, "*"), action


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]
