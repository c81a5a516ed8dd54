"""bake.yml's AWS smoke test against the local endpoint, up to what it cannot do: run an instance.

The local endpoint launches instances that never boot, so no output ever comes. That is the
case to prove: the throwaway worker was launched from the new AMI as a worker (IMDSv2 only,
terminate on shutdown, the smoke queue and the summary engine, its tags), the run
fails closed when the output does not come, and the worker and the synthetic sample are gone
afterwards. The smoke sample reached the smoke queue, never the work queue.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from capillary.contract.naming import deployment_names
from capillary.local.endpoint import LocalAWS

pytestmark = pytest.mark.integration

PLAYBOOK = "tests/integration/playbooks/bake_smoke_aws.yml"
DEPLOYMENT = "smoke7"


def test_a_smoke_test_without_output_fails_closed_and_cleans_up(
    aws: LocalAWS, playbook, tmp_path: Path
) -> None:
    # GIVEN a deployment's worker profile, work queue and smoke bucket, and a freshly baked AMI
    names = deployment_names(DEPLOYMENT)
    iam = aws.client("iam")
    iam.create_role(RoleName=names.worker_role, AssumeRolePolicyDocument="{}")
    iam.create_instance_profile(InstanceProfileName=names.worker_instance_profile)
    iam.add_role_to_instance_profile(
        InstanceProfileName=names.worker_instance_profile, RoleName=names.worker_role
    )
    sqs = aws.client("sqs")
    work_queue = sqs.create_queue(QueueName=names.work_queue)["QueueUrl"]
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=names.smoke_bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    ec2 = aws.client("ec2")
    builder = ec2.run_instances(ImageId="ami-785db401", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    image = ec2.create_image(InstanceId=builder, Name="capillary-worker-2.3.2")["ImageId"]
    ec2.terminate_instances(InstanceIds=[builder])

    # WHEN the smoke test runs with a short wait (nothing boots here, so nothing answers)
    recap = playbook(
        PLAYBOOK,
        extra_vars={
            "_bake_image_id": image,
            "_bake_run_dir": str(tmp_path),
            "bake_smoke_timeout": 3,
            "bake_smoke_boot_s": 0,
        },
    )

    # THEN it fails at the wait: the caller (bake.yml) never records the image
    assert recap.rc != 0 and recap.failed == 1, recap.tail()
    assert recap.outcomes("Wait for the sample's output") == ["fatal"], recap.tail()

    # AND the throwaway worker was launched from the new AMI as a worker, and is terminated
    smoke = [
        i
        for r in ec2.describe_instances(Filters=[{"Name": "image-id", "Values": [image]}])["Reservations"]
        for i in r["Instances"]
    ]
    assert len(smoke) == 1
    worker = smoke[0]
    assert worker["State"]["Name"] in ("shutting-down", "terminated")
    assert worker["MetadataOptions"]["HttpTokens"] == "required"
    # (the instance profile is not asserted: the local endpoint drops it on termination)
    tags = {t["Key"]: t["Value"] for t in worker["Tags"]}
    assert tags[names.tag_role] == "smoke" and tags[names.tag_release] == "2.3.2"
    assert tags[names.tag_deployment] == DEPLOYMENT
    attribute = ec2.describe_instance_attribute(InstanceId=worker["InstanceId"], Attribute="userData")
    user_data = base64.b64decode(attribute["UserData"]["Value"]).decode()
    smoke_queue = sqs.get_queue_url(QueueName=names.smoke_queue)["QueueUrl"]
    assert "CAPILLARY_QUEUE_URL=%s" in user_data and smoke_queue in user_data
    assert "CAPILLARY_ENGINE=summary" in user_data and work_queue not in user_data
    shutdown = ec2.describe_instance_attribute(
        InstanceId=worker["InstanceId"], Attribute="instanceInitiatedShutdownBehavior"
    )
    assert shutdown["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"

    # AND the synthetic sample went to the smoke queue, never the work queue, and was deleted
    attrs = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    work = sqs.get_queue_attributes(QueueUrl=work_queue, AttributeNames=attrs)["Attributes"]
    assert all(v == "0" for v in work.values())
    queued = sqs.get_queue_attributes(QueueUrl=smoke_queue, AttributeNames=attrs)["Attributes"]
    assert sum(int(v) for v in queued.values()) == 1
    assert s3.list_objects_v2(Bucket=names.smoke_bucket).get("KeyCount", 0) == 0
