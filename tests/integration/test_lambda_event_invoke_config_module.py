"""`capillary.pcgr.lambda_event_invoke_config` in a playbook, against the local endpoint.

Each test runs the module through `ansible-playbook` (check and diff mode included) and reads
what Lambda stored with boto3. moto stores the configuration; it cannot invoke the function here,
so what Lambda does with a failed event is not exercised.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from capillary.local.endpoint import LocalAWS
from capillary.local.playbook import run_module

pytestmark = pytest.mark.integration

FUNCTION = "eic-probe"


def apply(
    playbook: Any, tmp_path: Path, check: bool = False, diff: bool = False, **args: Any
) -> dict[str, Any]:
    """Run the module once through ansible-playbook and return what it registered."""
    _, result = run_module(
        playbook,
        tmp_path,
        "capillary.pcgr.lambda_event_invoke_config",
        args,
        check=check,
        diff=diff,
        ignore_errors=True,
    )
    return result


def stored(aws: LocalAWS, name: str = FUNCTION) -> dict[str, Any] | None:
    """What Lambda holds for the function, without the metadata; None when it holds nothing."""
    try:
        config = aws.client("lambda").get_function_event_invoke_config(FunctionName=name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise
    return {k: v for k, v in config.items() if k not in ("ResponseMetadata", "LastModified", "FunctionArn")}


@pytest.fixture
def queues(aws: LocalAWS) -> dict[str, str]:
    """A function to configure (created, never invoked) and two queues' ARNs."""
    iam = aws.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = iam.create_role(RoleName="eic-probe", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as zf:
        zf.writestr("handler.py", "def handler(event, context):\n    raise RuntimeError('never run here')\n")
    aws.client("lambda").create_function(
        FunctionName=FUNCTION,
        Runtime="python3.12",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
    )
    sqs = aws.client("sqs")
    arns = {}
    for name in ("failures", "successes"):
        url = sqs.create_queue(QueueName=f"eic-{name}")["QueueUrl"]
        arns[name] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
    return arns


def test_create_then_a_rerun_changes_nothing(
    aws: LocalAWS, playbook: Any, tmp_path: Path, queues: dict[str, str]
) -> None:
    # GIVEN a function with no configuration
    args = {
        "function_name": FUNCTION,
        "maximum_retry_attempts": 1,
        "maximum_event_age_in_seconds": 3600,
        "on_failure": queues["failures"],
    }

    # WHEN the module runs in check mode THEN it reports the change and writes nothing
    planned = apply(playbook, tmp_path, check=True, diff=True, **args)
    assert planned["changed"] is True
    assert planned["diff"]["before"] == {}
    assert planned["diff"]["after"]["on_failure"] == queues["failures"]
    assert stored(aws) is None

    # WHEN it runs for real THEN Lambda holds exactly what was asked
    created = apply(playbook, tmp_path, **args)
    assert created["changed"] is True
    assert stored(aws) == {
        "MaximumRetryAttempts": 1,
        "MaximumEventAgeInSeconds": 3600,
        "DestinationConfig": {"OnFailure": {"Destination": queues["failures"]}},
    }
    assert (
        created["event_invoke_config"]["destination_config"]["on_failure"]["destination"]
        == queues["failures"]
    )
    assert created["event_invoke_config"]["function_arn"].endswith(f":function:{FUNCTION}")

    # WHEN it runs again, in check mode and for real THEN nothing changes
    assert apply(playbook, tmp_path, check=True, **args)["changed"] is False
    again = apply(playbook, tmp_path, **args)
    assert again["changed"] is False
    assert again["event_invoke_config"]["maximum_retry_attempts"] == 1


def test_an_update_replaces_the_whole_configuration(
    aws: LocalAWS, playbook: Any, tmp_path: Path, queues: dict[str, str]
) -> None:
    # GIVEN a configuration with both destinations
    apply(
        playbook,
        tmp_path,
        function_name=FUNCTION,
        maximum_retry_attempts=2,
        on_failure=queues["failures"],
        on_success=queues["successes"],
    )

    # WHEN check mode asks for fewer retries and no success destination THEN nothing is written
    update = {"function_name": FUNCTION, "maximum_retry_attempts": 0, "on_failure": queues["failures"]}
    planned = apply(playbook, tmp_path, check=True, diff=True, **update)
    assert planned["changed"] is True
    assert planned["diff"]["before"]["on_success"] == queues["successes"]
    assert planned["diff"]["after"]["on_success"] is None
    assert stored(aws)["MaximumRetryAttempts"] == 2  # type: ignore[index]

    # WHEN it runs for real THEN the settings left out are gone, as PutFunctionEventInvokeConfig does
    assert apply(playbook, tmp_path, **update)["changed"] is True
    assert stored(aws) == {
        "MaximumRetryAttempts": 0,
        "DestinationConfig": {"OnFailure": {"Destination": queues["failures"]}},
    }
    assert apply(playbook, tmp_path, **update)["changed"] is False


def test_lambdas_defaults_written_out_are_no_change(
    aws: LocalAWS, playbook: Any, tmp_path: Path, queues: dict[str, str]
) -> None:
    # GIVEN a configuration that sets only the destination
    aws.client("lambda").put_function_event_invoke_config(
        FunctionName=FUNCTION, DestinationConfig={"OnFailure": {"Destination": queues["failures"]}}
    )
    # WHEN the task spells out Lambda's defaults THEN it is the same configuration
    result = apply(
        playbook,
        tmp_path,
        function_name=FUNCTION,
        maximum_retry_attempts=2,
        maximum_event_age_in_seconds=21600,
        on_failure=queues["failures"],
    )
    assert result["changed"] is False


def test_absent_deletes_and_then_has_nothing_to_do(
    aws: LocalAWS, playbook: Any, tmp_path: Path, queues: dict[str, str]
) -> None:
    apply(playbook, tmp_path, function_name=FUNCTION, on_failure=queues["failures"])
    absent = {"function_name": FUNCTION, "state": "absent"}

    # check mode reports the deletion and keeps the configuration
    assert apply(playbook, tmp_path, check=True, **absent)["changed"] is True
    assert stored(aws) is not None

    deleted = apply(playbook, tmp_path, **absent)
    assert deleted["changed"] is True and deleted["event_invoke_config"] == {}
    assert stored(aws) is None
    assert apply(playbook, tmp_path, **absent)["changed"] is False


def test_a_missing_function_is_named(aws: LocalAWS, playbook: Any, tmp_path: Path) -> None:
    args = {"function_name": "nowhere", "on_failure": "arn:aws:sqs:eu-west-1:123456789012:q"}

    failed = apply(playbook, tmp_path, **args)
    assert failed["failed"] is True
    assert "Lambda function nowhere does not exist" in failed["msg"]

    # in check mode the task that creates the function did not run: a change, not a failure
    planned = apply(playbook, tmp_path, check=True, **args)
    assert planned.get("failed") is not True and planned["changed"] is True

    # and there is nothing to delete
    assert apply(playbook, tmp_path, function_name="nowhere", state="absent")["changed"] is False


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ({"maximum_event_age_in_seconds": 30}, "maximum_event_age_in_seconds must be between 60 and 21600"),
        ({"maximum_retry_attempts": 3}, "maximum_retry_attempts"),
        ({"on_failure": "eic-failures"}, "on_failure must be the ARN"),
    ],
)
def test_unusable_options_fail_before_any_call(
    aws: LocalAWS, playbook: Any, tmp_path: Path, queues: dict[str, str], args: dict[str, Any], named: str
) -> None:
    result = apply(playbook, tmp_path, function_name=FUNCTION, **args)
    assert result["failed"] is True and named in result["msg"], result["msg"]
    assert stored(aws) is None
