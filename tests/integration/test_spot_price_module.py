"""`capillary.pcgr.ec2_spot_price_info` in a playbook, against the local endpoint with seeded prices."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from capillary.local.endpoint import LocalAWS, SpotPrice
from capillary.local.playbook import run_module

pytestmark = pytest.mark.integration


def lookup(playbook: Any, tmp_path: Path, check: bool = False, **args: Any) -> dict[str, Any]:
    """Run the module once through ansible-playbook and return what it registered."""
    recap, result = run_module(playbook, tmp_path, "capillary.pcgr.ec2_spot_price_info", args, check=check)
    assert recap.changed == 1, recap.tail()  # only the copy task changes
    assert result["changed"] is False
    return result


def hourly(itype: str, zone: str, prices: list[float], now: dt.datetime) -> list[SpotPrice]:
    """One price per hour, the last one an hour before now (the first is oldest)."""
    n = len(prices)
    return [SpotPrice(itype, zone, p, now - dt.timedelta(hours=n - i)) for i, p in enumerate(prices)]


@pytest.fixture
def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def test_choice_is_the_cheapest_pool_under_the_cap(
    aws: LocalAWS, playbook: Any, tmp_path: Path, now: Any
) -> None:
    # GIVEN three pools, one cheaper than the cap, one cheaper still but in a zone not asked for
    aws.seed_spot_prices(
        hourly("m5.xlarge", "eu-west-1a", [0.080, 0.078, 0.079], now)
        + hourly("m6i.xlarge", "eu-west-1b", [0.070, 0.069, 0.071], now)
        + hourly("c5.xlarge", "eu-west-1b", [0.120, 0.125, 0.130], now)
        + hourly("m6i.xlarge", "eu-west-1c", [0.050, 0.050, 0.050], now)
    )

    # WHEN the module looks up the last day under a cap of 0.10 in zones a and b
    result = lookup(
        playbook,
        tmp_path,
        instance_types=["m5.xlarge", "m6i.xlarge", "c5.xlarge"],
        availability_zones=["eu-west-1a", "eu-west-1b"],
        max_price=0.10,
        strategy="cheapest",
        on_demand_prices={"m6i.xlarge": 0.214},
    )

    # THEN the choice is m6i.xlarge in eu-west-1b, with m5.xlarge second and c5 excluded
    assert (result["choice"]["instance_type"], result["choice"]["availability_zone"]) == (
        "m6i.xlarge",
        "eu-west-1b",
    )
    assert result["choice"]["current_price"] == pytest.approx(0.071)
    assert [c["instance_type"] for c in result["candidates"]] == ["m6i.xlarge", "m5.xlarge"]
    assert result["choice"]["savings_percent"] == pytest.approx(66.8)
    assert {p["instance_type"] for p in result["prices"]} == {"m5.xlarge", "m6i.xlarge", "c5.xlarge"}
    assert all(p["availability_zone"] != "eu-west-1c" for p in result["prices"])


def test_everything_above_the_cap_gives_no_choice(
    aws: LocalAWS, playbook: Any, tmp_path: Path, now: Any
) -> None:
    # GIVEN one type in two zones, never below 0.09
    aws.seed_spot_prices(
        p for zone in ("eu-west-1a", "eu-west-1b") for p in hourly("m5.xlarge", zone, [0.09, 0.10], now)
    )

    # WHEN the cap is 0.05

    result = lookup(playbook, tmp_path, instance_types=["m5.xlarge"], max_price=0.05)

    # THEN there is no choice, the message says why, and the prices are still reported
    assert result["candidates"] == []
    assert result["choice"] == {}
    assert "above the cap of 0.05" in result["msg"]
    assert len(result["prices"]) == 2


def test_stable_beats_cheapest_on_a_spiky_series(
    aws: LocalAWS, playbook: Any, tmp_path: Path, now: Any
) -> None:
    # GIVEN a pool that is cheapest now but spiked to 0.31 six hours ago, and a steady one
    aws.seed_spot_prices(
        hourly("m5.xlarge", "eu-west-1a", [0.060] * 12 + [0.310, 0.300] + [0.058] * 6, now)
        + hourly("m6i.xlarge", "eu-west-1b", [0.068, 0.070, 0.071, 0.069] * 5, now)
    )
    args = {"instance_types": ["m5.xlarge", "m6i.xlarge"], "lookback_hours": 24}

    cheapest = lookup(playbook, tmp_path, strategy="cheapest", **args)["choice"]
    stable = lookup(playbook, tmp_path, strategy="stable", **args)["choice"]

    assert cheapest["instance_type"] == "m5.xlarge"
    assert stable["instance_type"] == "m6i.xlarge"
    assert stable["max_price"] < cheapest["max_price"]
    assert cheapest["observations"] == 20


def test_subnets_resolve_to_zones_and_the_choice_carries_its_subnet(
    aws: LocalAWS, playbook: Any, tmp_path: Path, now: Any
) -> None:
    # GIVEN the default VPC's subnets; prices in every zone, lowest in zone c
    subnets = {s["AvailabilityZone"]: s["SubnetId"] for s in aws.client("ec2").describe_subnets()["Subnets"]}
    aws.seed_spot_prices(
        p
        for zone, price in (("eu-west-1a", 0.08), ("eu-west-1b", 0.07), ("eu-west-1c", 0.06))
        for p in hourly("m5.xlarge", zone, [price], now)
    )

    # WHEN only the subnets in zones a and b are given
    result = lookup(
        playbook,
        tmp_path,
        instance_types=["m5.xlarge"],
        subnets=[subnets["eu-west-1a"], subnets["eu-west-1b"]],
    )

    # THEN zone c is not a candidate and the choice names its subnet
    assert result["choice"]["availability_zone"] == "eu-west-1b"
    assert result["choice"]["subnet_id"] == subnets["eu-west-1b"]
    assert [c["subnet_id"] for c in result["candidates"]] == [subnets["eu-west-1b"], subnets["eu-west-1a"]]


def test_requirements_resolve_through_describe_instance_types(
    aws: LocalAWS, playbook: Any, tmp_path: Path, now: Any
) -> None:
    # GIVEN prices for a type that meets 4 vCPU / 16 GiB and one that does not
    aws.seed_spot_prices(
        hourly("m5.xlarge", "eu-west-1a", [0.08], now) + hourly("m5.large", "eu-west-1a", [0.04], now)
    )

    result = lookup(
        playbook, tmp_path, requirements={"min_vcpus": 4, "min_memory_mib": 16384, "max_vcpus": 4}
    )

    assert "m5.xlarge" in result["instance_types"]
    assert "m5.large" not in result["instance_types"]
    assert result["choice"]["instance_type"] == "m5.xlarge"


def test_check_mode_reads_prices_too(aws: LocalAWS, playbook: Any, tmp_path: Path, now: Any) -> None:
    # GIVEN one pool; WHEN the playbook runs with --check; THEN the module still answers
    aws.seed_spot_prices(hourly("m5.xlarge", "eu-west-1a", [0.08], now))
    result = lookup(playbook, tmp_path, check=True, instance_types=["m5.xlarge"])
    assert result["choice"]["current_price"] == pytest.approx(0.08)
