"""A deployment as intake.yml and bake.yml leave it, for tests of what comes after them (up.yml)."""

from __future__ import annotations

from dataclasses import dataclass

from capillary.contract.naming import deployment_names
from capillary.local.endpoint import LocalAWS


@dataclass(frozen=True)
class SeededDeployment:
    image_id: str
    queue_url: str


def seed_worker_deployment(aws: LocalAWS, deployment: str, release: str) -> SeededDeployment:
    """The image registered and recorded in SSM, the worker instance profile, the work queue."""
    names = deployment_names(deployment)
    ec2, ssm, iam, sqs = aws.client("ec2"), aws.client("ssm"), aws.client("iam"), aws.client("sqs")
    # Registered with boto3 and without tags: moto answers ec2_ami with tags with a 500.
    image_id = ec2.register_image(
        Name=f"capillary-{deployment}-{release}",
        RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
    )["ImageId"]
    ssm.put_parameter(Name=names.image_parameter(release), Value=image_id, Type="String")
    iam.create_role(RoleName=names.worker_role, AssumeRolePolicyDocument="{}")
    iam.create_instance_profile(InstanceProfileName=names.worker_instance_profile)
    queue_url = sqs.create_queue(QueueName=names.work_queue)["QueueUrl"]
    return SeededDeployment(image_id=image_id, queue_url=queue_url)
