"""Keep-N: a deployment's AMIs beyond the newest N are deregistered with their snapshots, never
the image just baked nor one recorded in SSM."""

from __future__ import annotations

import time

import pytest

from capillary.local.endpoint import LocalAWS

pytestmark = pytest.mark.integration

PLAYBOOK = "tests/integration/playbooks/bake_prune_aws.yml"


def _ami(aws: LocalAWS, name: str, deployment: str) -> tuple[str, str]:
    ec2 = aws.client("ec2")
    instance = ec2.run_instances(ImageId="ami-785db401", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    image = ec2.create_image(InstanceId=instance, Name=name)["ImageId"]
    ec2.create_tags(Resources=[image], Tags=[{"Key": "capillary:deployment", "Value": deployment}])
    ec2.terminate_instances(InstanceIds=[instance])
    snapshot = ec2.describe_images(ImageIds=[image])["Images"][0]["BlockDeviceMappings"][0]["Ebs"][
        "SnapshotId"
    ]
    return image, snapshot


def test_prune_keeps_newest_recorded_and_current(aws: LocalAWS, playbook) -> None:
    # GIVEN five AMIs of the deployment (oldest first), one of another deployment, and the
    # oldest recorded in SSM as a release's image
    amis = []
    for i in range(5):
        amis.append(_ami(aws, f"capillary-worker-{i}", "prune7"))
        time.sleep(1.1)  # creation dates have a one-second resolution
    other, _ = _ami(aws, "capillary-worker-other", "elsewhere")
    aws.client("ssm").put_parameter(Name="/capillary/prune7/images/2.2.5", Value=amis[0][0], Type="String")

    # WHEN keep-2 pruning runs after a bake of the second-oldest image
    playbook(PLAYBOOK, extra_vars={"_bake_image_id": amis[1][0]}).assert_ok()

    # THEN the two newest, the recorded one and the just-baked one remain; the rest are gone with
    # their snapshots; the other deployment's image is untouched
    ec2 = aws.client("ec2")
    left = {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}
    assert {amis[0][0], amis[1][0], amis[3][0], amis[4][0], other} <= left
    assert amis[2][0] not in left
    snapshots = {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    assert amis[2][1] not in snapshots and amis[3][1] in snapshots
