"""What a deployment has in an account, found by its exact names and tags: what `teardown.yml` removes.

Never by name prefix: deployment `prod`'s names are a prefix of deployment `prod-eu`'s, so a prefix
match would reach into the other deployment. Every resource is found by a name
`capillary.contract.naming` gives, by the `capillary:deployment` tag, under the deployment's own
SSM path (`/capillary/<deployment>/`, with its trailing slash), or because one of those parameters
records it (a release's image).

The role runs it on the controller and reads its JSON:

    python -m capillary.controller.teardown --deployment prod [--bucket NAME]

Buckets are counted, not listed: current objects per top-level prefix, older versions and delete
markers (a versioned bucket still holds a deleted sample's bytes until its versions are gone).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from capillary.contract.naming import DeploymentNameError, DeploymentNames, deployment_names

_LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped"]
_OPEN_SPOT_STATES = ["open", "active", "disabled"]
_NOT_FOUND = {
    "404",
    "NoSuchBucket",
    "NoSuchEntity",
    "NotFound",
    "ResourceNotFoundException",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "InvalidParameter",
}


@dataclass
class BucketContents:
    name: str
    exists: bool = False
    objects: int = 0
    noncurrent_versions: int = 0
    delete_markers: int = 0
    by_prefix: dict[str, int] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.objects or self.noncurrent_versions or self.delete_markers)

    def describe(self) -> str:
        """`12 objects (inputs/ 5, outputs/ 7), 3 older versions, 1 delete marker`."""
        parts = [f"{self.objects} object{'s' * (self.objects != 1)}"]
        if self.by_prefix:
            parts[0] += " (" + ", ".join(f"{p} {n}" for p, n in sorted(self.by_prefix.items())) + ")"
        if self.noncurrent_versions:
            parts.append(f"{self.noncurrent_versions} older version{'s' * (self.noncurrent_versions != 1)}")
        if self.delete_markers:
            parts.append(f"{self.delete_markers} delete marker{'s' * (self.delete_markers != 1)}")
        return ", ".join(parts)


@dataclass
class Inventory:
    deployment: str
    bucket: BucketContents
    smoke_bucket: BucketContents
    queues: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    log_groups: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    instance_profiles: list[str] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    instances: list[dict[str, str]] = field(default_factory=list)
    spot_requests: list[str] = field(default_factory=list)
    auto_scaling_groups: list[str] = field(default_factory=list)
    launch_templates: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for which in ("bucket", "smoke_bucket"):
            contents: BucketContents = getattr(self, which)
            out[which]["empty"] = contents.empty
            out[which]["description"] = contents.describe()
        return out


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _missing(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and (_code(exc) in _NOT_FOUND or _code(exc).endswith("NotFound"))


def bucket_contents(s3: Any, bucket: str) -> BucketContents:
    """How much a bucket holds; `exists` False when there is no such bucket."""
    from botocore.exceptions import ClientError

    contents = BucketContents(name=bucket)
    prefixes: Counter[str] = Counter()
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for version in page.get("Versions", []):
                if version.get("IsLatest"):
                    contents.objects += 1
                    top = version["Key"].split("/", 1)
                    prefixes[f"{top[0]}/" if len(top) > 1 else "(top level)"] += 1
                else:
                    contents.noncurrent_versions += 1
            contents.delete_markers += len(page.get("DeleteMarkers", []))
    except ClientError as exc:
        if _missing(exc):
            return contents
        raise
    contents.exists = True
    contents.by_prefix = dict(prefixes)
    return contents


def _exists(call: Any, **kwargs: Any) -> bool:
    try:
        call(**kwargs)
    except Exception as exc:
        if _missing(exc):
            return False
        raise
    return True


def _tag_filter(names: DeploymentNames) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{names.tag_deployment}", "Values": [names.deployment]}]


def inventory(session: Any, names: DeploymentNames) -> Inventory:
    """Every resource of the deployment that exists, as its own API lists it."""
    s3, sqs, sns = session.client("s3"), session.client("sqs"), session.client("sns")
    iam, ssm, ec2 = session.client("iam"), session.client("ssm"), session.client("ec2")
    found = Inventory(
        deployment=names.deployment,
        bucket=bucket_contents(s3, names.bucket),
        smoke_bucket=bucket_contents(s3, names.smoke_bucket),
    )
    queue_names = sorted({getattr(names, f) for f in vars(names) if f.endswith("_queue")})
    found.queues = [q for q in queue_names if _exists(sqs.get_queue_url, QueueName=q)]
    arn_prefix = _arn_prefix(session)
    topic_arn = f"{arn_prefix('sns')}:{names.notify_topic}"
    found.topics = [topic_arn] if _exists(sns.get_topic_attributes, TopicArn=topic_arn) else []
    alarms = session.client("cloudwatch").describe_alarms(AlarmNames=[names.dead_letter_alarm])
    found.alarms = [a["AlarmName"] for a in alarms.get("MetricAlarms", [])]
    lambda_ = session.client("lambda")
    if _exists(lambda_.get_function, FunctionName=names.intake_function):
        found.functions = [names.intake_function]
    log_group = f"/aws/lambda/{names.intake_function}"
    groups = session.client("logs").describe_log_groups(logGroupNamePrefix=log_group).get("logGroups", [])
    found.log_groups = [g["logGroupName"] for g in groups if g["logGroupName"] == log_group]
    found.roles = [r for r in (names.worker_role, names.intake_role) if _exists(iam.get_role, RoleName=r)]
    if _exists(iam.get_instance_profile, InstanceProfileName=names.worker_instance_profile):
        found.instance_profiles = [names.worker_instance_profile]

    parameters: dict[str, str] = {}
    for page in ssm.get_paginator("get_parameters_by_path").paginate(
        Path=names.ssm_prefix, Recursive=True, WithDecryption=False
    ):
        for parameter in page.get("Parameters", []):
            parameters[parameter["Name"]] = parameter.get("Value", "")
    found.parameters = sorted(parameters)
    recorded = {
        v for k, v in parameters.items() if k.startswith(names.ssm_images + "/") and v.startswith("ami-")
    }
    images = ec2.describe_images(Owners=["self"], Filters=_tag_filter(names))["Images"]
    untagged = sorted(recorded - {i["ImageId"] for i in images})
    if untagged:
        images += [i for i in ec2.describe_images(Owners=["self"])["Images"] if i["ImageId"] in untagged]
    found.images = sorted(
        (
            {
                "image_id": i["ImageId"],
                "name": i.get("Name", ""),
                "snapshots": [
                    m["Ebs"]["SnapshotId"]
                    for m in i.get("BlockDeviceMappings", [])
                    if m.get("Ebs", {}).get("SnapshotId")
                ],
            }
            for i in images
        ),
        key=lambda i: i["image_id"],
    )
    reservations = ec2.describe_instances(
        Filters=[*_tag_filter(names), {"Name": "instance-state-name", "Values": _LIVE_INSTANCE_STATES}]
    )["Reservations"]
    found.instances = sorted(
        (
            {
                "instance_id": i["InstanceId"],
                "state": i["State"]["Name"],
                "role": {t["Key"]: t["Value"] for t in i.get("Tags", [])}.get(names.tag_role, ""),
            }
            for r in reservations
            for i in r["Instances"]
        ),
        key=lambda i: i["instance_id"],
    )
    spot = ec2.describe_spot_instance_requests(
        Filters=[*_tag_filter(names), {"Name": "state", "Values": _OPEN_SPOT_STATES}]
    )["SpotInstanceRequests"]
    found.spot_requests = sorted(r["SpotInstanceRequestId"] for r in spot)
    templates = ec2.describe_launch_templates(Filters=_tag_filter(names))["LaunchTemplates"]
    found.launch_templates = sorted(t["LaunchTemplateName"] for t in templates)
    groups_page = session.client("autoscaling").get_paginator("describe_auto_scaling_groups")
    found.auto_scaling_groups = sorted(
        g["AutoScalingGroupName"]
        for page in groups_page.paginate(
            Filters=[{"Name": f"tag:{names.tag_deployment}", "Values": [names.deployment]}]
        )
        for g in page["AutoScalingGroups"]
    )
    return found


def _arn_prefix(session: Any) -> Any:
    identity = session.client("sts").get_caller_identity()
    partition = identity["Arn"].split(":")[1]
    region = session.region_name

    def prefix(service: str) -> str:
        return f"arn:{partition}:{service}:{region}:{identity['Account']}"

    return prefix


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A deployment's resources, as JSON (teardown.yml reads it).")
    parser.add_argument("--deployment", required=True)
    parser.add_argument("--bucket", default="", help="the samples bucket, when intake_bucket_name renamed it")
    args = parser.parse_args(argv)
    try:
        names = deployment_names(args.deployment, args.bucket or None)
    except DeploymentNameError as exc:
        print(f"teardown inventory: {exc}", file=sys.stderr)
        return 2
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        found = inventory(boto3.session.Session(), names)
    except (BotoCoreError, ClientError) as exc:
        print(f"teardown inventory of {args.deployment}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(found.as_dict(), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
