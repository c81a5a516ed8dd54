"""intake.yml with intake_external_resources: Terraform owns the bucket, queues, topic and IAM.

The role must check they exist, change none of them, and still deploy the handler (with its event
invoke configuration), the parameters and the notifications, so Terraform and Ansible never
manage the same resource.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from capillary.contract.naming import deployment_names
from capillary.local.endpoint import LocalAWS

pytestmark = pytest.mark.integration

PLAYBOOK = "playbooks/intake.yml"
NAMES = deployment_names("tfdemo")
VARS = {"capillary_deployment": "tfdemo", "intake_platform": "aws", "intake_external_resources": True}
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


def _terraform_like(aws: LocalAWS) -> None:
    """What terraform/ creates, deliberately with settings the role would choose differently."""
    aws.client("s3").create_bucket(
        Bucket=NAMES.bucket, CreateBucketConfiguration={"LocationConstraint": aws.region}
    )
    sqs = aws.client("sqs")
    sqs.create_queue(QueueName=NAMES.dead_letter_queue)
    sqs.create_queue(QueueName=NAMES.work_queue, Attributes={"VisibilityTimeout": "123"})
    sqs.create_queue(QueueName=NAMES.intake_failures_queue, Attributes={"MessageRetentionPeriod": "86400"})
    aws.client("sns").create_topic(Name=NAMES.notify_topic)
    iam = aws.client("iam")
    for role in (NAMES.worker_role, NAMES.intake_role):
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=TRUST)


def test_resources_made_elsewhere_are_used_not_managed(aws: LocalAWS, playbook: Any) -> None:
    # GIVEN the long-lived resources, made by Terraform with its own settings
    _terraform_like(aws)

    # WHEN intake.yml runs twice with intake_external_resources
    playbook(PLAYBOOK, extra_vars=VARS).assert_ok()
    playbook(PLAYBOOK, extra_vars=VARS).assert_idempotent()

    # THEN Terraform's settings are untouched: no versioning, the queue's own visibility timeout
    s3, sqs = aws.client("s3"), aws.client("sqs")
    assert s3.get_bucket_versioning(Bucket=NAMES.bucket).get("Status") is None
    url = sqs.get_queue_url(QueueName=NAMES.work_queue)["QueueUrl"]
    visibility = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"]
    assert visibility["VisibilityTimeout"] == "123"
    failures = sqs.get_queue_url(QueueName=NAMES.intake_failures_queue)["QueueUrl"]
    failures_attrs = sqs.get_queue_attributes(QueueUrl=failures, AttributeNames=["All"])["Attributes"]
    assert failures_attrs["MessageRetentionPeriod"] == "86400"
    assert aws.client("iam").list_role_policies(RoleName=NAMES.worker_role)["PolicyNames"] == []
    # and what Ansible owns is there: the handler, the parameters, the notifications
    functions = [f["FunctionName"] for f in aws.client("lambda").list_functions()["Functions"]]
    assert functions == [NAMES.intake_function]
    queue_url = aws.client("ssm").get_parameter(Name=f"{NAMES.ssm_config}/work_queue_url")["Parameter"][
        "Value"
    ]
    assert queue_url == url
    notifications = s3.get_bucket_notification_configuration(Bucket=NAMES.bucket)
    assert notifications.get("LambdaFunctionConfigurations"), notifications
    # and the handler's failed events go to Terraform's intake-failures queue
    invoke = aws.client("lambda").get_function_event_invoke_config(FunctionName=NAMES.intake_function)
    assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == failures_attrs["QueueArn"]


def test_missing_resources_are_named(aws: LocalAWS, playbook: Any) -> None:
    # GIVEN only the work and dead-letter queues exist (an older Terraform example made no more)
    sqs = aws.client("sqs")
    sqs.create_queue(QueueName=NAMES.dead_letter_queue)
    sqs.create_queue(QueueName=NAMES.work_queue)

    # WHEN intake.yml runs with intake_external_resources THEN it fails naming each missing one
    recap = playbook(PLAYBOOK, extra_vars=VARS)
    assert recap.rc != 0
    for missing in (
        f"bucket {NAMES.bucket}",
        f"queue {NAMES.intake_failures_queue}",
        f"role {NAMES.worker_role}",
        f"role {NAMES.intake_role}",
    ):
        assert missing in recap.stdout, recap.tail()
    # and it created none of them
    assert aws.client("s3").list_buckets()["Buckets"] == []
