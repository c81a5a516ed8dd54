"""An idle worker leaves its Auto Scaling group, lowering the group's desired capacity by one.

On the aws platform workers are an Auto Scaling group (roles/workers). A worker that simply
powered off would be replaced: the group sees an instance gone (stopped or terminated) and
launches another to keep its desired capacity, which the next idle timeout powers off again,
and so on while the queue is empty. So before the unit powers it off, an idle worker calls
TerminateInstanceInAutoScalingGroup for itself with ShouldDecrementDesiredCapacity: the group
terminates it and wants one worker fewer. When the desired capacity is already at the group's
MinSize (a take-down closed it, or the workers left faster than anyone raised it), AWS refuses
the decrement and the worker goes without it: nothing replaces it then either.

The worker learns its group from the instance's tags in IMDS (`aws:autoscaling:groupName`; the
launch template enables instance metadata tags). No tag (the local platform, a worker launched
outside a group, tags not exposed) or IMDS off: nothing to do. The worker role may call this for
its own deployment's groups only (roles/intake, statement LeaveOwnWorkerGroup).

A message sent while the worker leaves is not stranded: the worker decided it was idle right
after a long poll that returned nothing, and leaves at once, while the `up.yml` that message
triggers reads the group seconds later and sees the capacity already lowered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from capillary.worker.imds import IMDSClient, IMDSError

log = logging.getLogger("capillary.worker.fleet")

GROUP_TAG = "aws:autoscaling:groupName"
# AWS's answer when a decrement would take the desired capacity below MinSize.
_AT_MIN_SIZE = "desiredSize equals minSize"


def group_name(imds: IMDSClient) -> str | None:
    """The Auto Scaling group this instance belongs to, or None (no tag, or tags not in IMDS)."""
    return imds.get(f"tags/instance/{GROUP_TAG}")


def leave_group(imds: IMDSClient, autoscaling: Callable[[], Any], enabled: bool = True) -> str:
    """Leave this instance's group, lowering its desired capacity; returns what happened.

    `autoscaling()` makes the Auto Scaling client (only when there is a group to leave). Never
    raises: a worker that cannot leave still powers off, and says so in its log.
    """
    if not enabled:
        return "imds-disabled"
    try:
        group = group_name(imds)
        instance_id = imds.instance_id() if group else None
    except IMDSError as exc:
        log.warning(
            "cannot read the instance's group from IMDS (%s): not leaving it", exc, extra={"phase": "idle"}
        )
        return "imds-error"
    if not group or not instance_id:
        return "no-group"
    client = autoscaling()
    for decrement in (True, False):
        try:
            client.terminate_instance_in_auto_scaling_group(
                InstanceId=instance_id, ShouldDecrementDesiredCapacity=decrement
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if (
                decrement
                and error.get("Code") == "ValidationError"
                and _AT_MIN_SIZE in error.get("Message", "")
            ):
                continue  # already at MinSize: nothing would replace this worker anyway
            log.error(
                "could not leave Auto Scaling group %s (%s): the group may replace this worker",
                group,
                exc,
                extra={"phase": "idle", "group": group, "instance_id": instance_id},
            )
            return "error"
        except BotoCoreError as exc:
            log.error(
                "could not leave Auto Scaling group %s (%s): the group may replace this worker",
                group,
                exc,
                extra={"phase": "idle", "group": group, "instance_id": instance_id},
            )
            return "error"
        log.info(
            "left Auto Scaling group %s%s",
            group,
            " lowering its desired capacity" if decrement else " (already at its minimum size)",
            extra={"phase": "idle", "group": group, "instance_id": instance_id},
        )
        return "left" if decrement else "left-at-min-size"
    return "error"  # pragma: no cover - the loop returns on its second pass
