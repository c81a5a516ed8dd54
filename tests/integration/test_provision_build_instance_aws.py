"""provision.yml's amazon-ebs build instance steps on their own: the build host's IMDSv2 names the
instance, the controller describes it on the local AWS endpoint and makes it IMDSv2-only, and the
volume at /dev/sdf is what data_volume gets; a missing mapping fails naming the instance, the
device and what is mapped instead, and an instance the controller cannot see fails before that.

The controller stands in for the build host here (the IMDS reads run on it); the Packer test
(test_packer_amazon_ebs.py) runs the same tasks on a separate SSH target through provision.yml.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from capillary.local.endpoint import LocalAWS
from capillary.local.playbook import Recap, run_playbook
from tests.support.imds import LocalIMDS

pytestmark = pytest.mark.integration

PLAYBOOK = "tests/integration/playbooks/provision_build_instance_aws.yml"
# One of the local endpoint's built-in images.
IMAGE = "ami-785db401"
# The root mapping packer/worker.pkr.hcl launches with (the data volume goes at /dev/sdf).
ROOT = {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8, "Encrypted": True}}


@pytest.fixture
def imds() -> Iterator[LocalIMDS]:
    with LocalIMDS() as server:
        yield server


def _launch(aws: LocalAWS, mappings: list[dict[str, Any]]) -> dict[str, Any]:
    ec2 = aws.client("ec2")
    instance_id = ec2.run_instances(
        ImageId=IMAGE, InstanceType="t3.large", MinCount=1, MaxCount=1, BlockDeviceMappings=mappings
    )["Instances"][0]["InstanceId"]
    instance: dict[str, Any] = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0][
        "Instances"
    ][0]
    return instance


def _lookup(aws: LocalAWS, imds: LocalIMDS, find_data_volume: bool = True) -> Recap:
    return run_playbook(
        PLAYBOOK,
        extra_vars={
            "capillary_build_data_volume_device": "/dev/sdf",
            "capillary_build_imds_url": imds.url,
            "capillary_build_aws_region": aws.region,
            "capillary_build_aws_endpoint": aws.endpoint_url,
            "capillary_build_find_data_volume": find_data_volume,
        },
        timeout=300,
    )


def _metadata_options(aws: LocalAWS, instance_id: str) -> dict[str, Any]:
    reservations = aws.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    options: dict[str, Any] = reservations[0]["Instances"][0]["MetadataOptions"]
    return options


def _volume_at(instance: dict[str, Any], device: str) -> str:
    return next(m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"] if m["DeviceName"] == device)


def test_the_volume_attached_at_sdf_is_handed_to_data_volume(aws: LocalAWS, imds: LocalIMDS) -> None:
    # GIVEN a build instance launched with a data volume at /dev/sdf, whose IMDS names it
    instance = _launch(aws, [ROOT, {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 20, "Encrypted": True}}])
    imds.set_metadata("instance-id", instance["InstanceId"])
    data_volume = _volume_at(instance, "/dev/sdf")
    root_volume = _volume_at(instance, "/dev/xvda")

    # WHEN the lookup runs
    recap = _lookup(aws, imds).assert_ok()

    # THEN data_volume gets the /dev/sdf volume's id, not the root volume's
    assert f"data_volume_ebs_volume_id={data_volume}" in recap.stdout
    assert root_volume != data_volume and root_volume not in recap.stdout
    # and the instance id was read the IMDSv2 way: a token first, every read with it
    assert imds.requests == [("PUT", "/latest/api/token"), ("GET", "/latest/meta-data/instance-id")]
    assert imds.rejected == 0
    # and the token never reached the output
    assert imds.tokens and not any(t in recap.stdout + recap.stderr for t in imds.tokens)
    # and the build instance, launched IMDSv1-capable (Packer 1.6.6), now requires IMDSv2
    assert instance["MetadataOptions"]["HttpTokens"] == "optional"
    options = _metadata_options(aws, instance["InstanceId"])
    assert options["HttpTokens"] == "required"
    assert options["HttpPutResponseHopLimit"] == 1
    ec2 = aws.client("ec2")
    after = ec2.describe_instances(InstanceIds=[instance["InstanceId"]])["Reservations"][0]["Instances"][0]
    assert after["State"]["Name"] == "running"


def test_without_data_volume_the_build_instance_still_requires_imdsv2(aws: LocalAWS, imds: LocalIMDS) -> None:
    # GIVEN a build instance with only its root volume (a bake without data_volume)
    instance = _launch(aws, [ROOT])
    imds.set_metadata("instance-id", instance["InstanceId"])
    assert instance["MetadataOptions"]["HttpTokens"] == "optional"

    # WHEN the steps run with no data volume to find
    recap = _lookup(aws, imds, find_data_volume=False).assert_ok()

    # THEN the instance requires IMDSv2, and nothing is handed to data_volume
    assert _metadata_options(aws, instance["InstanceId"])["HttpTokens"] == "required"
    assert "data_volume_ebs_volume_id=(none)" in recap.stdout


def test_no_volume_at_sdf_fails_naming_instance_device_and_mappings(aws: LocalAWS, imds: LocalIMDS) -> None:
    # GIVEN a build instance with only its root volume
    instance = _launch(aws, [ROOT])
    imds.set_metadata("instance-id", instance["InstanceId"])
    root_volume = _volume_at(instance, "/dev/xvda")

    # WHEN the lookup runs
    recap = _lookup(aws, imds)

    # THEN it fails, saying which instance, which device and what is mapped instead
    assert recap.rc != 0 and recap.failed == 1, recap.tail()
    message = " ".join(recap.stdout.split())
    assert re.search(
        rf"build instance {instance['InstanceId']} has no EBS volume at /dev/sdf: its EBS mappings are "
        rf'{{"/dev/xvda": "{root_volume}"}}',
        message,
    ), recap.tail()


def test_an_instance_the_endpoint_does_not_know_fails_clearly(aws: LocalAWS, imds: LocalIMDS) -> None:
    # GIVEN an IMDS naming an instance that is not in the region the lookup describes
    imds.set_metadata("instance-id", "i-0123456789abcdef0")

    # WHEN the lookup runs
    recap = _lookup(aws, imds)

    # THEN it fails saying the instance is not where the controller looked
    assert recap.rc != 0 and recap.failed == 1, recap.tail()
    message = " ".join(recap.stdout.split())
    assert (
        "The build instance i-0123456789abcdef0 (named by the IMDS of localhost) is not in eu-west-1 "
        f"(0 instance(s) described at {aws.endpoint_url})" in message
    ), recap.tail()
