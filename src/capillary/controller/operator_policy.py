"""The IAM permissions an operator needs to run each playbook, scoped to one deployment's names.

One document per playbook (`intake`, `mirror_refdata`, `bake`, `workers` for up.yml and down.yml,
`teardown`) and one for the CLI (`operate`: `capillary submit` and `capillary status`), so a
centre grants only what a person or a pipeline runs, and each fits IAM's managed-policy size.
Every statement names its actions (never `*`) and, where the service allows it, the deployment's
own resources by exact name: `capillary-prod-*` would also match deployment `prod-eu`'s
`capillary-prod-eu-work`, so no resource here ends in a wildcard after the deployment's name,
except under the deployment's own SSM path (`/capillary/prod/*`, slash included). What a service
cannot scope by resource (EC2's Describe calls, `sns:ListTopics`, `ssm:DescribeParameters`) gets
`"Resource": "*"` with the reason; what changes instances is conditioned on the
`capillary:deployment` tag.

Each statement says why it is there and which task fails without it (`needed_by`): the tests run
every playbook against the local endpoint with IAM enforcement on and only its document attached,
and remove each statement in turn (tests/integration/test_operator_policy.py). A statement the
local endpoint cannot exercise (Packer's own calls, `iam:PassRole`, which moto does not check, a
customer-managed KMS key) says so in `local`.

    capillary operator-policy --deployment prod --account 123456789012 --region eu-west-1 --playbook intake

writes the real documents; `docs/iam/` holds them for deployment `example`, and a test keeps them
equal to this module's output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from capillary.contract.naming import DeploymentNames, deployment_names

VERSION = "2012-10-17"
# IAM's limit for a customer-managed policy, counted without whitespace.
MANAGED_POLICY_MAX_CHARS = 6144
_ACCOUNT = re.compile(r"^\d{12}$")


class PolicyError(ValueError):
    """An account, region or partition an ARN cannot be built from."""


@dataclass(frozen=True)
class Scope:
    """Where the deployment lives: its names, account, region and partition."""

    deployment: str
    account: str
    region: str
    partition: str = "aws"
    bucket: str | None = None

    def __post_init__(self) -> None:
        if not _ACCOUNT.match(self.account):
            raise PolicyError(f"account {self.account!r}: expected the 12-digit AWS account id")
        if not re.match(r"^[a-z]{2}(?:-[a-z0-9]+)+-\d{1,2}$", self.region):
            raise PolicyError(f"region {self.region!r}: not an AWS region name (e.g. eu-west-1)")
        if self.partition not in ("aws", "aws-cn", "aws-us-gov"):
            raise PolicyError(f"partition {self.partition!r}: one of aws, aws-cn, aws-us-gov")

    @property
    def names(self) -> DeploymentNames:
        return deployment_names(self.deployment, self.bucket)

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return (
            f"arn:{self.partition}:{service}:{self.region if region else ''}:"
            f"{self.account if account else ''}:{resource}"
        )

    def bucket_arn(self, bucket: str, key: str = "") -> str:
        return f"arn:{self.partition}:s3:::{bucket}{'/' + key if key else ''}"

    def queue(self, name: str) -> str:
        return self.arn("sqs", name)

    def parameters(self, below: str = "") -> str:
        """The deployment's SSM parameters (`/capillary/<d>/*`), or those below one of its paths."""
        return self.arn("ssm", f"parameter{below or self.names.ssm_prefix}/*")

    def role(self, name: str) -> str:
        return self.arn("iam", f"role/{name}", region=False)

    def instance_profile(self, name: str) -> str:
        return self.arn("iam", f"instance-profile/{name}", region=False)

    def ec2(self, resource: str, *, account: bool = True) -> str:
        return self.arn("ec2", resource, account=account)

    @property
    def tagged(self) -> dict[str, Any]:
        """Only resources carrying the deployment's tag."""
        return {"StringEquals": {f"aws:ResourceTag/{self.names.tag_deployment}": self.deployment}}

    @property
    def tagging_on_create(self) -> dict[str, Any]:
        """Only resources created with the deployment's tag."""
        return {"StringEquals": {f"aws:RequestTag/{self.names.tag_deployment}": self.deployment}}


@dataclass(frozen=True)
class Grant:
    """One statement: what it allows, why, and which task fails without it."""

    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    why: str
    needed_by: str = ""
    condition: Mapping[str, Any] | None = None
    # Empty: the tests exercise it against the local endpoint. Otherwise why they cannot.
    local: str = ""

    def statement(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Sid": self.sid,
            "Effect": "Allow",
            "Action": sorted(self.actions),
            "Resource": list(self.resources) if len(self.resources) > 1 else self.resources[0],
        }
        if self.condition:
            out["Condition"] = dict(self.condition)
        return out


