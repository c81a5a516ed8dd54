# -*- coding: utf-8 -*-

# Copyright: Contributors to the Capillary project
# SPDX-License-Identifier: Apache-2.0

"""Sizing an EC2 Auto Scaling group so that any number of concurrent runs end on the same fleet.

Every run *sets* the group's desired capacity (never adds to it): up to what the work needs, at
most the group's MaxSize, and (for a scale-out) never below what it already is. The group's
capacity is one value AWS keeps, and AWS refuses a desired capacity above MaxSize, so a cap the
group carries is a cap no interleaving of runs can break.

Two runs that read the group at different times can still disagree (A reads 0 and needs 2, B
reads 0 and needs 4, B sets 4, A sets 2). So a run does not stop after its write: it reads the
group again, and the queue again, and writes again until what it reads already satisfies it. The
queue only grows during a burst, so the last run to write leaves at least what the freshest
reading needs; and a lower write never kills a worker, because new instances are protected from
scale-in (the group then simply has more instances than its desired capacity until they leave).

A take-down fences every run that started before it: it writes a new token into an SSM
parameter, then closes each group (MinSize = MaxSize = DesiredCapacity = 0) and terminates its
instances, and repeats until a pass finds nothing open or alive. A run reads the token when it
starts and checks it again right before each write that could launch: a changed token means a
take-down came after it, and it stops. The gap between its check and its write is covered by
AWS itself: a SetDesiredCapacity above a closed group's MaxSize of 0 is refused. A write that
raises MaxSize (creating the group, reopening it after an earlier take-down, a higher cap) is
followed by one more check, and undone when the token changed in between: raising MaxSize alone
launches nothing, so nothing runs in the meantime.

A run that started after a take-down (it read the new token) may open the group again: that is
how workers come back for the next sample. It tags the group with the token it read before it
writes; the take-down's later passes leave a group carrying its own token alone (a newer event
opened it), and close everything else.

`Groups` holds the calls, so the functions here read as the algorithm; the module passes clients
wrapped with AWSRetry, the tests a real (local) endpoint.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

# Lifecycle states that are capacity: launching or in service. Terminating, detaching, detached
# and standby instances are not (AWS does not count them towards the desired capacity either).
LIVE_STATES = ("Pending", "Pending:Wait", "Pending:Proceed", "InService")
# What a run that read no token (no take-down ever happened) expects to find.
NO_TOKEN = ""


class CapacityError(ValueError):
    """Input the capacity logic cannot work with, named with the reason."""


def error_code(exc):
    """The AWS error code of a botocore ClientError (or any exception with its `response`)."""
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code")


def target_capacity(current, wanted, max_size, scale_in=False):
    """The desired capacity a run writes: `wanted` within [0, max_size]; never below `current`
    unless `scale_in` (a scale-out run never takes capacity away another run asked for)."""
    for name, value in (("current", current), ("wanted", wanted), ("max_size", max_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CapacityError("%s must be a count (an int >= 0), got %r" % (name, value))
    wanted = min(wanted, max_size)
    return wanted if scale_in else min(max(current, wanted), max_size)


def group_tags(group):
    """{key: value} of a group's own tags."""
    return dict((t["Key"], t["Value"]) for t in (group or {}).get("Tags", []))


def live_instances(group):
    """The group's instances that are capacity (launching or in service)."""
    return [i for i in group.get("Instances", []) if i.get("LifecycleState") in LIVE_STATES]


def summary(group):
    """What a run reports about a group: its sizes and the ids of its live instances."""
    if group is None:
        return dict(exists=False, desired_capacity=0, max_size=0, instances=[])
    return dict(
        exists=True,
        name=group["AutoScalingGroupName"],
        desired_capacity=group["DesiredCapacity"],
        min_size=group["MinSize"],
        max_size=group["MaxSize"],
        instances=sorted(i["InstanceId"] for i in live_instances(group)),
    )


