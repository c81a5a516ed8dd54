"""The harness at work: the local endpoint reaches ansible-playbook, resets, and seeds prices."""

from __future__ import annotations

import datetime as dt

import pytest

from capillary.local.endpoint import LocalAWS, SpotPrice

pytestmark = pytest.mark.integration

PLAYBOOK = "tests/integration/playbooks/harness_bucket_queue.yml"


def test_playbook_creates_bucket_and_queue_then_changes_nothing(aws: LocalAWS, playbook) -> None:
    # GIVEN an empty local account
    s3, sqs = aws.client("s3"), aws.client("sqs")
    assert s3.list_buckets()["Buckets"] == []

    # WHEN the playbook runs twice
    first = playbook(PLAYBOOK).assert_ok()
    second = playbook(PLAYBOOK)

    # THEN the first run created both, the second changed nothing
    assert first.changed == 2, first.tail()
    second.assert_idempotent()
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["capillary-harness-bucket"]
    url = sqs.get_queue_url(QueueName="capillary-harness-queue")["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ReceiveMessageWaitTimeSeconds"])
    assert attrs["Attributes"]["ReceiveMessageWaitTimeSeconds"] == "20"
    blocked = s3.get_public_access_block(Bucket="capillary-harness-bucket")
    assert all(blocked["PublicAccessBlockConfiguration"].values())


def test_check_mode_creates_nothing(aws: LocalAWS, playbook) -> None:
    playbook(PLAYBOOK, check=True).assert_ok()
    assert aws.client("s3").list_buckets()["Buckets"] == []
    assert aws.client("sqs").list_queues().get("QueueUrls", []) == []


def test_each_test_starts_from_an_empty_account(aws: LocalAWS) -> None:
    # The previous tests created resources; the fixture reset them away.
    assert aws.client("s3").list_buckets()["Buckets"] == []


def test_seeded_spot_prices_are_served_with_window_and_pagination(aws: LocalAWS) -> None:
    # GIVEN a 10-point series for one type in two zones, one point before the window
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    series = [
        SpotPrice("m5.xlarge", zone, 0.05 + i / 100, now - dt.timedelta(hours=i))
        for zone in ("eu-west-1a", "eu-west-1b")
        for i in range(10)
    ]
    aws.seed_spot_prices(series)
    ec2 = aws.client("ec2")

    # WHEN a client pages through 5 hours of history in zone a, 2 rows a page
    pages = ec2.get_paginator("describe_spot_price_history").paginate(
        InstanceTypes=["m5.xlarge"],
        ProductDescriptions=["Linux/UNIX"],
        Filters=[{"Name": "availability-zone", "Values": ["eu-west-1a"]}],
        StartTime=now - dt.timedelta(hours=4, minutes=30),
        EndTime=now,
        PaginationConfig={"PageSize": 2},
    )
    rows = [row for page in pages for row in page["SpotPriceHistory"]]

    # THEN it gets the 5 points inside the window plus the price in force at its start, newest first
    assert [float(r["SpotPrice"]) for r in rows] == pytest.approx([0.05, 0.06, 0.07, 0.08, 0.09, 0.10])
    assert {r["AvailabilityZone"] for r in rows} == {"eu-west-1a"}


def test_unseeded_region_keeps_motos_constant_price(aws: LocalAWS) -> None:
    rows = aws.client("ec2").describe_spot_price_history(InstanceTypes=["m5.xlarge"])["SpotPriceHistory"]
    assert rows and {r["SpotPrice"] for r in rows} == {"0.00001"}
