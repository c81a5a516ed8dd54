"""An idle worker leaves its Auto Scaling group, so the group does not replace it (worker/fleet.py).

The group is the local endpoint's (which, as AWS, refills a group below its desired capacity); the
instance metadata is a local IMDSv2 server answering the instance's tags as AWS does when the
launch template enables instance metadata tags.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capillary.contract.layout import EXIT_IDLE
from capillary.local.endpoint import LocalAWS
from capillary.worker.config import load_config
from capillary.worker.daemon import Consumer
from capillary.worker.fleet import GROUP_TAG, leave_group
from capillary.worker.imds import IMDSClient
from tests.support.imds import LocalIMDS

pytestmark = pytest.mark.integration


@pytest.fixture
def group(aws: LocalAWS) -> dict[str, Any]:
    """A group of two in-service workers, protected from scale-in, launched from a template."""
    ec2, autoscaling = aws.client("ec2"), aws.client("autoscaling")
    image = ec2.register_image(Name="fleet-image", RootDeviceName="/dev/xvda")["ImageId"]
    ec2.create_launch_template(
        LaunchTemplateName="fleet", LaunchTemplateData={"ImageId": image, "InstanceType": "m5.large"}
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="capillary-fleet-workers-1",
        LaunchTemplate={"LaunchTemplateName": "fleet"},
        MinSize=0,
        MaxSize=4,
        DesiredCapacity=2,
        AvailabilityZones=["eu-west-1a"],
        NewInstancesProtectedFromScaleIn=True,
    )
    return described(aws)


def described(aws: LocalAWS) -> dict[str, Any]:
    [found] = aws.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=["capillary-fleet-workers-1"]
    )["AutoScalingGroups"]
    return dict(found)


@pytest.fixture
def imds(group: dict[str, Any]) -> Iterator[LocalIMDS]:
    """The first worker's metadata, its group tag included."""
    with LocalIMDS(instance_id=group["Instances"][0]["InstanceId"]) as server:
        server.set_metadata(f"tags/instance/{GROUP_TAG}", group["AutoScalingGroupName"])
        yield server


def test_an_idle_worker_leaves_its_group_and_is_not_replaced(
    aws: LocalAWS, group: dict[str, Any], imds: LocalIMDS
) -> None:
    me = group["Instances"][0]["InstanceId"]

    outcome = leave_group(IMDSClient(imds.url), lambda: aws.client("autoscaling"))

    after = described(aws)
    assert outcome == "left"
    assert after["DesiredCapacity"] == 1
    assert [i["InstanceId"] for i in after["Instances"]] == [group["Instances"][1]["InstanceId"]]
    [state] = [
        i["State"]["Name"]
        for r in aws.client("ec2").describe_instances(InstanceIds=[me])["Reservations"]
        for i in r["Instances"]
    ]
    assert state == "terminated"
    assert imds.rejected == 0  # IMDSv2 only


def test_a_worker_of_a_group_already_at_its_minimum_leaves_without_a_decrement(
    aws: LocalAWS, group: dict[str, Any], imds: LocalIMDS
) -> None:
    # GIVEN the group lowered to 0 while its (protected) workers still run
    aws.client("autoscaling").set_desired_capacity(
        AutoScalingGroupName=group["AutoScalingGroupName"], DesiredCapacity=0
    )

    outcome = leave_group(IMDSClient(imds.url), lambda: aws.client("autoscaling"))

    # THEN AWS refused the decrement, the worker left anyway and nothing replaced it
    after = described(aws)
    assert outcome == "left-at-min-size"
    assert after["DesiredCapacity"] == 0
    assert len(after["Instances"]) == 1


def test_outside_a_group_or_without_imds_nothing_happens(aws: LocalAWS, group: dict[str, Any]) -> None:
    def no_client() -> Any:
        raise AssertionError("no Auto Scaling call without a group to leave")

    with LocalIMDS(instance_id=group["Instances"][0]["InstanceId"]) as untagged:
        assert leave_group(IMDSClient(untagged.url), no_client) == "no-group"
    assert leave_group(IMDSClient("http://127.0.0.1:9"), no_client, enabled=False) == "imds-disabled"
    assert leave_group(IMDSClient("http://127.0.0.1:9", timeout_s=0.5), no_client) == "imds-error"
    assert described(aws)["DesiredCapacity"] == 2


def test_the_daemon_leaves_its_group_on_its_idle_exit(
    aws: LocalAWS, group: dict[str, Any], imds: LocalIMDS, tmp_path: Path
) -> None:
    # GIVEN a consumer on an empty queue, idle after about a second, reading the local IMDS
    queue_url = aws.client("sqs").create_queue(QueueName="capillary-fleet-work")["QueueUrl"]
    settings = {
        "queue_url": queue_url,
        "bucket": "capillary-fleet-samples",
        "workdir": str(tmp_path / "work"),
        "state_file": str(tmp_path / "state.json"),
        "engine": "summary",
        "poll_wait_s": 1,
        "idle_minutes": 0.02,
        "imds_enabled": True,
        "imds_url": imds.url,
        "spot_poll_s": 1,
    }
    config = tmp_path / "consumer.toml"
    config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()))

    # WHEN it runs out of work
    status = Consumer(load_config(config, env={})).run()

    # THEN it exits idle, out of its group, which wants one worker fewer and launched none
    assert status == EXIT_IDLE
    after = described(aws)
    assert after["DesiredCapacity"] == 1
    assert len(after["Instances"]) == 1