class Groups:
    """The AWS calls: Auto Scaling, SSM for the take-down token, EC2 to terminate and date instances.

    `client(service)` makes a client; each is made once, on first use (an EC2 client alone costs
    most of a second to build, and a run that finds enough capacity never needs one).
    """

    def __init__(self, client, sleep=time.sleep, retrying=False):
        self._client = client
        self._clients = {}
        self.sleep = sleep
        # Clients wrapped by AWSRetry retry a call only when it is passed aws_retry=True.
        self._retry = {"aws_retry": True} if retrying else {}

    def _get(self, service):
        if service not in self._clients:
            self._clients[service] = self._client(service)
        return self._clients[service]

    @property
    def autoscaling(self):
        return self._get("autoscaling")

    @property
    def ssm(self):
        return self._get("ssm")

    @property
    def ec2(self):
        return self._get("ec2")

    # -- reads --------------------------------------------------------------------------------

    def describe(self, name):
        groups = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name], **self._retry)
        found = groups.get("AutoScalingGroups", [])
        return found[0] if found else None

    def find(self, tags):
        """Every group carrying all of `tags` (a take-down does not know the releases)."""
        filters = [{"Name": "tag:%s" % k, "Values": [str(v)]} for k, v in sorted(tags.items())]
        paginator = self.autoscaling.get_paginator("describe_auto_scaling_groups")
        return [g for page in paginator.paginate(Filters=filters) for g in page["AutoScalingGroups"]]

    def token(self, parameter):
        """The last take-down's token, NO_TOKEN when none ever ran."""
        try:
            return self.ssm.get_parameter(Name=parameter, **self._retry)["Parameter"]["Value"]
        except Exception as e:
            if error_code(e) == "ParameterNotFound":
                return NO_TOKEN
            raise

    # -- writes -------------------------------------------------------------------------------

    def write_token(self, parameter, value):
        self.ssm.put_parameter(Name=parameter, Value=value, Type="String", Overwrite=True, **self._retry)

    def create(self, name, max_size, configuration):
        """Create the group empty (DesiredCapacity 0); False when another run created it first."""
        request = dict(
            configuration, AutoScalingGroupName=name, MinSize=0, MaxSize=max_size, DesiredCapacity=0
        )
        try:
            self.autoscaling.create_auto_scaling_group(**dict(request, **self._retry))
        except Exception as e:
            if error_code(e) == "AlreadyExists":
                return False
            raise
        return True

    def configure(self, name, configuration):
        """The launch settings of an existing group; its sizes are left alone."""
        request = {k: v for k, v in configuration.items() if k != "Tags"}
        self.autoscaling.update_auto_scaling_group(AutoScalingGroupName=name, **dict(request, **self._retry))
        if configuration.get("Tags"):
            self.tag(name, configuration["Tags"])

    def tag(self, name, tags):
        self.autoscaling.create_or_update_tags(
            **self._retry,
            Tags=[
                dict(
                    t,
                    ResourceId=name,
                    ResourceType="auto-scaling-group",
                    PropagateAtLaunch=t.get("PropagateAtLaunch", False),
                )
                for t in tags
            ],
        )

    def set_max_size(self, name, max_size):
        self.autoscaling.update_auto_scaling_group(AutoScalingGroupName=name, MaxSize=max_size, **self._retry)

    def set_desired(self, name, desired):
        """SetDesiredCapacity; False when AWS refused it because the group's MaxSize is lower now."""
        try:
            self.autoscaling.set_desired_capacity(
                AutoScalingGroupName=name, DesiredCapacity=desired, HonorCooldown=False, **self._retry
            )
        except Exception as e:
            if error_code(e) == "ValidationError":
                return False
            raise
        return True

    def close(self, name):
        self.autoscaling.update_auto_scaling_group(
            AutoScalingGroupName=name, MinSize=0, MaxSize=0, DesiredCapacity=0, **self._retry
        )

    def terminate(self, instance_ids):
        for start in range(0, len(instance_ids), 500):
            self.ec2.terminate_instances(InstanceIds=instance_ids[start : start + 500], **self._retry)

    def launch_times(self, instance_ids):
        """{instance id: launch time} from EC2 (Auto Scaling does not say when an instance started)."""
        if not instance_ids:
            return {}
        reservations = self.ec2.describe_instances(InstanceIds=list(instance_ids), **self._retry)[
            "Reservations"
        ]
        return dict((i["InstanceId"], i["LaunchTime"]) for r in reservations for i in r["Instances"])

    def terminate_in_group(self, instance_id):
        """Terminate a group's instance without replacing it (its desired capacity is already set)."""
        self.autoscaling.terminate_instance_in_auto_scaling_group(
            InstanceId=instance_id, ShouldDecrementDesiredCapacity=False, **self._retry
        )


