"""`playbooks/up.yml` and `playbooks/down.yml` on the aws platform, against the local endpoint.

Workers are the release's Auto Scaling group. Assertions read the API's view of what the group
launched (DescribeInstances, DescribeInstanceAttribute, DescribeVolumes, DescribeAutoScalingGroups):
the local endpoint launches a group's instances from its launch template and mixed instances
policy as AWS does (src/capillary/local/endpoint.py), so metadata options, shutdown behaviour,
block devices, market, profile and tags are what the template and the policy say.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from capillary.local.endpoint import LocalAWS, SpotPrice
from tests.support.deployments import seed_worker_deployment

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

DEPLOYMENT = "updown"
RELEASE = "2.3.2"  # in catalogue/pcgr_releases.yml: root 30 GiB, data 80 GiB
TYPES = ["m5.xlarge", "m6i.xlarge", "m5a.xlarge"]
ZONES = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
WORKER_FILTERS = [
    {"Name": "tag:capillary:deployment", "Values": [DEPLOYMENT]},
    {"Name": "tag:capillary:role", "Values": ["worker"]},
]
GROUP = f"capillary-{DEPLOYMENT}-workers-{RELEASE}"


@pytest.fixture
def deployment(aws: LocalAWS) -> dict[str, Any]:
    return seeded_deployment(aws)


def seeded_deployment(aws: LocalAWS) -> dict[str, Any]:
    """What intake and bake leave behind: the image registered and recorded, the worker
    instance profile, the work queue; and a day of spot prices (m6i.xlarge in zone b cheapest)."""
    seeded = seed_worker_deployment(aws, DEPLOYMENT, RELEASE)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    base = {"m5.xlarge": 0.075, "m6i.xlarge": 0.070, "m5a.xlarge": 0.072}
    aws.seed_spot_prices(
        SpotPrice(
            itype,
            zone,
            base[itype] + 0.002 * z - (0.004 if (itype, zone) == ("m6i.xlarge", "eu-west-1b") else 0),
            now - dt.timedelta(hours=h),
        )
        for itype in TYPES
        for z, zone in enumerate(ZONES)
        for h in (30, 12, 2)
    )
    return {"image_id": seeded.image_id, "queue_url": seeded.queue_url}


def up_vars(**overrides: Any) -> dict[str, Any]:
    return {
        "capillary_deployment": DEPLOYMENT,
        "capillary_release": RELEASE,
        "capillary_instance_types": TYPES,
        "capillary_max_workers": 3,
        **overrides,
    }


def workers(
    aws: LocalAWS, states: tuple[str, ...] = ("pending", "running"), client: Any = None
) -> list[dict[str, Any]]:
    pages = (client or aws.client("ec2")).describe_instances(
        Filters=[*WORKER_FILTERS, {"Name": "instance-state-name", "Values": list(states)}]
    )
    return [i for r in pages["Reservations"] for i in r["Instances"]]


def group(aws: LocalAWS, name: str = GROUP) -> dict[str, Any]:
    [found] = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
        "AutoScalingGroups"
    ]
    return dict(found)


def send(aws: LocalAWS, queue_url: str, n: int) -> None:
    sqs = aws.client("sqs")
    for i in range(n):
        sqs.send_message(QueueUrl=queue_url, MessageBody=f'{{"key": "inputs/b-{i:06x}-somatic.tar.gz"}}')


def test_up_launches_the_count_and_a_second_run_launches_none(
    aws: LocalAWS, playbook: Any, deployment: Any
) -> None:
    # GIVEN no workers
    # WHEN up asks for 2 workers, twice
    first = playbook(
        "playbooks/up.yml", extra_vars=up_vars(capillary_workers=2, capillary_event="evt-1")
    ).assert_ok()
    launched = workers(aws)
    second = playbook("playbooks/up.yml", extra_vars=up_vars(capillary_workers=2, capillary_event="evt-2"))

    # THEN the release's group wants 2 and runs 2 spot workers of the best-ranked type, one per zone
    # in the order the zones rank (AWS balances a group over its zones); the second run changed nothing
    assert first.changed == 2, first.tail()  # the launch template, the group
    assert (group(aws)["DesiredCapacity"], group(aws)["MaxSize"], group(aws)["MinSize"]) == (2, 3, 0)
    assert len(launched) == 2
    assert {(i["InstanceType"], i["Placement"]["AvailabilityZone"]) for i in launched} == {
        ("m6i.xlarge", "eu-west-1b"),
        ("m6i.xlarge", "eu-west-1a"),
    }
    second.assert_idempotent()
    assert sorted(i["InstanceId"] for i in workers(aws)) == sorted(i["InstanceId"] for i in launched)
    # AND the run's record names the event and the instances it launched
    assert "evt-1" in first.stdout
    assert all(i["InstanceId"] in first.stdout for i in launched)
    # AND the cheap second run never touched the launch settings
    assert second.outcomes(
        "Create the worker group or scale it out, from the release's image and the ranked spot pools"
    ) == ["skipping"]


def test_every_worker_is_hardened_tagged_and_spot(aws: LocalAWS, playbook: Any, deployment: Any) -> None:
    playbook(
        "playbooks/up.yml", extra_vars=up_vars(capillary_workers=1, capillary_event="evt-harden")
    ).assert_ok()
    ec2 = aws.client("ec2")
    [worker] = workers(aws)
    iid = worker["InstanceId"]

    # IMDSv2 only, hop limit 1; its tags readable from IMDS (the worker reads its group there)
    assert worker["MetadataOptions"]["HttpTokens"] == "required"
    assert worker["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    assert worker["MetadataOptions"]["InstanceMetadataTags"] == "enabled"
    # a spot instance, from the release's image, with the worker profile
    assert worker["InstanceLifecycle"] == "spot"
    assert worker["ImageId"] == deployment["image_id"]
    assert worker["IamInstanceProfile"]["Arn"].endswith(f"instance-profile/capillary-{DEPLOYMENT}-worker")
    # a shutdown from inside terminates it (a one-time spot instance cannot stop)
    shutdown = ec2.describe_instance_attribute(InstanceId=iid, Attribute="instanceInitiatedShutdownBehavior")
    assert shutdown["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"
    # root and data volumes encrypted, sized from the release catalogue, tagged
    volumes = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [iid]}])["Volumes"]
    by_device = {v["Attachments"][0]["Device"]: v for v in volumes}
    root = ec2.describe_images(ImageIds=[deployment["image_id"]])["Images"][0]["RootDeviceName"]
    assert set(by_device) == {root, "/dev/sdf"}
    assert (by_device[root]["Size"], by_device[root]["Encrypted"]) == (30, True)
    assert (by_device["/dev/sdf"]["Size"], by_device["/dev/sdf"]["Encrypted"]) == (80, True)
    assert all({"Key": "capillary:deployment", "Value": DEPLOYMENT} in v["Tags"] for v in volumes)
    # the tags that find it, audit it and name it; its group's
    tags = {t["Key"]: t["Value"] for t in worker["Tags"]}
    assert tags["capillary:deployment"] == DEPLOYMENT
    assert tags["capillary:release"] == RELEASE
    assert tags["capillary:event"] == "evt-harden"
    assert tags["capillary:role"] == "worker"
    assert tags["Name"] == f"capillary-{DEPLOYMENT}-worker"
    assert tags["aws:autoscaling:groupName"] == GROUP
    # user data points at SSM and carries nothing secret
    raw = ec2.describe_instance_attribute(InstanceId=iid, Attribute="userData")["UserData"]["Value"]
    user_data = base64.b64decode(raw).decode()
    assert f"CAPILLARY_SSM_CONFIG=/capillary/{DEPLOYMENT}/config" in user_data
    assert "secret" not in user_data.lower() or "nothing secret" in user_data.lower()
    assert "/secrets" not in user_data
    # the group: protected from scale-in, spot only above no on-demand base, AWS's allocation
    # strategy, never rebalancing past the cap, found by its tags
    asg = group(aws)
    assert asg["NewInstancesProtectedFromScaleIn"] is True
    assert [i["ProtectedFromScaleIn"] for i in asg["Instances"]] == [True]
    distribution = asg["MixedInstancesPolicy"]["InstancesDistribution"]
    assert distribution["OnDemandBaseCapacity"] == 0
    assert distribution["OnDemandPercentageAboveBaseCapacity"] == 0
    assert distribution["SpotAllocationStrategy"] == "price-capacity-optimized"
    assert asg["CapacityRebalance"] is False
    overrides = [o["InstanceType"] for o in asg["MixedInstancesPolicy"]["LaunchTemplate"]["Overrides"]]
    assert overrides[0] == "m6i.xlarge" and set(overrides) == set(TYPES)
    group_tags = {t["Key"]: t["Value"] for t in asg["Tags"]}
    assert group_tags["capillary:deployment"] == DEPLOYMENT
    assert group_tags["capillary:role"] == "worker"
    # the launch template holds no shutdown behaviour: Auto Scaling does not take one
    data = ec2.describe_launch_template_versions(LaunchTemplateName=GROUP, Versions=["$Default"])[
        "LaunchTemplateVersions"
    ][0]["LaunchTemplateData"]
    assert "InstanceInitiatedShutdownBehavior" not in data
    assert "InstanceMarketOptions" not in data  # spot comes from the group's policy


def test_up_from_the_queue_scales_out_to_the_cap(aws: LocalAWS, playbook: Any, deployment: Any) -> None:
    # GIVEN one message waiting
    send(aws, deployment["queue_url"], 1)
    playbook("playbooks/up.yml", extra_vars=up_vars()).assert_ok()
    assert len(workers(aws)) == 1

    # WHEN nine more arrive (two samples per worker would want 5) and up runs again
    send(aws, deployment["queue_url"], 9)
    again = playbook("playbooks/up.yml", extra_vars=up_vars(capillary_samples_per_worker=2)).assert_ok()

    # THEN it scales out to the cap of 3, launching only the 2 missing
    assert again.changed == 1, again.tail()
    assert len(workers(aws)) == 3


def test_check_mode_launches_nothing(aws: LocalAWS, playbook: Any, deployment: Any) -> None:
    recap = playbook("playbooks/up.yml", extra_vars=up_vars(capillary_workers=2), check=True).assert_ok()
    assert recap.changed == 2, recap.tail()  # the template and the group it would write
    assert workers(aws, ("pending", "running", "stopped", "terminated")) == []
    assert aws.client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"] == []


def test_no_spot_pool_under_the_cap_falls_back_to_on_demand(
    aws: LocalAWS, playbook: Any, deployment: Any
) -> None:
    playbook(
        "playbooks/up.yml", extra_vars=up_vars(capillary_workers=1, capillary_spot_max_price=0.01)
    ).assert_ok()
    [worker] = workers(aws)
    assert "InstanceLifecycle" not in worker  # on-demand
    assert worker["MetadataOptions"]["HttpTokens"] == "required"
    distribution = group(aws)["MixedInstancesPolicy"]["InstancesDistribution"]
    assert distribution["OnDemandPercentageAboveBaseCapacity"] == 100


def test_no_spot_pool_under_the_cap_and_no_fallback_fails_clearly(
    aws: LocalAWS, playbook: Any, deployment: Any
) -> None:
    recap = playbook(
        "playbooks/up.yml",
        extra_vars=up_vars(
            capillary_workers=1, capillary_spot_max_price=0.01, capillary_on_demand_fallback=False
        ),
    )
    assert recap.rc != 0
    assert "above the cap of 0.01" in recap.stdout
    assert workers(aws) == []


def test_up_without_a_baked_image_names_the_parameter(aws: LocalAWS, playbook: Any, deployment: Any) -> None:
    recap = playbook("playbooks/up.yml", extra_vars=up_vars(capillary_workers=1, capillary_release="9.9.9"))
    assert recap.rc != 0
    assert f"/capillary/{DEPLOYMENT}/images/9.9.9 is missing" in recap.stdout


def test_down_terminates_every_worker_cancels_spot_requests_and_leaves_data(
    aws: LocalAWS, playbook: Any, deployment: Any
) -> None:
    # GIVEN 2 workers, an open spot request of the deployment, a sample in the bucket and a message
    playbook("playbooks/up.yml", extra_vars=up_vars(capillary_workers=2)).assert_ok()
    ec2, s3 = aws.client("ec2"), aws.client("s3")
    request = ec2.request_spot_instances(
        InstanceCount=1,
        LaunchSpecification={"ImageId": deployment["image_id"], "InstanceType": "m5.xlarge"},
        TagSpecifications=[
            {
                "ResourceType": "spot-instances-request",
                "Tags": [{"Key": "capillary:deployment", "Value": DEPLOYMENT}],
            }
        ],
    )["SpotInstanceRequests"][0]["SpotInstanceRequestId"]
    s3.create_bucket(
        Bucket=f"capillary-{DEPLOYMENT}-samples",
        CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
    )
    s3.put_object(Bucket=f"capillary-{DEPLOYMENT}-samples", Key="inputs/b-000001-somatic.tar.gz", Body=b"x")
    send(aws, deployment["queue_url"], 1)

    # WHEN down runs twice
    first = playbook("playbooks/down.yml", extra_vars={"capillary_deployment": DEPLOYMENT}).assert_ok()
    second = playbook("playbooks/down.yml", extra_vars={"capillary_deployment": DEPLOYMENT})

    # THEN nothing of the deployment runs, its group is closed, the request is cancelled, the data
    # is untouched
    assert first.changed == 2, first.tail()  # the group closed, the spot request cancelled
    assert (group(aws)["MinSize"], group(aws)["MaxSize"], group(aws)["DesiredCapacity"]) == (0, 0, 0)
    second.assert_idempotent()
    assert workers(aws, ("pending", "running", "stopping", "stopped")) == []
    # (moto forgets a cancelled request; AWS lists it as cancelled)
    left = [
        r
        for r in ec2.describe_spot_instance_requests()["SpotInstanceRequests"]
        if r["SpotInstanceRequestId"] == request
    ]
    assert all(r["State"] == "cancelled" for r in left)
    assert request in first.stdout
    assert s3.list_objects_v2(Bucket=f"capillary-{DEPLOYMENT}-samples")["KeyCount"] == 1
    attrs = aws.client("sqs").get_queue_attributes(
        QueueUrl=deployment["queue_url"], AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "1"


def test_down_only_idle_keeps_what_the_queue_still_needs(
    aws: LocalAWS, playbook: Any, deployment: Any
) -> None:
    # GIVEN 3 workers and one message left
    playbook("playbooks/up.yml", extra_vars=up_vars(capillary_workers=3)).assert_ok()
    send(aws, deployment["queue_url"], 1)

    # WHEN down runs for idle workers only, twice
    playbook(
        "playbooks/down.yml",
        extra_vars={"capillary_deployment": DEPLOYMENT, "capillary_down_only_idle": True},
    ).assert_ok()
    again = playbook(
        "playbooks/down.yml",
        extra_vars={"capillary_deployment": DEPLOYMENT, "capillary_down_only_idle": True},
    )

    # THEN one worker stays for the message, the group wants one, and the second run changes nothing
    assert len(workers(aws)) == 1
    assert group(aws)["DesiredCapacity"] == 1
    again.assert_idempotent()


def test_another_deployments_workers_are_neither_counted_nor_touched(
    aws: LocalAWS, playbook: Any, deployment: Any
) -> None:
    # GIVEN a running instance tagged for another deployment
    other = aws.client("ec2").run_instances(
        ImageId=deployment["image_id"],
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [
                    {"Key": "capillary:deployment", "Value": "other"},
                    {"Key": "capillary:role", "Value": "worker"},
                ],
            }
        ],
    )["Instances"][0]["InstanceId"]

    playbook("playbooks/up.yml", extra_vars=up_vars(capillary_workers=1)).assert_ok()
    playbook("playbooks/down.yml", extra_vars={"capillary_deployment": DEPLOYMENT}).assert_ok()

    state = aws.client("ec2").describe_instances(InstanceIds=[other])["Reservations"][0]["Instances"][0][
        "State"
    ]
    assert state["Name"] == "running"


def test_the_aws_inventory_lists_workers_by_id_grouped_by_our_tags(
    aws: LocalAWS, playbook: Any, deployment: Any
) -> None:
    # GIVEN two workers launched by up
    playbook("playbooks/up.yml", extra_vars=up_vars(capillary_workers=2)).assert_ok()
    ids = sorted(i["InstanceId"] for i in workers(aws))

    # WHEN the inventory plugin reads the local endpoint
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-inventory"),
            "-i",
            "inventories/aws/aws_ec2.yml",
            "--list",
        ],
        cwd=REPO,
        env={**os.environ, **aws.env, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    # THEN the hosts are the instance ids, in groups keyed on our tags, reached by instance id
    assert proc.returncode == 0, proc.stderr
    inventory = json.loads(proc.stdout)
    assert sorted(inventory["capillary_deployment_updown"]["hosts"]) == ids
    assert sorted(inventory["capillary_role_worker"]["hosts"]) == ids
    assert sorted(inventory["capillary_spot"]["hosts"]) == ids
    hostvars = inventory["_meta"]["hostvars"]
    for iid in ids:
        assert plain(hostvars[iid]["ansible_aws_ssm_instance_id"]) == iid
        assert plain(hostvars[iid]["capillary_release"]) == RELEASE
        assert plain(hostvars[iid]["ansible_aws_ssm_region"]) == "eu-west-1"


def plain(value: Any) -> Any:
    """ansible-inventory --list marks values from the API as unsafe: {"__ansible_unsafe": v}."""
    return value["__ansible_unsafe"] if isinstance(value, dict) and "__ansible_unsafe" in value else value


LOCAL_DEPLOYMENT = "updlocal"
LOCAL_RELEASE = "updtest"
CONTAINERS_CONF = str(REPO / "inventories/local/containers.conf")


def podman(*args: str, check: bool = True) -> str:
    env = {**os.environ, "CONTAINERS_CONF": CONTAINERS_CONF}
    proc = subprocess.run(
        ["podman", *args], env=env, capture_output=True, text=True, timeout=300, check=check
    )
    return proc.stdout


def local_workers() -> list[str]:
    names = podman("ps", "--filter", f"name=^capillary-{LOCAL_DEPLOYMENT}-worker-", "--format", "{{.Names}}")
    return sorted(names.split())


@pytest.fixture
def local_image() -> Any:
    """The base image tagged as the release's local worker image; removed with the workers after."""
    podman("tag", "localhost/capillary-bookworm:latest", f"localhost/capillary-worker:{LOCAL_RELEASE}")
    yield
    for name in podman(
        "ps", "-a", "--filter", f"name=^capillary-{LOCAL_DEPLOYMENT}-worker-", "--format", "{{.Names}}"
    ).split():
        podman("rm", "-f", "-t", "0", name, check=False)
    podman(
        "untag",
        "localhost/capillary-bookworm:latest",
        f"localhost/capillary-worker:{LOCAL_RELEASE}",
        check=False,
    )


