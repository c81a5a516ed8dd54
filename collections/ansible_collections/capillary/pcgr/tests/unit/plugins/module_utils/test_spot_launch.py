"""Launching pool by pool: the RunInstances request, skipping pools without capacity, fallback."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.capillary.pcgr.plugins.module_utils.spot_launch import (
    LaunchError,
    launch,
    run_request,
)

POOLS = [
    {"instance_type": "m6i.xlarge", "subnet_id": "subnet-b", "availability_zone": "eu-west-1b", "rank": 1},
    {"instance_type": "m5.xlarge", "subnet_id": "subnet-a", "availability_zone": "eu-west-1a", "rank": 2},
]


def params(**overrides: Any) -> dict[str, Any]:
    return {
        "count": 2,
        "pools": POOLS,
        "image_id": "ami-12345678",
        "iam_instance_profile": "capillary-demo-worker",
        "security_group_ids": None,
        "user_data": "#cloud-config\n",
        "volumes": [{"device_name": "/dev/xvda", "size": 30}, {"device_name": "/dev/sdf", "size": 80}],
        "metadata_tokens": "required",
        "metadata_hop_limit": 1,
        "instance_initiated_shutdown_behavior": "terminate",
        "market": "spot",
        "max_price": 0.1,
        "on_demand_fallback": False,
        "tags": {"capillary:deployment": "demo", "Name": "capillary-demo-worker"},
        **overrides,
    }


class AwsError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class Ec2:
    """Answers RunInstances from a script: an error code, or how many instances a pool has."""

    def __init__(self, script: dict[tuple[str, str], Any]) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []

    def run_instances(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        market = "spot" if "InstanceMarketOptions" in request else "on-demand"
        answer = self.script.get((request["InstanceType"], market), 0)
        if isinstance(answer, str):
            raise AwsError(answer)
        n = min(answer, request["MaxCount"])
        return {
            "Instances": [
                {
                    "InstanceId": f"i-{len(self.requests)}{k}",
                    "InstanceType": request["InstanceType"],
                    "SubnetId": request["SubnetId"],
                }
                for k in range(n)
            ]
        }


def code_of(exc: Exception) -> str | None:
    return exc.code if isinstance(exc, AwsError) else None


def test_the_request_carries_imdsv2_encryption_shutdown_profile_tags_and_the_cap() -> None:
    request = run_request(params(), POOLS[0], "spot", 2)

    assert request["MetadataOptions"] == {
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": 1,
        "HttpEndpoint": "enabled",
    }
    assert all(
        m["Ebs"]["Encrypted"] and m["Ebs"]["DeleteOnTermination"] for m in request["BlockDeviceMappings"]
    )
    assert [m["Ebs"]["VolumeSize"] for m in request["BlockDeviceMappings"]] == [30, 80]
    assert request["InstanceInitiatedShutdownBehavior"] == "terminate"
    assert request["IamInstanceProfile"] == {"Name": "capillary-demo-worker"}
    assert request["SubnetId"] == "subnet-b"
    assert {t["ResourceType"] for t in request["TagSpecifications"]} == {
        "instance",
        "volume",
        "spot-instances-request",
    }
    assert request["InstanceMarketOptions"]["SpotOptions"]["MaxPrice"] == "0.100000"
    assert request["InstanceMarketOptions"]["SpotOptions"]["SpotInstanceType"] == "one-time"
    assert (request["MinCount"], request["MaxCount"]) == (1, 2)


def test_an_on_demand_request_has_no_market_options_nor_spot_request_tags() -> None:
    request = run_request(params(), POOLS[0], "on-demand", 1)
    assert "InstanceMarketOptions" not in request
    assert "spot-instances-request" not in {t["ResourceType"] for t in request["TagSpecifications"]}


def test_a_pool_without_capacity_is_skipped_for_the_next() -> None:
    ec2 = Ec2({("m6i.xlarge", "spot"): "InsufficientInstanceCapacity", ("m5.xlarge", "spot"): 5})

    result = launch(ec2.run_instances, params(), code_of)

    assert [i["instance_type"] for i in result["instances"]] == ["m5.xlarge", "m5.xlarge"]
    assert result["attempts"][0]["error_code"] == "InsufficientInstanceCapacity"
    assert result["attempts"][1]["launched"] == 2


def test_a_partly_filled_pool_leaves_the_rest_to_the_next() -> None:
    ec2 = Ec2({("m6i.xlarge", "spot"): 1, ("m5.xlarge", "spot"): 5})
    result = launch(ec2.run_instances, params(count=3), code_of)
    assert [r["MaxCount"] for r in ec2.requests] == [3, 2]
    assert len(result["instances"]) == 3


def test_on_demand_fallback_after_every_spot_pool_failed() -> None:
    ec2 = Ec2(
        {
            ("m6i.xlarge", "spot"): "SpotMaxPriceTooLow",
            ("m5.xlarge", "spot"): "InsufficientInstanceCapacity",
            ("m6i.xlarge", "on-demand"): 5,
        }
    )
    result = launch(ec2.run_instances, params(on_demand_fallback=True), code_of)
    assert {i["market"] for i in result["instances"]} == {"on-demand"}
    assert len(result["instances"]) == 2


def test_without_fallback_nothing_launches_when_spot_has_no_capacity() -> None:
    ec2 = Ec2(
        {
            ("m6i.xlarge", "spot"): "InsufficientInstanceCapacity",
            ("m5.xlarge", "spot"): "InsufficientInstanceCapacity",
        }
    )
    result = launch(ec2.run_instances, params(), code_of)
    assert result["instances"] == []
    assert len(result["attempts"]) == 2


def test_an_error_that_is_not_about_capacity_propagates() -> None:
    ec2 = Ec2({("m6i.xlarge", "spot"): "UnauthorizedOperation"})
    with pytest.raises(AwsError):
        launch(ec2.run_instances, params(), code_of)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pools": []}, "pools is empty"),
        ({"pools": [{"subnet_id": "subnet-a"}]}, r"pools\[0\] has no instance_type"),
        ({"count": -1}, "count must be 0 or more"),
        ({"volumes": [{"device_name": "/dev/xvda", "size": 0}]}, r"volumes\[0\].size must be a positive"),
    ],
)
def test_bad_input_is_named(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(LaunchError, match=message):
        launch(Ec2({}).run_instances, params(**overrides), code_of)
