"""The cost arithmetic a run record states, its totals, and the spot price at launch it starts from."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from capillary.contract.cost import GIB, S3_STANDARD_USD_PER_GB_MONTH, cost_row, cost_totals, sample_cost
from capillary.worker.config import ConsumerConfig
from capillary.worker.provenance import Provenance, image_facts, release_facts, spot_price_at_launch

LAUNCH = "2026-12-01T10:00:00Z"
SPOT = {
    "instance_id": "i-0abc",
    "instance_type": "m6i.xlarge",
    "availability_zone": "eu-west-1a",
    "purchase_option": "spot",
    "launch_time": LAUNCH,
}


def test_compute_is_price_times_wall_time_shared_and_storage_one_month_of_s3() -> None:
    # GIVEN a sample that held a 0.20 USD/h instance for 90 minutes, 1 GiB in and 3 GiB out
    cost = sample_cost(0.20, 5400, GIB, 3 * GIB)
    # THEN compute is 0.30 USD, storage four GiB-months of S3 Standard, and the total both
    assert cost["compute_usd"] == pytest.approx(0.30)
    assert cost["storage_usd"] == pytest.approx(4 * S3_STANDARD_USD_PER_GB_MONTH)
    assert cost["total_usd"] == pytest.approx(0.30 + 4 * S3_STANDARD_USD_PER_GB_MONTH)
    assert cost["currency"] == "USD" and cost["estimate"] is True
    assert cost["basis"]["samples_sharing_instance"] == 1
    assert "DescribeSpotPriceHistory" in cost["method"] and "estimate" in cost["method"].lower()
    # AND two samples sharing the instance at once halve the compute share
    assert sample_cost(0.20, 5400, GIB, 3 * GIB, samples_sharing_instance=2)["compute_usd"] == pytest.approx(
        0.15
    )


def test_without_a_price_there_is_no_compute_share_and_no_total() -> None:
    cost = sample_cost(None, 5400, GIB, GIB)
    assert cost["compute_usd"] is None and cost["total_usd"] is None
    assert cost["storage_usd"] == pytest.approx(2 * S3_STANDARD_USD_PER_GB_MONTH)
    with pytest.raises(ValueError, match="samples_sharing_instance"):
        sample_cost(0.1, 1, 1, 1, samples_sharing_instance=0)


def test_totals_sum_what_is_known_and_count_what_is_not() -> None:
    records = [
        {"sample": "a", "cost": sample_cost(0.36, 3600, 0, 0), "versions": {"engine": "pcgr"}},
        {"sample": "b", "cost": sample_cost(None, 3600, GIB, 0)},
        {"sample": "old"},  # a record from before costs were recorded
    ]
    rows = [cost_row(r) for r in records]
    assert rows[0]["engine"] == "pcgr" and rows[2]["total_usd"] is None
    totals = cost_totals(rows)
    assert totals["samples"] == 3
    assert totals["samples_without_price"] == 2
    assert totals["compute_usd"] == pytest.approx(0.36)
    assert totals["total_usd"] == pytest.approx(0.36 + S3_STANDARD_USD_PER_GB_MONTH)


class PriceHistory:
    """DescribeSpotPriceHistory's answer for one call, as boto3 shapes it (times are datetimes)."""

    def __init__(self, rows: list[tuple[str, str, float]] | None = None, fail: bool = False) -> None:
        self.rows = rows or []
        self.fail = fail
        self.calls: list[dict[str, Any]] = []

    def describe_spot_price_history(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.fail:
            raise EndpointConnectionError(endpoint_url="https://ec2.example")
        return {
            "SpotPriceHistory": [
                {
                    "InstanceType": "m6i.xlarge",
                    "AvailabilityZone": zone,
                    "SpotPrice": f"{price:.6f}",
                    "Timestamp": dt.datetime.fromisoformat(when.replace("Z", "+00:00")),
                    "ProductDescription": "Linux/UNIX",
                }
                for zone, when, price in self.rows
            ]
        }


def test_the_price_is_the_newest_observation_at_or_before_launch_in_the_instances_zone() -> None:
    ec2 = PriceHistory(
        [
            ("eu-west-1a", "2026-12-01T09:00:00Z", 0.0712),
            ("eu-west-1a", "2026-12-01T06:00:00Z", 0.0650),
            ("eu-west-1b", "2026-12-01T09:30:00Z", 0.0999),  # another zone
            ("eu-west-1a", "2026-12-01T10:30:00Z", 0.0800),  # after the launch
        ]
    )
    price, reason = spot_price_at_launch(ec2, SPOT)
    assert reason is None and price is not None
    assert price["usd_per_hour"] == pytest.approx(0.0712)
    assert price["observed_at"] == "2026-12-01T09:00:00Z" and price["launch_time"] == LAUNCH
    call = ec2.calls[0]
    assert call["InstanceTypes"] == ["m6i.xlarge"] and call["AvailabilityZone"] == "eu-west-1a"
    assert call["StartTime"] == call["EndTime"] and call["ProductDescriptions"] == ["Linux/UNIX"]


@pytest.mark.parametrize(
    ("identity", "says"),
    [
        ({**SPOT, "purchase_option": "on-demand"}, "on-demand instance: only spot prices"),
        ({}, "purchase option is unknown"),
        ({**SPOT, "availability_zone": ""}, "availability_zone"),
        ({**SPOT, "launch_time": "yesterday"}, "not an ISO 8601 time"),
    ],
)
def test_no_price_says_why_without_asking_the_api(identity: dict[str, str], says: str) -> None:
    ec2 = PriceHistory()
    price, reason = spot_price_at_launch(ec2, identity)
    assert price is None and reason is not None and says in reason
    assert ec2.calls == []


def test_a_history_without_an_observation_before_launch_has_no_price() -> None:
    price, reason = spot_price_at_launch(PriceHistory([("eu-west-1a", "2026-12-01T11:00:00Z", 0.07)]), SPOT)
    assert price is None and reason is not None and "at or before 2026-12-01T10:00:00Z" in reason


def test_a_failed_lookup_never_raises_and_is_asked_again_an_answer_only_once() -> None:
    # GIVEN an EC2 API that fails, then answers
    ec2 = PriceHistory([("eu-west-1a", "2026-12-01T09:00:00Z", 0.07)], fail=True)
    prov = Provenance(ConsumerConfig(queue_url="https://sqs.example/1/q"), lambda: SPOT, lambda: ec2)
    # WHEN the first sample asks THEN it gets no price and the reason
    price, reason = prov.price()
    assert price is None and reason is not None and "DescribeSpotPriceHistory failed" in reason
    # AND the next samples get the price, asked once
    ec2.fail = False
    assert prov.price()[0] is not None and prov.price()[0] is not None
    assert len(ec2.calls) == 2


def test_the_summary_engine_has_no_release_and_pcgr_the_catalogues_facts() -> None:
    cfg = ConsumerConfig(queue_url="https://sqs.example/1/q")
    release, reason = release_facts(cfg, "summary")
    assert release is None and reason == "the summary engine runs no PCGR release"
    release, reason = release_facts(cfg, "pcgr")
    assert reason is None and release is not None
    assert release["version"] == cfg.pcgr.release and release["bundle"] and release["vep"]


def test_a_container_image_by_digest_records_the_digest() -> None:
    from dataclasses import replace

    cfg = ConsumerConfig(queue_url="https://sqs.example/1/q")
    digest = "sha256:" + "a" * 64
    cfg = replace(
        cfg, pcgr=replace(cfg.pcgr, method="container", container_image=f"ghcr.io/sigven/pcgr@{digest}")
    )
    image = image_facts(cfg, "pcgr", {"image_id": "ami-1"}, release_facts(cfg, "pcgr")[0])
    assert image == {
        "image_id": "ami-1",
        "container_image": f"ghcr.io/sigven/pcgr@{digest}",
        "container_digest": digest,
    }
    assert image_facts(cfg, "summary", {"image_id": "ami-1"}, None)["container_image"] is None