@pytest.mark.containers
def test_local_platform_starts_counts_and_removes_worker_containers(
    aws: LocalAWS, playbook: Any, local_image: Any, tmp_path: Path
) -> None:
    up = {
        # A run directory of this test's own, so a re-run of the test starts from nothing too.
        "capillary_local_run_dir": str(tmp_path / "run"),
        "capillary_platform": "local",
        "capillary_deployment": LOCAL_DEPLOYMENT,
        "capillary_release": LOCAL_RELEASE,
        "capillary_workers": 2,
        "capillary_event": "evt-local",
    }
    env = {"CONTAINERS_CONF": CONTAINERS_CONF}

    # WHEN up runs twice for 2 workers
    first = playbook("playbooks/up.yml", extra_vars=up, env=env).assert_ok()
    second = playbook("playbooks/up.yml", extra_vars=up, env=env)

    # THEN 2 containers run, labelled, on the host network, and the second run changed nothing
    assert first.changed == 3, first.tail()  # run directory, launch environment, the workers
    second.assert_idempotent()
    names = local_workers()
    assert names == [f"capillary-{LOCAL_DEPLOYMENT}-worker-1", f"capillary-{LOCAL_DEPLOYMENT}-worker-2"]
    [inspect] = json.loads(podman("inspect", names[0]))
    assert inspect["Config"]["Labels"]["capillary:event"] == "evt-local"
    assert inspect["HostConfig"]["NetworkMode"] == "host"
    assert "SYS_ADMIN" in " ".join(inspect["EffectiveCaps"] or [])
    # The unit reads /etc/capillary/launch.env (the local stand-in for user-data): the endpoint
    # and where the deployment's settings are, nothing else.
    mounts = {m["Destination"]: m["Source"] for m in inspect["Mounts"]}
    launch_env = Path(mounts["/etc/capillary/launch.env"]).read_text().splitlines()
    assert f"AWS_ENDPOINT_URL={aws.endpoint_url}" in launch_env
    assert f"CAPILLARY_SSM_CONFIG=/capillary/{LOCAL_DEPLOYMENT}/config" in launch_env

    # WHEN down runs twice
    down = {
        "capillary_platform": "local",
        "capillary_deployment": LOCAL_DEPLOYMENT,
        "capillary_local_run_dir": up["capillary_local_run_dir"],
    }
    playbook("playbooks/down.yml", extra_vars=down, env=env).assert_ok()
    playbook("playbooks/down.yml", extra_vars=down, env=env).assert_idempotent()

    # THEN no worker container is left
    assert local_workers() == []
