"""Every resource name of a deployment, derived from its one name.

Two deployments live side by side in one account because nothing is named any other way:
the playbooks reach these through the `capillary.pcgr.deployment_names` filter, the intake
handler, the consumer and the CLI import them from here.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

_DEPLOYMENT = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,22}[a-z0-9])?$")
# S3 bucket names: 3-63 chars, lowercase letters, digits, hyphens and dots, no "..", no IP form.
# A release names an SSM parameter's last level and a container image tag: keep to what both take.
_RELEASE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$")
_BUCKET = re.compile(r"^(?!\d+\.\d+\.\d+\.\d+$)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

TAG_DEPLOYMENT = "capillary:deployment"
TAG_RELEASE = "capillary:release"
TAG_EVENT = "capillary:event"
TAG_ROLE = "capillary:role"


class DeploymentNameError(ValueError):
    """A deployment or bucket name that AWS (or our naming) cannot take."""


@dataclass(frozen=True)
class DeploymentNames:
    deployment: str
    bucket: str
    smoke_bucket: str
    work_queue: str
    dead_letter_queue: str
    events_queue: str
    events_dead_letter_queue: str
    smoke_queue: str
    intake_failures_queue: str
    notify_topic: str
    dead_letter_alarm: str
    worker_role: str
    worker_instance_profile: str
    intake_role: str
    intake_function: str
    ssm_prefix: str
    ssm_config: str
    ssm_secrets: str
    ssm_images: str
    ssm_workers_fence: str
    tag_deployment: str
    tag_release: str
    tag_event: str
    tag_role: str
    local_network: str
    local_worker_prefix: str
    local_worker_image: str

    def as_dict(self, release: str | None = None) -> dict[str, str]:
        """Every name; given `release`, also its `image_parameter` and `worker_image`."""
        names = asdict(self)
        if release is not None:
            names["image_parameter"] = self.image_parameter(release)
            names["worker_image"] = self.worker_image(release)
        return names

    def image_parameter(self, release: str) -> str:
        """The SSM parameter holding the image id baked for `release` (or "current")."""
        return f"{self.ssm_images}/{_release(release)}"

    def worker_image(self, release: str) -> str:
        """The local "AMI": the container image the local platform boots workers from."""
        return f"{self.local_worker_image}:{_release(release)}"


def _release(release: str) -> str:
    """`release` if it can end an SSM parameter name and tag an image (a catalogue version, "current")."""
    if not isinstance(release, str) or not _RELEASE.match(release):
        raise DeploymentNameError(
            f"release {release!r} is invalid: use 1-64 letters, digits, '.', '_' and '-', not starting "
            "with '.' or '-' (it ends the image's SSM parameter name and tags the local worker image)"
        )
    return release


def deployment_names(deployment: str, bucket: str | None = None) -> DeploymentNames:
    """All names for `deployment`; `bucket` overrides the bucket's (S3 names are global)."""
    if not isinstance(deployment, str) or not _DEPLOYMENT.match(deployment):
        raise DeploymentNameError(
            f"deployment name {deployment!r} is invalid: use 1-24 lowercase letters, digits and "
            "hyphens, starting and ending with a letter or digit (it prefixes bucket, queue and role names)"
        )
    prefix = f"capillary-{deployment}"
    bucket_name = bucket or f"{prefix}-samples"
    if not _BUCKET.match(bucket_name):
        raise DeploymentNameError(
            f"bucket name {bucket_name!r} is invalid: S3 takes 3-63 lowercase letters, digits, dots "
            "and hyphens, starting and ending with a letter or digit"
        )
    ssm_prefix = f"/capillary/{deployment}"
    return DeploymentNames(
        deployment=deployment,
        bucket=bucket_name,
        # Smoke samples never touch the deployment's bucket: its notifications would queue them
        # as real work (and a worker would find the input gone once the bake cleaned up).
        smoke_bucket=f"{prefix}-smoke",
        work_queue=f"{prefix}-work",
        dead_letter_queue=f"{prefix}-work-dlq",
        events_queue=f"{prefix}-events",
        # Where the local events queue redrives what `capillary intake-local` cannot handle.
        events_dead_letter_queue=f"{prefix}-events-dlq",
        smoke_queue=f"{prefix}-smoke",
        # The intake Lambda's on-failure destination: S3 events it could not handle after Lambda's
        # own retries (the object stays in the bucket; this queue says which one was missed).
        intake_failures_queue=f"{prefix}-intake-failures",
        notify_topic=f"{prefix}-notify",
        # The CloudWatch alarm on the dead-letter queue's depth (it notifies notify_topic).
        dead_letter_alarm=f"{prefix}-work-dlq-messages",
        worker_role=f"{prefix}-worker",
        worker_instance_profile=f"{prefix}-worker",
        intake_role=f"{prefix}-intake",
        intake_function=f"{prefix}-intake",
        ssm_prefix=ssm_prefix,
        ssm_config=f"{ssm_prefix}/config",
        ssm_secrets=f"{ssm_prefix}/secrets",
        ssm_images=f"{ssm_prefix}/images",
        # The take-down token down.yml writes (roles/workers): an up.yml that started before it stops.
        ssm_workers_fence=f"{ssm_prefix}/workers/down",
        tag_deployment=TAG_DEPLOYMENT,
        tag_release=TAG_RELEASE,
        tag_event=TAG_EVENT,
        tag_role=TAG_ROLE,
        local_network=prefix,
        local_worker_prefix=f"{prefix}-worker-",
        local_worker_image="localhost/capillary-worker",
    )