def ensure_capacity(
    groups,
    name,
    wanted,
    max_size=None,
    fence=None,
    configuration=None,
    launch_tags=None,
    fresh_wanted=None,
    scale_in=False,
    attempts=6,
    check_mode=False,
    fence_tag=None,
):
    """Bring group `name` to `target_capacity(...)`, re-reading until what it reads satisfies it.

    `wanted` is the first reading of what the work needs; `fresh_wanted()` (when given) reads it
    again for every later attempt. `max_size` is the cap the group is given (None: keep the
    group's, as a scale-in does). `fence` is (parameter, token seen when the run started), or None
    for a run that never raises MaxSize (a scale-in). `configuration` (CreateAutoScalingGroup /
    UpdateAutoScalingGroup launch settings) is needed only to create the group or scale it out; a
    run without it that would do either does nothing and says `needs_configuration`.
    `launch_tags` are written on the group (propagated at launch) before a scale-out, and with
    `fence_tag` the token this run read (see the module docstring).
    """
    if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0):
        raise CapacityError("max_size must be an int >= 0, got %r" % (max_size,))
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise CapacityError("attempts must be an int >= 1, got %r" % (attempts,))
    result = dict(
        changed=False,
        created=False,
        configured=False,
        superseded=False,
        needs_configuration=False,
        converged=False,
        steps=[],
    )

    def fenced():
        """True when a take-down ran after this run started (the token changed)."""
        if fence is None:
            return False
        if groups.token(fence[0]) != fence[1]:
            result.update(superseded=True, msg="a take-down (down.yml) ran after this run started: it wins")
            return True
        return False

    def mark(group, extra=None):
        """Write `extra` tags, and the token this run read, before a write that could launch."""
        tags = dict(extra or {})
        if fence is not None and fence_tag and group_tags(group).get(fence_tag) != fence[1]:
            tags[fence_tag] = fence[1]
        if tags:
            groups.tag(
                name,
                [
                    dict(Key=k, Value=str(v), PropagateAtLaunch=k in (extra or {}))
                    for k, v in sorted(tags.items())
                ],
            )

    def finish(group):
        result.update(summary(group), wanted=wanted)
        result.setdefault("msg", "desired capacity %d" % result["desired_capacity"])
        return result

    group = groups.describe(name)
    if group is None and max_size is None:
        return finish(None)  # a scale-in of a group that does not exist: nothing to do
    current = group["DesiredCapacity"] if group else 0
    cap = max_size if max_size is not None else group["MaxSize"]
    goal = target_capacity(current, wanted, cap, scale_in)
    resize = group is not None and cap != group["MaxSize"]
    if goal == current and not resize:
        result["converged"] = True
        return finish(group)
    scale_out = goal > current
    if scale_out and configuration is None:
        result.update(
            needs_configuration=True, msg="the group must be created or scaled out: launch settings needed"
        )
        return finish(group)
    if check_mode:
        result.update(changed=True, msg="would set the desired capacity from %d to %d" % (current, goal))
        return finish(group)

    # A write that raises MaxSize is fenced twice: before it, and after it (undone on a change).
    if group is None:
        if fenced():
            return finish(None)
        if fence is not None and fence_tag:
            configuration = dict(configuration)
            configuration["Tags"] = [
                *configuration.get("Tags", []),
                dict(Key=fence_tag, Value=fence[1], PropagateAtLaunch=False),
            ]
        result["created"] = groups.create(name, cap, configuration)
        result["changed"] = result["created"]
        result["steps"].append(dict(create=name, max_size=cap, created=result["created"]))
        if fenced():
            if result["created"]:
                groups.close(name)
            return finish(groups.describe(name))
        group = groups.describe(name)
    elif configuration is not None and scale_out:
        groups.configure(name, configuration)
        result.update(configured=True, changed=True)
    if group is not None and cap != group["MaxSize"]:
        was = group["MaxSize"]
        if cap > was and fenced():
            return finish(group)
        if cap > was:
            mark(group)
        groups.set_max_size(name, cap)  # a lower MaxSize lowers the desired capacity with it
        result["changed"] = True
        result["steps"].append(dict(max_size=cap, was=was))
        if cap > was and fenced():
            groups.set_max_size(name, was)
            return finish(groups.describe(name))
        group = groups.describe(name)

    for attempt in range(attempts):
        if attempt > 0:
            group = groups.describe(name)
            if fresh_wanted is not None:
                wanted = fresh_wanted()
        if group is None:  # deleted under us (by hand): nothing left to size
            return finish(None)
        current = group["DesiredCapacity"]
        goal = target_capacity(current, wanted, group["MaxSize"], scale_in)
        if goal == current:
            result["converged"] = True
            return finish(group)
        if goal > current and fenced():
            return finish(group)
        if goal > current:
            mark(group, launch_tags)
        accepted = groups.set_desired(name, goal)
        result["steps"].append(
            dict(attempt=attempt + 1, was=current, wanted=wanted, set=goal, accepted=accepted)
        )
        result["changed"] = result["changed"] or accepted
    result["msg"] = "still moving after %d attempts (other runs are sizing the group)" % attempts
    return finish(groups.describe(name))


