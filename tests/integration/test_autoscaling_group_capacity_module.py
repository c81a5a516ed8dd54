"""`capillary.pcgr.autoscaling_group_capacity`'s protocol against the local endpoint's Auto Scaling.

The interleavings that concurrent runs produce only sometimes are forced here, one at a time:
a run acting on a stale read, a take-down landing between a run's check and its write.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from capillary.local.endpoint import LocalAWS

sys.path.append(str(Path(__file__).resolve().parents[2] / "collections"))

from ansible_collections.capillary.pcgr.plugins.module_utils.group_capacity import (
    Groups,
    close_all,
    ensure_capacity,
    shed_surplus,
)

from capillary.local.playbook import run_module

pytestmark = pytest.mark.integration

FENCE = "/capillary/race/workers/down"
TAG = "capillary:fence"
MATCH = {"capillary:deployment": "race"}


@pytest.fixture
def configuration(aws: LocalAWS) -> dict[str, Any]:
    """Launch settings of a spot group over the default subnets, from a minimal template."""
    ec2 = aws.client("ec2")
    image = ec2.register_image(Name="race-image", RootDeviceName="/dev/xvda")["ImageId"]
    ec2.create_launch_template(LaunchTemplateName="race", LaunchTemplateData={"ImageId": image})
    subnets = [
        s["SubnetId"]
        for s in ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    ]
    return {
        "MixedInstancesPolicy": {
            "LaunchTemplate": {
                "LaunchTemplateSpecification": {"LaunchTemplateName": "race", "Version": "$Default"},
                "Overrides": [{"InstanceType": "m6i.xlarge"}],
            },
            "InstancesDistribution": {"OnDemandBaseCapacity": 0, "OnDemandPercentageAboveBaseCapacity": 0},
        },
        "VPCZoneIdentifier": ",".join(subnets),
        "NewInstancesProtectedFromScaleIn": True,
        "CapacityRebalance": False,
        "Tags": [{"Key": "capillary:deployment", "Value": "race", "PropagateAtLaunch": False}],
    }


def live(aws: LocalAWS, name: str = "g") -> int:
    groups = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])
    [found] = groups["AutoScalingGroups"] or [{"Instances": []}]
    return sum(1 for i in found["Instances"] if i["LifecycleState"] == "InService")


def described(aws: LocalAWS, name: str = "g") -> dict[str, Any]:
    [found] = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
        "AutoScalingGroups"
    ]
    return dict(found)


class StaleFirstRead(Groups):
    """Groups whose first describe answers what was true earlier (a run that read, then waited)."""

    def __init__(self, aws: LocalAWS, stale: dict[str, Any]) -> None:
        super().__init__(aws.client)
        self.stale: dict[str, Any] | None = stale

    def describe(self, name: str) -> Any:
        if self.stale is not None:
            stale, self.stale = self.stale, None
            return stale
        return super().describe(name)


def test_a_run_acting_on_a_stale_read_ends_at_what_the_fresh_reading_needs(
    aws: LocalAWS, configuration: dict[str, Any]
) -> None:
    # GIVEN the group at 0, read by A (needs 2) and by B (needs 4)
    assert Groups(aws.client).create("g", 4, configuration)
    stale = described(aws)
    # WHEN B sets 4, then A writes from its stale read, while the queue (re-read) now needs 4
    ensure_capacity(Groups(aws.client), "g", 4, max_size=4, configuration=configuration)
    a = ensure_capacity(
        StaleFirstRead(aws, stale), "g", 2, max_size=4, configuration=configuration, fresh_wanted=lambda: 4
    )

    # THEN A's stale write (2) was followed by a fresh read and a write back to 4, and no
    # instance was lost on the way (they are protected from scale-in)
    assert [(s["was"], s["set"]) for s in a["steps"] if "set" in s] == [(0, 2), (2, 4)]
    assert a["converged"] and a["desired_capacity"] == 4
    assert live(aws) == 4
    assert len(aws.client("ec2").describe_instances()["Reservations"]) == 4  # none replaced


def test_a_run_that_reads_enough_needs_no_launch_settings(
    aws: LocalAWS, configuration: dict[str, Any]
) -> None:
    ensure_capacity(Groups(aws.client), "g", 3, max_size=4, configuration=configuration)
    # WHEN a run without launch settings needs 2, then one needs 4
    enough = ensure_capacity(Groups(aws.client), "g", 2, max_size=4)
    more = ensure_capacity(Groups(aws.client), "g", 4, max_size=4)
    missing = ensure_capacity(Groups(aws.client), "other", 1, max_size=4)
    # THEN the first changed nothing; the others did nothing and asked for launch settings
    assert (enough["changed"], enough["needs_configuration"], enough["desired_capacity"]) == (False, False, 3)
    assert (more["changed"], more["needs_configuration"], more["desired_capacity"]) == (False, True, 3)
    assert (missing["exists"], missing["needs_configuration"]) == (False, True)


def test_a_take_down_after_a_run_started_wins_at_every_step(
    aws: LocalAWS, configuration: dict[str, Any]
) -> None:
    ssm = aws.client("ssm")
    # GIVEN a take-down that ran after these runs read "no token"
    ssm.put_parameter(Name=FENCE, Value="down-1", Type="String")

    # WHEN a run would create the group
    created = ensure_capacity(
        Groups(aws.client), "g", 2, max_size=4, fence=(FENCE, ""), configuration=configuration
    )
    # THEN it stopped first
    assert created["superseded"] and not created["exists"]

    # GIVEN the group, closed by that take-down, and the token changed between a run's check
    # and its write: the write raising MaxSize is undone, nothing launched meanwhile
    assert Groups(aws.client).create("g", 4, configuration)
    close_all(Groups(aws.client, sleep=lambda s: None), MATCH, FENCE, "down-1")

    class TokenChangesAfterFirstCheck(Groups):
        checks = 0

        def token(self, parameter: str) -> str:
            self.checks += 1
            if self.checks == 2:
                ssm.put_parameter(Name=FENCE, Value="down-2", Type="String", Overwrite=True)
            return super().token(parameter)

    reopened = ensure_capacity(
        TokenChangesAfterFirstCheck(aws.client),
        "g",
        2,
        max_size=4,
        fence=(FENCE, "down-1"),
        configuration=configuration,
    )
    assert reopened["superseded"]
    assert [s.get("max_size") for s in reopened["steps"]] == [4]  # raised, then put back
    assert (described(aws)["MaxSize"], described(aws)["DesiredCapacity"], live(aws)) == (0, 0, 0)

    # AND AWS itself refuses a write that comes after the close (a run whose check passed earlier)
    assert Groups(aws.client).set_desired("g", 2) is False
    assert live(aws) == 0


def test_a_take_down_closes_every_group_but_one_a_later_run_opened(
    aws: LocalAWS, configuration: dict[str, Any]
) -> None:
    # GIVEN two groups of the deployment with workers
    for name in ("g", "h"):
        ensure_capacity(Groups(aws.client), name, 2, max_size=4, configuration=configuration)
    assert (live(aws, "g"), live(aws, "h")) == (2, 2)

    # WHEN a take-down runs
    down = close_all(Groups(aws.client, sleep=lambda s: None), MATCH, FENCE, "down-1", fence_tag=TAG)

    # THEN both are closed and empty, in two passes (the second found nothing), the token is written
    assert down["groups"] == ["g", "h"] and len(down["terminated"]) == 4 and down["passes"] == 2
    assert [(described(aws, n)["MaxSize"], live(aws, n)) for n in ("g", "h")] == [(0, 0), (0, 0)]
    assert aws.client("ssm").get_parameter(Name=FENCE)["Parameter"]["Value"] == "down-1"

    # WHEN a run that read the new token (a later event) opens g again, and the take-down's pass repeats
    later = ensure_capacity(
        Groups(aws.client),
        "g",
        3,
        max_size=4,
        fence=(FENCE, "down-1"),
        configuration=configuration,
        fence_tag=TAG,
    )
    again = close_all(Groups(aws.client, sleep=lambda s: None), MATCH, FENCE, "down-1", fence_tag=TAG)

    # THEN the later run's group stays as it made it
    assert later["desired_capacity"] == 3 and not later["superseded"]
    assert again["reopened"] == ["g"] and not again["changed"]
    assert live(aws, "g") == 3


def test_a_scale_in_keeps_what_the_queue_needs_and_sheds_the_newest(
    aws: LocalAWS, configuration: dict[str, Any]
) -> None:
    ensure_capacity(Groups(aws.client), "g", 2, max_size=4, configuration=configuration)
    oldest = sorted(i["InstanceId"] for i in described(aws)["Instances"])
    time.sleep(1.1)  # LaunchTime has whole seconds (AWS and moto): "newest" needs a later second
    ensure_capacity(Groups(aws.client), "g", 4, max_size=4, configuration=configuration)

    groups = Groups(aws.client)
    lowered = ensure_capacity(groups, "g", 2, scale_in=True)
    shed = shed_surplus(groups, groups.describe("g"))

    assert lowered["desired_capacity"] == 2
    assert len(shed) == 2 and not set(shed) & set(oldest)
    assert sorted(i["InstanceId"] for i in described(aws)["Instances"]) == oldest


def test_the_module_in_check_mode_writes_nothing(
    aws: LocalAWS, playbook: Any, tmp_path: Path, configuration: Any
) -> None:
    ensure_capacity(Groups(aws.client), "g", 1, max_size=4, configuration=configuration)
    _, result = run_module(
        playbook,
        tmp_path,
        "capillary.pcgr.autoscaling_group_capacity",
        {"name": "g", "desired": 1, "max_size": 2},
        check=True,
    )
    assert result["changed"] is True and "would set" in result["msg"]
    assert described(aws)["MaxSize"] == 4