PACKER_ONLY = (
    "Packer's own calls during the amazon-ebs build (tests/integration/test_packer_amazon_ebs.py "
    "builds against the local endpoint, without IAM enforcement)"
)
DESCRIBE_PARAMETERS = (
    "community.aws.ssm_parameter compares a parameter's description (DescribeParameters takes no resource)"
)
NO_PASSROLE = "moto does not check iam:PassRole"
ANY = ("*",)


# --- Shared pieces -------------------------------------------------------------------------------


def _bucket_admin(scope: Scope, sid: str, bucket: str, needed_by: str, why: str) -> Grant:
    """What amazon.aws.s3_bucket reads and writes to keep a bucket private, encrypted, tagged."""
    return Grant(
        sid,
        (
            "s3:CreateBucket",
            "s3:ListBucket",
            "s3:GetBucketLocation",
            "s3:GetBucketAcl",
            "s3:GetBucketPolicy",
            "s3:PutBucketPolicy",
            "s3:DeleteBucketPolicy",
            "s3:GetBucketVersioning",
            "s3:PutBucketVersioning",
            "s3:GetEncryptionConfiguration",
            "s3:PutEncryptionConfiguration",
            "s3:GetBucketPublicAccessBlock",
            "s3:PutBucketPublicAccessBlock",
            "s3:GetBucketOwnershipControls",
            "s3:GetBucketObjectLockConfiguration",
            "s3:GetBucketRequestPayment",
            "s3:GetAccelerateConfiguration",
            "s3:GetBucketLogging",
            "s3:GetBucketTagging",
            "s3:PutBucketTagging",
        ),
        (scope.bucket_arn(bucket),),
        why,
        needed_by,
    )


def _ec2_read(sid: str, actions: tuple[str, ...], needed_by: str, why: str) -> Grant:
    return Grant(sid, actions, ANY, f"{why} (EC2 Describe calls take no resource)", needed_by)


def _run_instances(scope: Scope, sid: str, needed_by: str, why: str) -> list[Grant]:
    """RunInstances and the tags it writes: new instances and volumes only with the deployment's tag."""
    n = scope.names
    return [
        Grant(
            sid,
            ("ec2:RunInstances",),
            (scope.ec2("instance/*"), scope.ec2("volume/*"), scope.ec2("spot-instances-request/*")),
            f"{why}: instances and volumes only when they carry {n.tag_deployment}={scope.deployment}",
            needed_by,
            condition=scope.tagging_on_create,
        ),
        Grant(
            f"{sid}From",
            ("ec2:RunInstances",),
            (
                scope.ec2("image/*", account=False),
                scope.ec2("subnet/*"),
                scope.ec2("network-interface/*"),
                scope.ec2("security-group/*"),
                scope.ec2("key-pair/*"),
                scope.ec2("launch-template/*"),
            ),
            f"{why}: what an instance launches from and into (images, subnets, security groups)",
            needed_by,
        ),
        Grant(
            f"{sid}Tags",
            ("ec2:CreateTags",),
            (scope.ec2("instance/*"), scope.ec2("volume/*"), scope.ec2("spot-instances-request/*")),
            f"{why}: the tags written as the instances are launched, and only then",
            needed_by,
            condition={"StringEquals": {"ec2:CreateAction": ["RunInstances", "RequestSpotInstances"]}},
        ),
    ]


