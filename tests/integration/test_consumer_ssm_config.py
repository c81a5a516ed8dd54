"""A worker learns its deployment at launch: the consumer reads its settings from Parameter Store.

The image is the same for every deployment; the launch writes only CAPILLARY_SSM_CONFIG (nothing
secret) and the parameters that roles/intake wrote under /capillary/<d>/config fill in the rest.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from capillary.local.endpoint import LocalAWS
from capillary.worker.config import ConfigError, ConfigUnavailableError, load_config

pytestmark = pytest.mark.integration


def _put(aws: LocalAWS, path: str, values: dict[str, str]) -> None:
    ssm = aws.client("ssm")
    for name, value in values.items():
        ssm.put_parameter(Name=f"{path}/{name}", Value=value, Type="String")


def test_settings_come_from_the_deployments_parameters(aws: LocalAWS, tmp_path: Path) -> None:
    # GIVEN the parameters intake.yml writes, and a launch environment naming only their path
    _put(
        aws,
        "/capillary/demo/config",
        {
            "work_queue_url": f"{aws.endpoint_url}/123456789012/capillary-demo-work",
            "bucket": "capillary-demo-samples",
            "visibility_timeout_s": "600",
            "events_queue_url": "ignored-by-the-consumer",
        },
    )
    env = {"CAPILLARY_SSM_CONFIG": "/capillary/demo/config"}

    # WHEN the consumer loads its configuration with no file
    cfg = load_config(_empty_file(tmp_path), env=env, ssm_client=aws.client("ssm"))

    # THEN the deployment's values are used
    assert cfg.queue_url.endswith("/capillary-demo-work")
    assert cfg.bucket == "capillary-demo-samples"
    assert cfg.visibility_timeout_s == 600


def test_environment_still_overrides_parameters(aws: LocalAWS, tmp_path: Path) -> None:
    _put(aws, "/capillary/demo/config", {"work_queue_url": "http://one/q", "max_receive_count": "5"})
    env = {"CAPILLARY_SSM_CONFIG": "/capillary/demo/config", "CAPILLARY_MAX_RECEIVE_COUNT": "2"}
    cfg = load_config(_empty_file(tmp_path), env=env, ssm_client=aws.client("ssm"))
    assert cfg.max_receive_count == 2


def test_missing_parameters_are_retryable_not_a_config_error(aws: LocalAWS, tmp_path: Path) -> None:
    # A worker that boots before intake.yml ran (or in the wrong region) must retry, not give up.
    env = {"CAPILLARY_SSM_CONFIG": "/capillary/nowhere/config"}
    with pytest.raises(
        ConfigUnavailableError, match="/capillary/nowhere/config/work_queue_url does not exist"
    ):
        load_config(_empty_file(tmp_path), env=env, ssm_client=aws.client("ssm"))


def test_a_bad_parameter_value_names_its_field(aws: LocalAWS, tmp_path: Path) -> None:
    _put(aws, "/capillary/demo/config", {"work_queue_url": "http://one/q", "visibility_timeout_s": "soon"})
    env = {"CAPILLARY_SSM_CONFIG": "/capillary/demo/config"}
    with pytest.raises(ConfigError, match="visibility_timeout_s"):
        load_config(_empty_file(tmp_path), env=env, ssm_client=aws.client("ssm"))


def _empty_file(tmp_path: Path) -> Path:
    path = tmp_path / "consumer.toml"
    path.write_text("")
    return path


def test_status_for_a_deployment_reads_its_parameters(aws: LocalAWS) -> None:
    # GIVEN a deployment's work queue (with a dead-letter queue) holding one message, and its parameters
    sqs = aws.client("sqs")
    dlq = sqs.create_queue(QueueName="capillary-demo-work-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName="capillary-demo-work",
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})},
    )["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="{}")
    _put(aws, "/capillary/demo/config", {"work_queue_url": queue})

    # WHEN someone on the controller asks for the deployment's status (no consumer.toml there)
    proc = subprocess.run(
        [sys.executable, "-m", "capillary", "status", "--deployment", "demo"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip

    # THEN it shows the queue's counters, and that the deployment has no intake-failures queue yet
    assert proc.returncode == 0, proc.stderr
    assert "waiting    1" in proc.stdout and "dead-letter 0" in proc.stdout
    assert "intake failures (no queue)" in proc.stdout

    # WHEN the intake Lambda gave up on an S3 event (its on-failure destination got the record)
    failures = sqs.create_queue(QueueName="capillary-demo-intake-failures")["QueueUrl"]
    sqs.send_message(
        QueueUrl=failures, MessageBody=json.dumps({"requestContext": {"condition": "RetriesExhausted"}})
    )
    proc = subprocess.run(
        [sys.executable, "-m", "capillary", "status", "--deployment", "demo", "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip

    # THEN the status counts it
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["queue"]["intake_failures"] == 1


def test_status_for_an_unknown_deployment_says_what_is_missing(aws: LocalAWS) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "capillary", "status", "--deployment", "nowhere"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "/capillary/nowhere/config/work_queue_url does not exist" in proc.stderr
