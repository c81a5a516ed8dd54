"""playbooks/teardown.yml against the local endpoint: a deployment as intake, bake and up leave it,
then nothing of it from the API's view, and a re-run that changes nothing.

"Nothing left" is read from each service's own listing, for every resource type the deployment's
playbooks create, by name and by tag; never through the role's own inventory
(capillary.controller.teardown), which would only agree with itself.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from capillary.contract.naming import deployment_names
from capillary.local.endpoint import LocalAWS, SpotPrice
from capillary.local.playbook import Recap

pytestmark = pytest.mark.integration

DEPLOYMENT = "tdown"
NEIGHBOUR = "tdown-eu"  # its names start with this deployment's: nothing of it may go
NAMES = deployment_names(DEPLOYMENT)
RELEASE = "2.3.2"
PLAYBOOK = "playbooks/teardown.yml"
WORDS = f"yes, delete all samples of {DEPLOYMENT}"
INTAKE = {"capillary_deployment": DEPLOYMENT, "intake_platform": "aws", "intake_bucket_require_tls": False}


def left(aws: LocalAWS, deployment: str = DEPLOYMENT) -> dict[str, list[str]]:
    """What of `deployment` the APIs still list (terminated instances are gone from AWS's view)."""
    names = deployment_names(deployment)
    mine = f"capillary-{deployment}-"
    tag = [{"Name": f"tag:{names.tag_deployment}", "Values": [deployment]}]
    ec2, iam, s3 = aws.client("ec2"), aws.client("iam"), aws.client("s3")

    def own(found: list[str]) -> list[str]:
        return sorted(n for n in found if n.startswith(mine) and not n.startswith(f"{mine}eu-"))

    instances = [
        i["InstanceId"]
        for r in ec2.describe_instances(Filters=tag)["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] not in ("terminated", "shutting-down")
    ]
    queues = [u.rsplit("/", 1)[1] for u in aws.client("sqs").list_queues().get("QueueUrls", [])]
    topics = [t["TopicArn"].rsplit(":", 1)[1] for t in aws.client("sns").list_topics()["Topics"]]
    groups = aws.client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
    return {
        "buckets": own([b["Name"] for b in s3.list_buckets()["Buckets"]]),
        "queues": own(queues),
        "topics": own(topics),
        "functions": own([f["FunctionName"] for f in aws.client("lambda").list_functions()["Functions"]]),
        "log groups": sorted(
            g["logGroupName"]
            for g in aws.client("logs").describe_log_groups()["logGroups"]
            if g["logGroupName"].startswith(f"/aws/lambda/{mine}") and deployment != NEIGHBOUR
        ),
        "alarms": own([a["AlarmName"] for a in aws.client("cloudwatch").describe_alarms()["MetricAlarms"]]),
        "roles": own([r["RoleName"] for r in iam.list_roles()["Roles"]]),
        "instance profiles": own(
            [p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]]
        ),
        "parameters": sorted(
            p["Name"]
            for p in aws.client("ssm").describe_parameters(MaxResults=50)["Parameters"]
            if p["Name"].startswith(f"{names.ssm_prefix}/")
        ),
        "images": sorted(i["ImageId"] for i in ec2.describe_images(Owners=["self"], Filters=tag)["Images"]),
        "snapshots": sorted(
            s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"], Filters=tag)["Snapshots"]
        ),
        "instances": sorted(instances),
        "spot requests": sorted(
            r["SpotInstanceRequestId"]
            for r in ec2.describe_spot_instance_requests(Filters=tag)["SpotInstanceRequests"]
            if r["State"] in ("open", "active", "disabled")
        ),
        "launch templates": sorted(
            t["LaunchTemplateName"] for t in ec2.describe_launch_templates(Filters=tag)["LaunchTemplates"]
        ),
        "auto scaling groups": sorted(
            g["AutoScalingGroupName"]
            for g in groups
            if {"Key": names.tag_deployment, "Value": deployment}
            in [{k: t[k] for k in ("Key", "Value")} for t in g.get("Tags", [])]
        ),
    }


def _bake_record(aws: LocalAWS, playbook: Any, tmp: Any) -> str:
    """An AMI as Packer leaves it (tagged, with a snapshot), recorded by bake.yml's record step."""
    ec2 = aws.client("ec2")
    builder = ec2.run_instances(ImageId="ami-785db401", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    image: str = ec2.create_image(InstanceId=builder, Name=f"capillary-worker-{RELEASE}")["ImageId"]
    snapshots = [
        m["Ebs"]["SnapshotId"]
        for m in ec2.describe_images(ImageIds=[image])["Images"][0]["BlockDeviceMappings"]
    ]
    ec2.create_tags(Resources=[image, *snapshots], Tags=[{"Key": NAMES.tag_deployment, "Value": DEPLOYMENT}])
    ec2.terminate_instances(InstanceIds=[builder])
    # The smoke test's bucket and queue, as smoke.yml creates them (its worker cannot boot here).
    aws.client("s3").create_bucket(
        Bucket=NAMES.smoke_bucket, CreateBucketConfiguration={"LocationConstraint": aws.region}
    )
    aws.client("sqs").create_queue(QueueName=NAMES.smoke_queue)
    playbook(
        "playbooks/bake.yml",
        extra_vars={
            "capillary_deployment": DEPLOYMENT,
            "capillary_platform": "aws",
            "capillary_release": RELEASE,
            "_bake_image_id": image,
            "_bake_version": RELEASE,
            "_bake_commit": "0123456789ab",
            "_bake_release": {"version": RELEASE, "current": True},
        },
        tags=["bake_record"],
    ).assert_ok()
    return image


def _neighbour(aws: LocalAWS) -> None:
    """A deployment whose names start with this one's: teardown must leave it whole."""
    names = deployment_names(NEIGHBOUR)
    aws.client("s3").create_bucket(
        Bucket=names.bucket, CreateBucketConfiguration={"LocationConstraint": aws.region}
    )
    aws.client("sqs").create_queue(QueueName=names.work_queue)
    aws.client("ssm").put_parameter(Name=f"{names.ssm_config}/bucket", Value=names.bucket, Type="String")
    aws.client("iam").create_role(RoleName=names.worker_role, AssumeRolePolicyDocument="{}")


def test_teardown_removes_everything_a_deployment_created_and_re_runs_clean(
    aws: LocalAWS, playbook: Any, tmp_path: Any
) -> None:
    # GIVEN a deployment: intake (the AWS layout), a baked image recorded, workers up, samples in
    # its bucket, and a neighbour deployment named like it
    playbook("playbooks/intake.yml", extra_vars=INTAKE).assert_ok()
    image = _bake_record(aws, playbook, tmp_path)
    now = dt.datetime.now(dt.UTC)
    aws.seed_spot_prices(
        SpotPrice(t, z, 0.07, now - dt.timedelta(hours=h))
        for t in ("m5.xlarge", "m6i.xlarge")
        for z in ("eu-west-1a", "eu-west-1b")
        for h in (30, 2)
    )
    playbook(
        "playbooks/up.yml",
        extra_vars={
            "capillary_deployment": DEPLOYMENT,
            "capillary_release": RELEASE,
            "capillary_workers": 2,
            "capillary_instance_types": ["m5.xlarge", "m6i.xlarge"],
        },
    ).assert_ok()
    s3 = aws.client("s3")
    for key in ("inputs/c-abc123-somatic.tar.gz", "outputs/c-abc123-somatic-output.tar.gz"):
        s3.put_object(Bucket=NAMES.bucket, Key=key, Body=b"sample data")
    s3.delete_object(Bucket=NAMES.bucket, Key="outputs/c-abc123-somatic-output.tar.gz")  # a version stays
    _neighbour(aws)
    before = left(aws)
    neighbour = left(aws, NEIGHBOUR)
    assert all(
        before[kind]
        for kind in (
            "buckets",
            "queues",
            "topics",
            "functions",
            "alarms",
            "roles",
            "instance profiles",
            "parameters",
            "images",
            "instances",
        )
    )
    assert image in before["images"] and len(before["instances"]) == 2

    # WHEN it is torn down in check mode THEN it says what would go and nothing goes
    check = playbook(
        PLAYBOOK,
        extra_vars={"capillary_deployment": DEPLOYMENT, "capillary_teardown_delete_sample_data": WORDS},
        check=True,
    )
    check.assert_ok()
    assert check.changed > 0 and left(aws) == before

    # WHEN it is torn down without the words THEN it stops before removing anything, saying why
    refused = playbook(PLAYBOOK, extra_vars={"capillary_deployment": DEPLOYMENT})
    _assert_refused(refused)
    wrong = playbook(
        PLAYBOOK,
        extra_vars={"capillary_deployment": DEPLOYMENT, "capillary_teardown_delete_sample_data": "yes"},
    )
    _assert_refused(wrong)
    assert 'teardown_delete_sample_data is "yes", not the phrase' in " ".join(wrong.stdout.split())
    assert left(aws) == before

    # WHEN it is torn down with them THEN nothing of the deployment is left, and its neighbour is whole
    playbook(
        PLAYBOOK,
        extra_vars={"capillary_deployment": DEPLOYMENT, "capillary_teardown_delete_sample_data": WORDS},
    ).assert_ok()
    assert left(aws) == {kind: [] for kind in before}
    assert left(aws, NEIGHBOUR) == neighbour

    # WHEN it runs again THEN it finds nothing and changes nothing
    playbook(PLAYBOOK, extra_vars={"capillary_deployment": DEPLOYMENT}).assert_idempotent()


def _assert_refused(recap: Recap) -> None:
    assert recap.rc != 0 and recap.failed == 1, recap.tail()
    assert recap.outcomes("Refuse to delete sample data unless told in so many words") == ["fatal"]
    message = " ".join(recap.stdout.partition("fatal:")[2].partition("PLAY RECAP")[0].split())
    assert f"s3://{NAMES.bucket} holds 1 object (inputs/ 1), 1 older version, 1 delete marker" in message, (
        message
    )
    assert f'capillary_teardown_delete_sample_data="{WORDS}"' in message and "nothing was removed" in message


def test_teardown_keeps_the_bucket_when_told_and_stops_its_notifications(
    aws: LocalAWS, playbook: Any
) -> None:
    # GIVEN a deployment's bucket holding a sample, its queues and parameters (the local layout)
    playbook(
        "playbooks/intake.yml", extra_vars={"capillary_deployment": DEPLOYMENT, "intake_platform": "local"}
    ).assert_ok()
    s3 = aws.client("s3")
    s3.put_object(Bucket=NAMES.bucket, Key="inputs/k-abc123-somatic.tar.gz", Body=b"sample data")
    # WHEN torn down keeping the bucket
    playbook(
        PLAYBOOK, extra_vars={"capillary_deployment": DEPLOYMENT, "capillary_teardown_keep_bucket": True}
    ).assert_ok()
    # THEN the bucket and its sample stay, notifying nothing; everything else is gone
    remaining = left(aws)
    assert remaining.pop("buckets") == [NAMES.bucket]
    assert remaining == {kind: [] for kind in remaining}
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=NAMES.bucket)["Contents"]] == [
        "inputs/k-abc123-somatic.tar.gz"
    ]
    notifications = s3.get_bucket_notification_configuration(Bucket=NAMES.bucket)
    assert not notifications.get("QueueConfigurations") and not notifications.get(
        "LambdaFunctionConfigurations"
    )
