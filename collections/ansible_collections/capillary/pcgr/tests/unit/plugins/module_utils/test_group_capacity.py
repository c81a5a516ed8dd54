"""The arithmetic every sizing run shares: what it writes, what counts, what the local group does.

The calls against a real (local) endpoint, and the races, are in
tests/integration/test_autoscaling_group_capacity_module.py and test_concurrent_triggers.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.capillary.pcgr.plugins.module_utils.group_capacity import (
    CapacityError,
    live_instances,
    summary,
    target_capacity,
)
from ansible_collections.capillary.pcgr.plugins.modules.autoscaling_group_capacity import launch_configuration
from ansible_collections.capillary.pcgr.plugins.modules.podman_container_group import plan, run_argv, slot


@pytest.mark.parametrize(
    ("current", "wanted", "max_size", "scale_in", "expected"),
    [
        (0, 2, 4, False, 2),
        (4, 2, 4, False, 4),  # a scale-out run never takes capacity another run asked for
        (0, 100, 4, False, 4),  # the cap
        (6, 6, 4, False, 4),  # a lowered cap lowers it
        (4, 1, 4, True, 1),  # a scale-in sets exactly what is needed
        (1, 9, 4, True, 4),  # ... capped, and raises back when the queue grew
        (0, 0, 0, False, 0),
    ],
)
def test_target_capacity(current: int, wanted: int, max_size: int, scale_in: bool, expected: int) -> None:
    assert target_capacity(current, wanted, max_size, scale_in) == expected


@pytest.mark.parametrize("bad", [-1, True, 1.5, "2", None])
def test_target_capacity_refuses_what_is_not_a_count(bad: Any) -> None:
    with pytest.raises(CapacityError, match="wanted must be a count"):
        target_capacity(0, bad, 4)


def test_only_launching_and_in_service_instances_are_capacity() -> None:
    group = {
        "AutoScalingGroupName": "g",
        "DesiredCapacity": 2,
        "MinSize": 0,
        "MaxSize": 4,
        "Instances": [
            {"InstanceId": "i-1", "LifecycleState": "InService"},
            {"InstanceId": "i-2", "LifecycleState": "Pending"},
            {"InstanceId": "i-3", "LifecycleState": "Terminating"},
            {"InstanceId": "i-4", "LifecycleState": "Terminating:Wait"},
            {"InstanceId": "i-5", "LifecycleState": "Detaching"},
            {"InstanceId": "i-6", "LifecycleState": "Standby"},
        ],
    }
    assert [i["InstanceId"] for i in live_instances(group)] == ["i-1", "i-2"]
    assert summary(group)["instances"] == ["i-1", "i-2"]
    assert summary(None) == {"exists": False, "desired_capacity": 0, "max_size": 0, "instances": []}


def _params(**overrides: Any) -> dict[str, Any]:
    return {
        "launch_template": {"name": "lt", "version": "$Default"},
        "instance_types": ["m6i.xlarge", "m5.xlarge"],
        "subnets": ["subnet-b", "subnet-a"],
        "on_demand_base_capacity": 0,
        "on_demand_percentage": 0,
        "spot_allocation_strategy": "price-capacity-optimized",
        "spot_max_price": None,
        "protect_from_scale_in": True,
        "tags": {"capillary:deployment": "demo"},
        **overrides,
    }


def test_launch_configuration_is_spot_first_protected_and_never_rebalancing() -> None:
    conf = launch_configuration(_params(spot_max_price=0.1))
    assert conf is not None
    policy = conf["MixedInstancesPolicy"]
    assert policy["LaunchTemplate"]["LaunchTemplateSpecification"] == {
        "LaunchTemplateName": "lt",
        "Version": "$Default",
    }
    assert policy["LaunchTemplate"]["Overrides"] == [
        {"InstanceType": "m6i.xlarge"},
        {"InstanceType": "m5.xlarge"},
    ]
    assert policy["InstancesDistribution"] == {
        "OnDemandBaseCapacity": 0,
        "OnDemandPercentageAboveBaseCapacity": 0,
        "OnDemandAllocationStrategy": "prioritized",
        "SpotAllocationStrategy": "price-capacity-optimized",
        "SpotMaxPrice": "0.100000",
    }
    assert conf["VPCZoneIdentifier"] == "subnet-b,subnet-a"
    assert conf["NewInstancesProtectedFromScaleIn"] is True
    assert conf["CapacityRebalance"] is False
    assert conf["Tags"] == [{"Key": "capillary:deployment", "Value": "demo", "PropagateAtLaunch": False}]
    assert launch_configuration(_params(launch_template=None)) is None


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"subnets": []}, "subnets is empty"),
        ({"on_demand_percentage": 101}, "on_demand_percentage must be 0 to 100"),
    ],
)
def test_launch_configuration_names_what_is_wrong(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(CapacityError, match=reason):
        launch_configuration(_params(**overrides))


PREFIX = "capillary-demo-worker-"


def test_slots_are_the_prefix_and_a_number_only() -> None:
    assert slot(PREFIX, PREFIX + "12") == 12
    assert slot(PREFIX, PREFIX + "x") is None
    assert slot(PREFIX, "capillary-demo-worker-1-old") is None
    assert slot(PREFIX, "other-worker-1") is None


def test_the_local_group_starts_the_lowest_free_slots_up_to_the_cap() -> None:
    # GIVEN slot 2 running and slot 1 exited but not yet removed (its name is still taken)
    containers = {PREFIX + "2": "running", PREFIX + "1": "exited"}
    # THEN 3 wanted under a cap of 4 starts slots 3 and 4; 9 wanted starts the same (the cap)
    assert plan(PREFIX, containers, 3, 4) == ([PREFIX + "3", PREFIX + "4"], [])
    assert plan(PREFIX, containers, 9, 4) == ([PREFIX + "3", PREFIX + "4"], [])
    # AND an up never removes, a scale-in never starts and removes the highest live slots first
    assert plan(PREFIX, containers, 0, 4) == ([], [])
    running = {PREFIX + str(i): "running" for i in (1, 2, 3)}
    assert plan(PREFIX, running, 1, 999, scale_in=True) == ([], [PREFIX + "3", PREFIX + "2"])
    assert plan(PREFIX, running, 9, 999, scale_in=True) == ([], [])


def test_a_container_starts_from_an_argv_with_every_option() -> None:
    params = {
        "executable": "podman",
        "network": "host",
        "systemd": "always",
        "auto_remove": True,
        "cap_add": ["SYS_ADMIN"],
        "labels": {"capillary:event": "e; rm -rf /"},
        "volumes": ["/run/launch.env:/etc/capillary/launch.env:ro"],
        "image": "localhost/capillary-worker:2.3.2",
    }
    argv = run_argv(params, PREFIX + "1")
    assert argv == [
        "podman", "run", "--detach", "--name", PREFIX + "1", "--network", "host", "--systemd", "always",
        "--rm", "--cap-add", "SYS_ADMIN", "--label", "capillary:event=e; rm -rf /",
        "--volume", "/run/launch.env:/etc/capillary/launch.env:ro", "localhost/capillary-worker:2.3.2",
    ]  # fmt: skip
