"""Spot pool statistics and selection, on DescribeSpotPriceHistory rows as AWS returns them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.capillary.pcgr.plugins.module_utils.spot_price import (
    SpotSelectionError,
    price_statistics,
    select,
    types_meeting,
    window,
    zone_subnets_from,
)

REPO = Path(__file__).resolve().parents[8]
RECORDED = REPO / "tests/data/spot/eu-west-1.json"
END = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
START = END - dt.timedelta(hours=24)


def row(
    itype: str, zone: str, price: float, hours_before_end: float, product: str = "Linux/UNIX"
) -> dict[str, Any]:
    """One SpotPriceHistory row, shaped as boto3 returns it (Timestamp is a datetime)."""
    return {
        "AvailabilityZone": zone,
        "InstanceType": itype,
        "ProductDescription": product,
        "SpotPrice": f"{price:.6f}",
        "Timestamp": END - dt.timedelta(hours=hours_before_end),
    }


def by_pool(stats: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["instance_type"], r["availability_zone"], r["product_description"]): r for r in stats}


def test_mean_weighs_each_price_by_how_long_it_held_including_the_one_in_force_at_start() -> None:
    # GIVEN 0.10 in force since before the window, 0.40 for the last 6 hours of 24
    history = [row("m5.xlarge", "eu-west-1a", 0.10, 30), row("m5.xlarge", "eu-west-1a", 0.40, 6)]

    # WHEN the statistics are computed over the window
    [stats] = price_statistics(history, START, END)

    # THEN the mean is (18 h x 0.10 + 6 h x 0.40) / 24 h, not the plain mean of the two rows
    assert stats["mean_price"] == pytest.approx((18 * 0.10 + 6 * 0.40) / 24)
    assert (stats["current_price"], stats["min_price"], stats["max_price"]) == (0.40, 0.10, 0.40)
    assert stats["observations"] == 2


def test_rows_before_the_price_in_force_at_start_and_after_the_end_are_ignored() -> None:
    # GIVEN an old price superseded before the window opened, and one stamped after its end
    history = [
        row("c5.xlarge", "eu-west-1b", 0.90, 40),  # superseded before the window: not in force
        row("c5.xlarge", "eu-west-1b", 0.07, 26),  # in force when the window opened
        row("c5.xlarge", "eu-west-1b", 0.08, 2),
        row("c5.xlarge", "eu-west-1b", 0.50, -1),  # after the end of the window
    ]

    [stats] = price_statistics(history, START, END)

    assert stats["max_price"] == 0.08
    assert stats["min_price"] == 0.07
    assert stats["current_price"] == 0.08
    assert stats["observations"] == 2


def test_each_product_description_is_its_own_pool() -> None:
    # GIVEN the same type and zone priced for Linux and for Windows
    history = [
        row("m5.xlarge", "eu-west-1a", 0.07, 3, "Linux/UNIX"),
        row("m5.xlarge", "eu-west-1a", 0.16, 3, "Windows"),
        row("m5.xlarge", "eu-west-1a", 0.09, 3, "Red Hat Enterprise Linux"),
    ]

    stats = by_pool(price_statistics(history, START, END))

    assert stats["m5.xlarge", "eu-west-1a", "Linux/UNIX"]["current_price"] == 0.07
    assert stats["m5.xlarge", "eu-west-1a", "Windows"]["current_price"] == 0.16
    assert stats["m5.xlarge", "eu-west-1a", "Red Hat Enterprise Linux"]["current_price"] == 0.09
    assert select(list(stats.values()))["choice"]["product_description"] == "Linux/UNIX"


def test_rows_from_several_pages_and_duplicates_across_pages_count_once() -> None:
    # GIVEN two pages of one series (as a paginator would yield them) that overlap by one row
    page_1 = [row("m6i.xlarge", "eu-west-1c", 0.08, h) for h in (1, 5, 9)]
    page_2 = [*(row("m6i.xlarge", "eu-west-1c", 0.07, 9 + h) for h in (4, 20)), page_1[-1]]

    [stats] = price_statistics(page_1 + page_2, START, END)

    assert stats["observations"] == 5
    assert stats["min_price"] == 0.07


def spiky_and_steady() -> list[dict[str, Any]]:
    """A pool that is cheapest now but spiked to 0.30 this afternoon, and a steady one."""
    return price_statistics(
        [
            row("m5.xlarge", "eu-west-1a", 0.060, 25),
            row("m5.xlarge", "eu-west-1a", 0.300, 8),
            row("m5.xlarge", "eu-west-1a", 0.058, 6),
            row("m6i.xlarge", "eu-west-1b", 0.068, 25),
            row("m6i.xlarge", "eu-west-1b", 0.071, 12),
        ],
        START,
        END,
    )


def test_cheapest_takes_the_lowest_current_price() -> None:
    result = select(spiky_and_steady(), "cheapest")
    assert result["choice"]["instance_type"] == "m5.xlarge"
    assert [c["rank"] for c in result["candidates"]] == [1, 2]


def test_stable_takes_the_lowest_maximum_over_the_window() -> None:
    result = select(spiky_and_steady(), "stable")
    assert (result["choice"]["instance_type"], result["choice"]["score"]) == ("m6i.xlarge", 0.071)


def test_balanced_is_the_mean_of_current_mean_and_max() -> None:
    stats = spiky_and_steady()
    result = select(stats, "balanced")
    for c in result["candidates"]:
        assert c["score"] == pytest.approx(
            (c["current_price"] + c["mean_price"] + c["max_price"]) / 3, abs=1e-6
        )
    assert result["choice"]["instance_type"] == "m6i.xlarge"


def test_the_cap_excludes_pools_priced_above_it() -> None:
    # GIVEN a cap between the two current prices
    result = select(spiky_and_steady(), "stable", max_price=0.065)

    # THEN only the pool under the cap is a candidate, whatever the strategy prefers
    assert [c["instance_type"] for c in result["candidates"]] == ["m5.xlarge"]
    assert result["choice"]["current_price"] <= 0.065


def test_nothing_under_the_cap_gives_no_candidates_and_says_why() -> None:
    result = select(spiky_and_steady(), "cheapest", max_price=0.01)
    assert result["candidates"] == []
    assert result["choice"] == {}
    assert "2 priced above the cap of 0.01" in result["msg"]


def test_no_history_at_all_says_so() -> None:
    result = select([], "cheapest")
    assert result == {"candidates": [], "choice": {}, "msg": result["msg"]}
    assert "no spot price history" in result["msg"]


def test_subnets_restrict_zones_and_the_choice_carries_its_subnet() -> None:
    # GIVEN subnets only in eu-west-1b, resolved from DescribeSubnets rows
    zones = zone_subnets_from(
        [
            {"SubnetId": "subnet-b2", "AvailabilityZone": "eu-west-1b"},
            {"SubnetId": "subnet-b1", "AvailabilityZone": "eu-west-1b"},
        ],
        ["subnet-b1", "subnet-b2"],
    )

    result = select(spiky_and_steady(), "cheapest", zone_subnets=zones)

    assert zones == {"eu-west-1b": ["subnet-b1", "subnet-b2"]}
    assert [(c["availability_zone"], c["subnet_id"]) for c in result["candidates"]] == [
        ("eu-west-1b", "subnet-b1")
    ]


def test_a_subnet_the_api_did_not_return_is_named() -> None:
    with pytest.raises(SpotSelectionError, match="subnets not found: subnet-gone"):
        zone_subnets_from(
            [{"SubnetId": "subnet-a", "AvailabilityZone": "eu-west-1a"}], ["subnet-a", "subnet-gone"]
        )


def test_savings_against_on_demand_where_the_price_is_known() -> None:
    result = select(spiky_and_steady(), "cheapest", on_demand_prices={"m5.xlarge": 0.214})
    by_type = {c["instance_type"]: c for c in result["candidates"]}
    assert by_type["m5.xlarge"]["savings_per_hour"] == pytest.approx(0.214 - 0.058)
    assert by_type["m5.xlarge"]["savings_percent"] == pytest.approx(72.9)
    assert "savings_percent" not in by_type["m6i.xlarge"]


def test_on_demand_prices_given_as_strings_are_read_as_numbers() -> None:
    # extra vars and templated dicts hand numbers over as strings
    result = select(spiky_and_steady(), "cheapest", on_demand_prices={"m5.xlarge": "0.214"})
    assert result["choice"]["on_demand_price"] == 0.214


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "fastest"}, "strategy 'fastest' is not one of cheapest, stable, balanced"),
        ({"max_price": -1}, "max_price must be a positive"),
        ({"on_demand_prices": {"m5.xlarge": "cheap"}}, r"on_demand_prices\[m5.xlarge\] must be a positive"),
    ],
)
def test_bad_input_is_named_with_the_reason(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(SpotSelectionError, match=message):
        select(spiky_and_steady(), **kwargs)


def test_a_row_not_in_api_shape_is_rejected_by_name() -> None:
    with pytest.raises(SpotSelectionError, match="not in DescribeSpotPriceHistory shape"):
        price_statistics([{"InstanceType": "m5.xlarge", "SpotPrice": "0.1"}], START, END)


def test_the_window_must_be_positive() -> None:
    with pytest.raises(SpotSelectionError, match="lookback_hours must be a positive"):
        window(END, 0)
    assert window(END, 24) == (START, END)


def instance_type(name: str, vcpus: int, mib: int, arch: str = "x86_64", spot: bool = True) -> dict[str, Any]:
    """One DescribeInstanceTypes row with the fields the resolution reads."""
    return {
        "InstanceType": name,
        "VCpuInfo": {"DefaultVCpus": vcpus},
        "MemoryInfo": {"SizeInMiB": mib},
        "ProcessorInfo": {"SupportedArchitectures": [arch]},
        "SupportedUsageClasses": ["on-demand", "spot"] if spot else ["on-demand"],
    }


def test_requirements_resolve_to_types_meeting_them() -> None:
    rows = [
        instance_type("m5.large", 2, 8192),
        instance_type("m5.xlarge", 4, 16384),
        instance_type("r5.xlarge", 4, 32768),
        instance_type("m6g.xlarge", 4, 16384, arch="arm64"),
        instance_type("m5.8xlarge", 32, 131072),
        instance_type("u-6tb1.metal", 448, 6291456, spot=False),
    ]

    chosen = types_meeting(
        rows, {"min_vcpus": 4, "min_memory_mib": 16384, "max_vcpus": 8, "architecture": "x86_64"}
    )

    assert chosen == ["m5.xlarge", "r5.xlarge"]
    assert types_meeting(rows, {"min_vcpus": 4, "min_memory_mib": 16384, "architecture": "arm64"}) == [
        "m6g.xlarge"
    ]


def test_requirements_without_minimums_are_rejected() -> None:
    with pytest.raises(SpotSelectionError, match=r"requirements\.min_vcpus must be a positive integer"):
        types_meeting([], {"min_memory_mib": 1024})


def test_recorded_series_has_a_spiky_pool_that_cheapest_takes_and_stable_avoids() -> None:
    # GIVEN the recorded eu-west-1 day (DescribeSpotPriceHistory JSON, Timestamp as a string)
    history = json.loads(RECORDED.read_text())
    end = dt.datetime(2026, 11, 19, 17, 0, tzinfo=dt.UTC)
    stats = [
        s
        for s in price_statistics(history, end - dt.timedelta(hours=12), end)
        if s["instance_type"] in ("m5.xlarge", "m6i.xlarge", "m4.xlarge")
    ]

    # WHEN the two strategies choose right after the afternoon spike
    cheapest, stable = select(stats, "cheapest")["choice"], select(stats, "stable")["choice"]

    # THEN cheapest takes the pool that spiked (m5.xlarge in eu-west-1b, now the lowest price) and
    # stable takes one whose worst price over the window is below the spiky pool's
    assert len(stats) == 9
    assert (cheapest["instance_type"], cheapest["availability_zone"]) == ("m5.xlarge", "eu-west-1b")
    assert cheapest["max_price"] > 2 * cheapest["current_price"]
    assert stable["max_price"] == min(s["max_price"] for s in stats)
    assert stable["max_price"] < cheapest["max_price"] / 2