def shed_surplus(groups, group):
    """Terminate the live instances beyond the desired capacity, newest first, without replacement.

    Instances are protected from scale-in, so lowering the desired capacity kills nothing by
    itself; a scale-in run chooses what goes. Returns the terminated instance ids.
    """
    if group is None:
        return []
    live = [i["InstanceId"] for i in live_instances(group)]
    surplus = len(live) - group["DesiredCapacity"]
    if surplus <= 0:
        return []
    launched = groups.launch_times(live)
    newest = sorted(live, key=lambda iid: (launched.get(iid) is None, launched.get(iid)), reverse=True)[
        :surplus
    ]
    for iid in newest:
        groups.terminate_in_group(iid)
    return newest


def close_all(groups, tags, fence_parameter, token, passes=10, pause_s=1.0, check_mode=False, fence_tag=None):
    """The take-down: write `token`, then close every group with `tags` and terminate its
    instances, pass after pass until a pass finds nothing open and nothing alive. A group tagged
    `fence_tag` = `token` was opened by a run that started after this take-down: it stays."""
    result = dict(changed=False, groups=[], reopened=[], terminated=[], passes=0)
    if check_mode:
        found = groups.find(tags)
        result.update(
            changed=any(g["MaxSize"] or g["DesiredCapacity"] or live_instances(g) for g in found),
            groups=sorted(g["AutoScalingGroupName"] for g in found),
        )
        return result
    # The token is bookkeeping, rewritten by every take-down: only closing or terminating is a change.
    groups.write_token(fence_parameter, token)
    seen, reopened = set(), set()
    for n in range(passes):
        result["passes"] = n + 1
        busy = False
        for group in groups.find(tags):
            name = group["AutoScalingGroupName"]
            if fence_tag and group_tags(group).get(fence_tag) == token:
                reopened.add(name)
                continue
            seen.add(name)
            if group["MinSize"] or group["MaxSize"] or group["DesiredCapacity"]:
                groups.close(name)
                result["changed"] = busy = True
            live = [i["InstanceId"] for i in live_instances(group)]
            if live:
                groups.terminate(live)
                result["terminated"].extend(iid for iid in live if iid not in result["terminated"])
                result["changed"] = busy = True
        if not busy:
            break
        groups.sleep(pause_s)
    else:
        raise CapacityError("groups %s still had live instances after %d passes" % (sorted(seen), passes))
    result.update(groups=sorted(seen), reopened=sorted(reopened - seen))
    return result
