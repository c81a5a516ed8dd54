"""Every output's run record (`outputs/…-run.json`) against the API's own view, and `capillary costs`.

The real daemon runs on a "spot instance" that exists on the local endpoint (run_instances): a
LocalIMDS answers with that instance's id, type, image, zone and launch time, and a spot price
history is seeded around its launch. The record must say what DescribeInstances,
DescribeSpotPriceHistory and the release catalogue say, equal the run.json inside the output, and
`capillary costs --deployment` must sum the records.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from capillary.contract.cost import GIB, S3_STANDARD_USD_PER_GB_MONTH
from capillary.contract.naming import deployment_names
from capillary.local.endpoint import LocalAWS, SpotPrice
from capillary.release.catalogue import load_catalogue
from tests.integration import test_consumer_faults as faults
from tests.integration.test_consumer_faults import World, calls, pcgr_worker, wait_for
from tests.support.imds import LocalIMDS

pytestmark = pytest.mark.integration

# The fault tests' bucket is deployment `faults`'s: `capillary costs --deployment faults` reads it.
DEPLOYMENT = "faults"
ITYPE = "m6i.xlarge"
# The fault tests' world: a bucket and queues on the local endpoint, and the daemon as a subprocess.
world = faults.world


def _launch_spot_instance(aws: LocalAWS) -> dict[str, Any]:
    ec2 = aws.client("ec2")
    zone = f"{aws.region}a"
    instance_id = ec2.run_instances(
        ImageId="ami-785db401",
        InstanceType=ITYPE,
        MinCount=1,
        MaxCount=1,
        Placement={"AvailabilityZone": zone},
    )["Instances"][0]["InstanceId"]
    described: dict[str, Any] = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0][
        "Instances"
    ][0]
    return described


def _seed_history(aws: LocalAWS, zone: str, launch: dt.datetime) -> float:
    """Prices before and after the launch, and in another zone; returns the one in force at launch."""
    in_force = 0.0731
    aws.seed_spot_prices(
        [
            SpotPrice(ITYPE, zone, 0.0650, launch - dt.timedelta(hours=5)),
            SpotPrice(ITYPE, zone, in_force, launch - dt.timedelta(minutes=40)),
            SpotPrice(ITYPE, zone, 0.0912, launch + dt.timedelta(minutes=10)),
            SpotPrice(ITYPE, f"{aws.region}b", 0.5000, launch - dt.timedelta(minutes=5)),
        ]
    )
    return in_force


def _costs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "capillary"), "costs", "--deployment", DEPLOYMENT, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_each_record_says_what_the_api_says_and_costs_sums_them(world: World) -> None:
    aws = world.aws
    assert world.bucket == deployment_names(DEPLOYMENT).bucket
    # GIVEN a spot instance on the endpoint, its price history, and its IMDS
    instance = _launch_spot_instance(aws)
    launch: dt.datetime = instance["LaunchTime"]
    zone = instance["Placement"]["AvailabilityZone"]
    in_force = _seed_history(aws, zone, launch)
    imds = LocalIMDS(
        instance_id=instance["InstanceId"],
        instance_type=instance["InstanceType"],
        ami_id=instance["ImageId"],
        availability_zone=zone,
        life_cycle="spot",
        launch_time=launch.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    # AND a PCGR worker on it (the stand-in PCGR), with two samples queued
    overrides, calls_file = pcgr_worker(world, "spot", ["grch38"])
    keys = [world.upload_sample(batch=b) for b in ("cost-a", "cost-b")]
    with imds:
        for key in keys:
            world.send(key)
        # WHEN the daemon works through them
        world.start(
            "spot",
            env={"FAKE_PCGR_CALLS": str(calls_file)},
            imds_enabled=True,
            imds_url=imds.url,
            spot_poll_s=1,
            **overrides,
        )
        wait_for(lambda: world.queue_counts() == (0, 0), 90, "both samples processed and deleted")
        world.no_workspace_left("spot")
    # THEN every output has its run record, equal to the run.json inside the output
    assert sorted(world.keys()) == sorted(
        f"outputs/{k.removeprefix('inputs/').removesuffix('.tar.gz')}-{what}"
        for k in keys
        for what in ("output.tar.gz", "run.json")
    )
    records = {key: world.record(key) for key in keys}
    for key, record in records.items():
        assert record == world.run_json(key), key
    record = records[keys[0]]
    # AND its instance is DescribeInstances' view of the instance it ran on
    worker = record["worker"]
    assert worker["instance_id"] == instance["InstanceId"]
    assert worker["instance_type"] == instance["InstanceType"]
    assert worker["image_id"] == instance["ImageId"] == record["image"]["image_id"]
    assert worker["availability_zone"] == zone and worker["region"] == aws.region
    assert worker["purchase_option"] == "spot"
    assert dt.datetime.fromisoformat(worker["launch_time"].replace("Z", "+00:00")) == launch.replace(
        microsecond=0
    )
    # AND its price is DescribeSpotPriceHistory's price in force at launch, for that type and zone
    history = aws.client("ec2").describe_spot_price_history(
        InstanceTypes=[ITYPE], ProductDescriptions=["Linux/UNIX"], StartTime=launch, EndTime=launch
    )["SpotPriceHistory"]
    api_price = max(
        (h for h in history if h["AvailabilityZone"] == zone and h["Timestamp"] <= launch),
        key=lambda h: h["Timestamp"],
    )
    assert (
        record["price"]["usd_per_hour"]
        == pytest.approx(float(api_price["SpotPrice"]))
        == pytest.approx(in_force)
    )
    assert record["price"]["observed_at"] == api_price["Timestamp"].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert record["price"]["availability_zone"] == zone and record["price_reason"] is None
    # AND its release is the catalogue's: bundle and VEP version of the release the worker runs
    release = load_catalogue().release(record["versions"]["pcgr"])
    assert record["release"]["version"] == release.version
    assert record["release"]["bundle"] == release.bundle.version
    assert record["release"]["vep"] == release.vep.version
    assert record["release_reason"] is None
    # AND its command line is the one the engine ran
    ran = sorted(" ".join(argv) for argv in calls(calls_file))
    assert ran == sorted(" ".join(r["command"][1:]) for r in records.values())
    # AND its cost is the stated arithmetic on the stated basis
    cost = record["cost"]
    basis = cost["basis"]
    assert basis["price_usd_per_hour"] == record["price"]["usd_per_hour"]
    assert basis["input_bytes"] == record["input"]["size"]
    assert 0 < basis["wall_s"] < 90 and basis["samples_sharing_instance"] == 1
    assert cost["compute_usd"] == pytest.approx(in_force * basis["wall_s"] / 3600, abs=1e-10)  # 10 places
    storage = (basis["input_bytes"] + basis["output_bytes"]) / GIB * S3_STANDARD_USD_PER_GB_MONTH
    assert cost["storage_usd"] == pytest.approx(storage, abs=1e-10)
    assert cost["currency"] == "USD" and cost["estimate"] is True and cost["method"]
    # AND the PROV block names what was used and generated, and who did it
    prov = record["provenance"]
    assert prov["@type"] == "prov:Activity" and prov["@context"]["prov"] == "http://www.w3.org/ns/prov#"
    assert prov["prov:used"][0]["@id"] == f"s3://{world.bucket}/{keys[0]}"
    assert prov["prov:used"][0]["capillary:sha256"] == record["input"]["sha256"]
    assert prov["prov:generated"][0]["@id"].endswith(record["output"]["key"])
    assert any(instance["InstanceId"] in a["@id"] for a in prov["prov:wasAssociatedWith"])
    assert prov["prov:startedAtTime"]["@value"] == record["started"] <= record["finished"]

    # WHEN the operator asks what the deployment's samples cost, as JSON and as a table
    as_json = _costs("--json")
    table = _costs()
    # THEN both samples are there and the total is their sum
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert sorted(r["sample"] for r in report["samples"]) == sorted(r["sample"] for r in records.values())
    total = sum(r["cost"]["total_usd"] for r in records.values())
    assert report["total"]["total_usd"] == pytest.approx(
        total, abs=1e-9
    )  # sums of parts rounded to 10 places
    assert report["total"]["samples"] == 2 and report["total"]["samples_without_price"] == 0
    assert table.returncode == 0, table.stderr
    assert all(r["sample"] in table.stdout for r in records.values())
    assert f"{total:.6f}" in table.stdout.splitlines()[-2]
    # AND --since after both leaves nothing to sum
    later = _costs("--json", "--since", "2099-01-01")
    assert json.loads(later.stdout)["total"]["samples"] == 0


def test_an_output_whose_record_is_missing_gets_it_from_its_own_run_json(world: World) -> None:
    # GIVEN a sample done, whose record was lost (its worker stopped between the two writes)
    key = world.upload_sample(batch="lost-record")
    world.send(key)
    daemon = world.start(once=True)
    assert daemon.proc.wait(timeout=60) == 0, daemon.messages()
    name = key.removeprefix("inputs/").removesuffix(".tar.gz")
    world.s3.delete_object(Bucket=world.bucket, Key=f"outputs/{name}-run.json")
    # WHEN its message comes again
    world.send(key)
    again = world.start("again", once=True)
    assert again.proc.wait(timeout=60) == 0, again.messages()
    # THEN the engine did not run again and the record is back, equal to the output's run.json
    assert "engine summary starting" not in again.messages()
    assert "run record was missing" in again.messages()
    assert world.record(key) == world.run_json(key)