def _pass_worker_role(scope: Scope, sid: str) -> Grant:
    return Grant(
        sid,
        ("iam:PassRole",),
        (scope.role(scope.names.worker_role),),
        "instances run with the deployment's worker role (its instance profile), and nothing else",
        condition={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        local=NO_PASSROLE,
    )


# --- Per playbook ----------------------------------------------------------------------------------


def intake(scope: Scope) -> list[Grant]:
    n = scope.names
    queues = tuple(
        scope.queue(q) for q in (n.work_queue, n.dead_letter_queue, n.intake_failures_queue, n.events_queue)
    )
    roles = (scope.role(n.worker_role), scope.role(n.intake_role))
    return [
        _bucket_admin(
            scope,
            "SamplesBucket",
            n.bucket,
            "Create the samples bucket (private, encrypted, TLS only, versioned)",
            "create the samples bucket and keep it private, encrypted, versioned and TLS-only",
        ),
        Grant(
            "SamplesBucketLifecycle",
            ("s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration"),
            (scope.bucket_arn(n.bucket),),
            "move inputs and outputs to Glacier and expire them",
            "Set the lifecycle rules (Glacier and expiry per prefix)",
        ),
        Grant(
            "SamplesBucketEvents",
            ("s3:GetBucketNotification", "s3:PutBucketNotification"),
            (scope.bucket_arn(n.bucket),),
            "send new inputs and outputs to the intake handler",
            "Send new inputs and outputs to the handler (AWS) or the events queue (local)",
        ),
        Grant(
            "ListBucketsInCheckMode",
            ("s3:ListAllMyBuckets",),
            ANY,
            "check mode reports a bucket a real run would create (ListBuckets takes no resource)",
            local="used by --check runs only",
        ),
        Grant(
            "Queues",
            (
                "sqs:CreateQueue",
                "sqs:GetQueueUrl",
                "sqs:GetQueueAttributes",
                "sqs:SetQueueAttributes",
                "sqs:ListQueueTags",
                "sqs:TagQueue",
                "sqs:UntagQueue",
            ),
            queues,
            "create the work, dead-letter, intake-failures and (local) events queues",
            "Create the dead-letter queue",
        ),
        Grant(
            "ListTopics",
            ("sns:ListTopics",),
            ANY,
            "find whether the notification topic exists (ListTopics takes no resource)",
            "Look up the existing topics",
        ),
        Grant(
            "Topic",
            (
                "sns:CreateTopic",
                "sns:GetTopicAttributes",
                "sns:SetTopicAttributes",
                "sns:ListSubscriptionsByTopic",
                "sns:ListTagsForResource",
                "sns:TagResource",
                "sns:UntagResource",
            ),
            (scope.arn("sns", n.notify_topic),),
            "create the notification topic",
            "Create the notification topic",
        ),
        Grant(
            "Roles",
            (
                "iam:GetRole",
                "iam:CreateRole",
                "iam:UpdateRole",
                "iam:UpdateAssumeRolePolicy",
                "iam:ListRoleTags",
                "iam:TagRole",
                "iam:UntagRole",
                "iam:ListAttachedRolePolicies",
                "iam:ListRolePolicies",
                "iam:GetRolePolicy",
                "iam:PutRolePolicy",
                "iam:ListInstanceProfilesForRole",
            ),
            roles,
            "create the worker and intake roles and write their inline policies",
            "Create the worker role and its instance profile",
        ),
        Grant(
            "WorkerInstanceProfile",
            (
                "iam:GetInstanceProfile",
                "iam:CreateInstanceProfile",
                "iam:AddRoleToInstanceProfile",
                "iam:TagInstanceProfile",
            ),
            (scope.instance_profile(n.worker_instance_profile),),
            "the worker role's instance profile",
            "Create the worker role and its instance profile",
        ),
        Grant(
            "PassIntakeRole",
            ("iam:PassRole",),
            (scope.role(n.intake_role),),
            "the intake Lambda runs with the intake role, and nothing else",
            condition={"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
            local=NO_PASSROLE,
        ),
        Grant(
            "Handler",
            (
                "lambda:GetFunction",
                "lambda:GetFunctionConfiguration",
                "lambda:CreateFunction",
                "lambda:UpdateFunctionCode",
                "lambda:UpdateFunctionConfiguration",
                "lambda:ListTags",
                "lambda:TagResource",
                "lambda:UntagResource",
            ),
            (scope.arn("lambda", f"function:{n.intake_function}"),),
            "deploy the intake handler",
            "Deploy the intake handler",
        ),
        Grant(
            "HandlerFailureDestination",
            (
                "lambda:GetFunctionEventInvokeConfig",
                "lambda:PutFunctionEventInvokeConfig",
                "lambda:UpdateFunctionEventInvokeConfig",
            ),
            (scope.arn("lambda", f"function:{n.intake_function}"),),
            "send the S3 events the handler fails to the intake-failures queue",
            "Send the events the handler fails to the intake-failures queue",
        ),
        Grant(
            "HandlerInvokedByBucket",
            ("lambda:GetPolicy", "lambda:AddPermission", "lambda:RemovePermission"),
            (scope.arn("lambda", f"function:{n.intake_function}"),),
            "allow the samples bucket (only) to invoke the handler",
            "Allow the bucket to invoke the intake handler",
        ),
        Grant(
            "Parameters",
            (
                "ssm:GetParameter",
                "ssm:GetParameters",
                "ssm:PutParameter",
                "ssm:ListTagsForResource",
                "ssm:AddTagsToResource",
                "ssm:RemoveTagsFromResource",
            ),
            (scope.parameters(),),
            "record the deployment's configuration and secrets under its own SSM path",
            "Record the deployment's configuration in Parameter Store",
        ),
        Grant(
            "DescribeParameters",
            ("ssm:DescribeParameters",),
            ANY,
            DESCRIBE_PARAMETERS,
            "Record the deployment's configuration in Parameter Store",
        ),
        Grant(
            "DeadLetterAlarm",
            (
                "cloudwatch:DescribeAlarms",
                "cloudwatch:PutMetricAlarm",
                "cloudwatch:DeleteAlarms",
                "cloudwatch:ListTagsForResource",
                "cloudwatch:TagResource",
            ),
            (scope.arn("cloudwatch", f"alarm:{n.dead_letter_alarm}"),),
            "the alarm on the dead-letter queue's depth",
            "Alarm on a message in the dead-letter queue",
        ),
        Grant(
            "QueueKey",
            ("kms:DescribeKey", "kms:ListAliases"),
            (scope.arn("kms", "key/*"), scope.arn("kms", "alias/*")),
            "check a customer-managed queue key (intake_queue_kms_key) before anything is created",
            local="only with a customer-managed intake_queue_kms_key (alias/aws/sqs needs none)",
        ),
    ]


def mirror_refdata(scope: Scope) -> list[Grant]:
    n = scope.names
    return [
        Grant(
            "MirrorObjects",
            ("s3:GetObject", "s3:GetObjectTagging", "s3:PutObject", "s3:AbortMultipartUpload"),
            (scope.bucket_arn(n.bucket, "refdata/*"),),
            "look for each reference file in the mirror (refdata/ of the samples bucket) and upload it",
            "Look for the objects in the mirror",
        ),
        Grant(
            "MirrorBucket",
            ("s3:ListBucket",),
            (scope.bucket_arn(n.bucket),),
            "amazon.aws.s3_object checks the bucket before an upload (HeadBucket), under refdata/ only",
            "Upload with the sha256 in the object metadata",
            condition={"StringLike": {"s3:prefix": ["refdata/*"]}},
        ),
    ]


def bake(scope: Scope) -> list[Grant]:
    n = scope.names
    return [
        Grant(
            "PackerTemporaries",
            (
                "ec2:CreateKeyPair",
                "ec2:DeleteKeyPair",
                "ec2:CreateSecurityGroup",
                "ec2:DeleteSecurityGroup",
                "ec2:AuthorizeSecurityGroupIngress",
                "ec2:CreateLaunchTemplate",
                "ec2:DeleteLaunchTemplate",
            ),
            ANY,
            "the key pair, security group and launch template Packer creates for one build and deletes "
            "after it (Packer 1.6.6 tags none of them, so they cannot be scoped by tag)",
            local=PACKER_ONLY,
        ),
        Grant(
            "PackerBuildInstance",
            ("ec2:RunInstances", "ec2:CreateFleet"),
            (scope.ec2("instance/*"), scope.ec2("volume/*"), scope.ec2("fleet/*")),
            "the spot build instance, only as Packer tags it (capillary:role=bake)",
            condition={"StringEquals": {f"aws:RequestTag/{n.tag_role}": "bake"}},
            local=PACKER_ONLY,
        ),
        Grant(
            "PackerBuildInstanceLifecycle",
            (
                "ec2:StopInstances",
                "ec2:TerminateInstances",
                "ec2:ModifyInstanceAttribute",
                "ec2:ModifyInstanceMetadataOptions",
            ),
            (scope.ec2("instance/*"),),
            "stop the build instance for the image, terminate it after; provision.yml makes it IMDSv2-only",
            condition={"StringEquals": {f"aws:ResourceTag/{n.tag_role}": "bake"}},
            local=PACKER_ONLY,
        ),
        Grant(
            "PackerImage",
            (
                "ec2:CreateImage",
                "ec2:RegisterImage",
                "ec2:CopyImage",
                "ec2:CreateSnapshot",
                "ec2:ModifySnapshotAttribute",
                "ec2:CreateVolume",
                "ec2:AttachVolume",
                "ec2:DetachVolume",
                "ec2:DeleteVolume",
            ),
            (
                scope.ec2("instance/*"),
                scope.ec2("volume/*"),
                scope.ec2("image/*", account=False),
                scope.ec2("snapshot/*", account=False),
            ),
            "make the encrypted AMI and its snapshots from the build instance (Packer 1.6.6 tags neither "
            "the volumes nor the image until it is made, so this cannot be scoped by tag)",
            local=PACKER_ONLY,
        ),
        Grant(
            "PackerTags",
            ("ec2:CreateTags",),
            (
                scope.ec2("instance/*"),
                scope.ec2("volume/*"),
                scope.ec2("image/*", account=False),
                scope.ec2("snapshot/*", account=False),
                scope.ec2("launch-template/*"),
            ),
            "the AMI's and snapshots' tags (capillary:deployment, release, bundle, VEP, commit), "
            "the build instance's",
            condition={"ForAnyValue:StringEquals": {"aws:TagKeys": [n.tag_deployment, n.tag_role]}},
            local=PACKER_ONLY,
        ),
        replace(
            _ec2_read(
                "PackerRead",
                (
                    "ec2:DescribeImageAttribute",
                    "ec2:DescribeKeyPairs",
                    "ec2:DescribeLaunchTemplates",
                    "ec2:DescribeRegions",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeSnapshots",
                    "ec2:DescribeSpotPriceHistory",
                    "ec2:DescribeTags",
                    "ec2:DescribeVolumes",
                    "ec2:DescribeVpcs",
                ),
                "",
                "what Packer and the build instance's provisioning read",
            ),
            local=PACKER_ONLY,
        ),
        Grant(
            "ImageImdsV2",
            ("ec2:ModifyImageAttribute", "ec2:DescribeImageAttribute"),
            (scope.ec2("image/*", account=False),),
            "require IMDSv2 on every instance launched from the new AMI (bake.yml, after Packer)",
            condition=scope.tagged,
            local="part of the build step, which needs Packer",
        ),
        Grant(
            "ReadMirror",
            ("s3:GetObject",),
            (scope.bucket_arn(n.bucket, "refdata/*"),),
            "the build instance downloads the reference data through links the controller presigns",
            local="the provisioning that presigns runs inside the Packer build",
        ),
        _bucket_admin(
            scope,
            "SmokeBucket",
            n.smoke_bucket,
            "Create the smoke-test bucket",
            "the smoke-test bucket (synthetic samples only, never the deployment's own)",
        ),
        Grant(
            "SmokeObjects",
            ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"),
            (scope.bucket_arn(n.smoke_bucket, "inputs/*"), scope.bucket_arn(n.smoke_bucket, "outputs/*")),
            "upload the synthetic sample, wait for its output, delete both",
            "Queue a synthetic sample on the smoke-test queue",
        ),
        Grant(
            "SmokeQueue",
            (
                "sqs:CreateQueue",
                "sqs:GetQueueUrl",
                "sqs:GetQueueAttributes",
                "sqs:SetQueueAttributes",
                "sqs:SendMessage",
            ),
            (scope.queue(n.smoke_queue),),
            "the smoke-test queue the throwaway worker reads",
            "Create the smoke-test queue",
        ),
        *_run_instances(
            scope, "SmokeWorker", "Launch a smoke worker from the new AMI", "the throwaway smoke worker"
        ),
        Grant(
            "SmokeWorkerProfile",
            ("iam:GetInstanceProfile",),
            (scope.instance_profile(n.worker_instance_profile),),
            "amazon.aws.ec2_instance resolves the worker instance profile's ARN",
            "Launch a smoke worker from the new AMI",
        ),
        _pass_worker_role(scope, "PassWorkerRole"),
        _ec2_read(
            "Ec2Read",
            (
                "ec2:DescribeImages",
                "ec2:DescribeInstances",
                "ec2:DescribeInstanceStatus",
                "ec2:DescribeInstanceAttribute",
                "ec2:DescribeSubnets",
                "ec2:DescribeVpcs",
            ),
            "Launch a smoke worker from the new AMI",
            "the smoke worker's launch and state, the deployment's images for pruning",
        ),
        Grant(
            "StopSmokeWorker",
            ("ec2:TerminateInstances",),
            (scope.ec2("instance/*"),),
            "terminate the smoke worker whatever happened (only the deployment's instances)",
            "Terminate the smoke worker",
            condition=scope.tagged,
        ),
        Grant(
            "ImageRecord",
            (
                "ssm:GetParameter",
                "ssm:GetParametersByPath",
                "ssm:PutParameter",
                "ssm:ListTagsForResource",
                "ssm:AddTagsToResource",
            ),
            (scope.parameters(n.ssm_images), scope.arn("ssm", f"parameter{n.ssm_images}")),
            "record the image of the release and move current",
            "Record the image of this release",
        ),
        Grant(
            "DescribeParameters",
            ("ssm:DescribeParameters",),
            ANY,
            DESCRIBE_PARAMETERS,
            "Record the image of this release",
        ),
        Grant(
            "PruneImages",
            ("ec2:DeregisterImage", "ec2:DeleteSnapshot"),
            (scope.ec2("image/*", account=False), scope.ec2("snapshot/*", account=False)),
            "deregister the deployment's images beyond the newest bake_keep, with their snapshots",
            "Deregister AMIs, with their snapshots, beyond the newest {{ bake_keep }}",
            condition=scope.tagged,
        ),
    ]


def workers(scope: Scope) -> list[Grant]:
    n = scope.names
    return [
        Grant(
            "WorkQueueDepth",
            ("sqs:GetQueueUrl", "sqs:GetQueueAttributes"),
            (scope.queue(n.work_queue),),
            "size the fleet by the work queue's depth (from_queue)",
            "Read how many workers the work queue needs",
        ),
        Grant(
            "ImageParameter",
            ("ssm:GetParameter",),
            (scope.parameters(n.ssm_images),),
            "read the release's image id",
            "Read the release's image id from the image registry",
        ),
        _ec2_read(
            "Ec2Read",
            (
                "ec2:DescribeImages",
                "ec2:DescribeInstances",
                "ec2:DescribeSubnets",
                "ec2:DescribeSpotPriceHistory",
                "ec2:DescribeSpotInstanceRequests",
            ),
            "Count the workers already pending or running",
            "count the workers, read the image, rank the spot pools",
        ),
        *_run_instances(scope, "LaunchWorkers", "Launch the workers", "launch spot (or on-demand) workers"),
        _pass_worker_role(scope, "PassWorkerRole"),
        Grant(
            "StopWorkers",
            ("ec2:TerminateInstances", "ec2:CancelSpotInstanceRequests"),
            (scope.ec2("instance/*"), scope.ec2("spot-instances-request/*")),
            "down.yml: terminate the deployment's workers and cancel its spot requests, nobody else's",
            "Terminate the workers",
            condition=scope.tagged,
        ),
    ]


def teardown(scope: Scope) -> list[Grant]:
    n = scope.names
    queues = tuple(scope.queue(getattr(n, f)) for f in sorted(vars(n)) if f.endswith("_queue"))
    buckets = (scope.bucket_arn(n.bucket), scope.bucket_arn(n.smoke_bucket))
    objects = (scope.bucket_arn(n.bucket, "*"), scope.bucket_arn(n.smoke_bucket, "*"))
    function = scope.arn("lambda", f"function:{n.intake_function}")
    log_group = scope.arn("logs", f"log-group:/aws/lambda/{n.intake_function}")
    return [
        Grant(
            "FindBuckets",
            ("s3:ListBucket", "s3:ListBucketVersions"),
            buckets,
            "count what the buckets hold (every version) before anything is removed",
            "Find what the deployment has",
        ),
        Grant(
            "FindTopic",
            ("sns:GetTopicAttributes",),
            (scope.arn("sns", n.notify_topic),),
            "find the notification topic",
            "Find what the deployment has",
        ),
        Grant(
            "FindAlarm",
            ("cloudwatch:DescribeAlarms",),
            (scope.arn("cloudwatch", f"alarm:{n.dead_letter_alarm}"),),
            "find the dead-letter alarm",
            "Find what the deployment has",
        ),
        Grant(
            "FindHandler",
            ("lambda:GetFunction",),
            (function,),
            "find the intake handler",
            "Find what the deployment has",
        ),
        Grant(
            "FindLogGroups",
            ("logs:DescribeLogGroups",),
            (scope.arn("logs", "log-group:*"),),
            "find the handler's log group (DescribeLogGroups is granted on the account's log groups)",
            "Find what the deployment has",
        ),
        Grant(
            "FindRoles",
            ("iam:GetRole", "iam:GetInstanceProfile"),
            (
                scope.role(n.worker_role),
                scope.role(n.intake_role),
                scope.instance_profile(n.worker_instance_profile),
            ),
            "find the roles and the instance profile",
            "Find what the deployment has",
        ),
        Grant(
            "FindParameters",
            ("ssm:GetParametersByPath",),
            (scope.arn("ssm", f"parameter{n.ssm_prefix}"), scope.parameters()),
            "list the parameters under the deployment's own path (values not decrypted)",
            "Find what the deployment has",
        ),
        _ec2_read(
            "Ec2Read",
            (
                "ec2:DescribeImages",
                "ec2:DescribeInstances",
                "ec2:DescribeSpotInstanceRequests",
                "ec2:DescribeLaunchTemplates",
                "ec2:DescribeLaunchTemplateVersions",
            ),
            "Find what the deployment has",
            "find the deployment's instances, spot requests, launch templates and images by tag",
        ),
        Grant(
            "FindAutoScalingGroups",
            ("autoscaling:DescribeAutoScalingGroups",),
            ANY,
            "find the deployment's Auto Scaling groups by tag (Describe calls take no resource)",
            "Find what the deployment has",
        ),
        Grant(
            "StopInstances",
            ("ec2:TerminateInstances", "ec2:CancelSpotInstanceRequests"),
            (scope.ec2("instance/*"), scope.ec2("spot-instances-request/*")),
            "terminate the deployment's instances and cancel its spot requests, nobody else's",
            "Terminate the deployment's other instances",
            condition=scope.tagged,
        ),
        Grant(
            "RemoveAutoScalingGroups",
            (
                "autoscaling:UpdateAutoScalingGroup",
                "autoscaling:DeleteAutoScalingGroup",
                "autoscaling:TerminateInstanceInAutoScalingGroup",
            ),
            (scope.arn("autoscaling", "autoScalingGroup:*:autoScalingGroupName/*"),),
            "empty and delete the deployment's Auto Scaling groups (by their tag only)",
            "Delete the deployment's Auto Scaling groups",
            condition=scope.tagged,
        ),
        Grant(
            "RemoveLaunchTemplates",
            ("ec2:DeleteLaunchTemplate",),
            (scope.ec2("launch-template/*"),),
            "delete the deployment's launch templates (by their tag only)",
            "Delete the deployment's launch templates",
            condition=scope.tagged,
        ),
        Grant(
            "StopBucketEvents",
            ("s3:GetBucketNotification", "s3:PutBucketNotification"),
            (scope.bucket_arn(n.bucket),),
            "a kept bucket stops notifying the handler that is about to go",
            "Stop the kept bucket's notifications",
        ),
        Grant(
            "RemoveHandler",
            ("lambda:GetFunction", "lambda:DeleteFunction"),
            (function,),
            "delete the intake handler (its permission and failure destination go with it)",
            "Remove the intake handler (its invoke permission and failure destination go with it)",
        ),
        Grant(
            "RemoveLogGroup",
            ("logs:DescribeLogGroups", "logs:DeleteLogGroup"),
            (log_group, f"{log_group}:*"),
            "delete the handler's log group",
            "Remove the handler's log group",
        ),
        Grant(
            "RemoveAlarm",
            ("cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"),
            (scope.arn("cloudwatch", f"alarm:{n.dead_letter_alarm}"),),
            "delete the dead-letter alarm",
            "Remove the dead-letter alarm",
        ),
        Grant(
            "Queues",
            ("sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:DeleteQueue"),
            queues,
            # One statement to find and delete them: the queue list twice made the document too
            # large for a managed policy (6,144 characters) once the events dead-letter queue came.
            "find the deployment's queues by their exact names, and delete them",
            "Find what the deployment has",
        ),
        Grant(
            "ListTopics",
            ("sns:ListTopics",),
            ANY,
            "community.aws.sns_topic finds a topic by listing them (ListTopics takes no resource)",
            "Remove the notification topic and its subscriptions",
        ),
        Grant(
            "RemoveTopic",
            ("sns:GetTopicAttributes", "sns:ListSubscriptionsByTopic", "sns:Unsubscribe", "sns:DeleteTopic"),
            (scope.arn("sns", n.notify_topic), scope.arn("sns", f"{n.notify_topic}:*")),
            "delete the topic and its subscriptions",
            "Remove the notification topic and its subscriptions",
        ),
        Grant(
            "RemoveRoles",
            (
                "iam:GetRole",
                "iam:ListAttachedRolePolicies",
                "iam:DetachRolePolicy",
                "iam:ListRolePolicies",
                "iam:DeleteRolePolicy",
                "iam:ListInstanceProfilesForRole",
                "iam:RemoveRoleFromInstanceProfile",
                "iam:DeleteRole",
            ),
            (scope.role(n.worker_role), scope.role(n.intake_role)),
            "delete the roles with their policies",
            "Remove the IAM roles with their policies and the worker instance profile",
        ),
        Grant(
            "RemoveInstanceProfile",
            ("iam:GetInstanceProfile", "iam:RemoveRoleFromInstanceProfile", "iam:DeleteInstanceProfile"),
            (scope.instance_profile(n.worker_instance_profile),),
            "delete the worker instance profile",
            "Remove the IAM roles with their policies and the worker instance profile",
        ),
        Grant(
            "RemoveImages",
            ("ec2:DeregisterImage", "ec2:DeleteSnapshot"),
            (scope.ec2("image/*", account=False), scope.ec2("snapshot/*", account=False)),
            "deregister the deployment's images with their snapshots (by their tag only)",
            "Deregister the deployment's AMIs and delete their snapshots",
            condition=scope.tagged,
        ),
        Grant(
            "RemoveParameters",
            ("ssm:GetParameter", "ssm:DeleteParameter"),
            (scope.parameters(),),
            "delete every parameter under the deployment's own path",
            "Delete the deployment's SSM parameters",
        ),
        Grant(
            "RemoveBuckets",
            (
                "s3:ListBucket",
                "s3:ListBucketVersions",
                "s3:GetBucketVersioning",
                "s3:DeleteBucket",
            ),
            buckets,
            "delete the smoke-test bucket and the samples bucket",
            "Delete the smoke-test bucket",
        ),
        Grant(
            "RemoveObjects",
            ("s3:DeleteObject", "s3:DeleteObjectVersion"),
            objects,
            "empty the buckets first, every version (the samples bucket only when told in words)",
            "Delete the smoke-test bucket",
        ),
    ]


def operate(scope: Scope) -> list[Grant]:
    n = scope.names
    return [
        Grant(
            "ReadConfiguration",
            ("ssm:GetParameter", "ssm:GetParametersByPath"),
            (scope.arn("ssm", f"parameter{n.ssm_config}"), scope.parameters(n.ssm_config)),
            "capillary submit and status read the deployment's bucket and platform",
            "capillary submit",
        ),
        Grant(
            "SubmitSamples",
            ("s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"),
            (scope.bucket_arn(n.bucket, "inputs/*"),),
            "capillary submit: a fresh key (HeadObject) and the upload, in parts for large files",
            "capillary submit",
        ),
        Grant(
            "ReadResults",
            ("s3:GetObject",),
            (scope.bucket_arn(n.bucket, "outputs/*"), scope.bucket_arn(n.bucket, "rejected/*")),
            "capillary status reads error and rejection reports; an operator downloads outputs",
            "capillary status --deployment",
        ),
        Grant(
            "ListSamples",
            ("s3:ListBucket",),
            (scope.bucket_arn(n.bucket),),
            "capillary status lists inputs/, outputs/ and rejected/",
            "capillary status --deployment",
            condition={"StringLike": {"s3:prefix": ["inputs/*", "outputs/*", "rejected/*"]}},
        ),
        Grant(
            "ReadQueues",
            ("sqs:GetQueueUrl", "sqs:GetQueueAttributes"),
            tuple(scope.queue(q) for q in (n.work_queue, n.dead_letter_queue, n.intake_failures_queue)),
            "capillary status counts the work, dead-letter and intake-failures queues",
            "capillary status --deployment",
        ),
        _ec2_read(
            "ListWorkers",
            ("ec2:DescribeInstances",),
            "capillary status --deployment",
            "capillary status lists the deployment's workers by tag",
        ),
    ]


PLAYBOOKS: dict[str, Callable[[Scope], list[Grant]]] = {
    "intake": intake,
    "mirror_refdata": mirror_refdata,
    "bake": bake,
    "workers": workers,
    "teardown": teardown,
    "operate": operate,
}
# What each document is for, as the docs name it.
RUNS = {
    "intake": "playbooks/intake.yml",
    "mirror_refdata": "playbooks/mirror_refdata.yml",
    "bake": "playbooks/bake.yml (capillary_platform=aws)",
    "workers": "playbooks/up.yml and playbooks/down.yml (capillary_platform=aws)",
    "teardown": "playbooks/teardown.yml",
    "operate": "capillary submit and capillary status --deployment",
}


@dataclass(frozen=True)
class Policy:
    playbook: str
    grants: list[Grant] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        return {"Version": VERSION, "Statement": [g.statement() for g in self.grants]}

    def grant(self, sid: str) -> Grant:
        return next(g for g in self.grants if g.sid == sid)


def policy(playbook: str, scope: Scope) -> Policy:
    if playbook not in PLAYBOOKS:
        raise PolicyError(f"playbook {playbook!r}: one of {', '.join(PLAYBOOKS)}")
    return Policy(playbook, PLAYBOOKS[playbook](scope))


def policies(scope: Scope) -> dict[str, Policy]:
    return {name: policy(name, scope) for name in PLAYBOOKS}


def problems(document: Mapping[str, Any]) -> list[str]:
    """What makes a document unfit: a `*` action, a duplicate Sid, an oversized document."""
    found = []
    sids = [s["Sid"] for s in document["Statement"]]
    found += [f"Sid {sid} appears twice" for sid in sorted({s for s in sids if sids.count(s) > 1})]
    for statement in document["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        found += [f"{statement['Sid']}: action {a!r} is a wildcard" for a in actions if "*" in a]
    size = len(re.sub(r"\s", "", json.dumps(document)))
    if size > MANAGED_POLICY_MAX_CHARS:
        found.append(f"{size} characters: more than IAM's {MANAGED_POLICY_MAX_CHARS} for a managed policy")
    return found


def render(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


EXAMPLE = Scope(deployment="example", account="123456789012", region="eu-west-1")
