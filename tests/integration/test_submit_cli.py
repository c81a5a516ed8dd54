"""`capillary submit` and `capillary validate` as a user runs them, against the local endpoint."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from capillary.contract.samples import SampleKey
from capillary.local.endpoint import LocalAWS
from tests.support.samples import make_sample_tarball

pytestmark = pytest.mark.integration

BUCKET = "capillary-cli-samples"


def capillary(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "capillary", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        check=False,
        timeout=120,
    )


@pytest.fixture
def bucket(aws: LocalAWS) -> str:
    aws.client("s3").create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": aws.region}
    )
    return BUCKET


def _keys(aws: LocalAWS) -> list[str]:
    return [o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_submit_validates_uploads_and_prints_the_key(aws: LocalAWS, bucket: str, tmp_path: Path) -> None:
    # GIVEN a valid sample named by the contract
    tarball = make_sample_tarball(tmp_path, batch="cohort-3", kind="normal")
    # WHEN submitted
    result = capillary("submit", str(tarball), "--bucket", bucket)
    # THEN it exits 0 and prints the key: batch and kind from the name, a fresh uuid
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    sample = SampleKey.parse(key)
    assert (sample.batch, sample.kind) == ("cohort-3", "normal")
    head = aws.client("s3").head_object(Bucket=bucket, Key=key)
    assert head["Metadata"]["sha256"] == hashlib.sha256(tarball.read_bytes()).hexdigest()
    assert head["ContentLength"] == tarball.stat().st_size
    assert _keys(aws) == [key]


def test_an_invalid_tarball_is_refused_before_any_byte_is_uploaded(
    aws: LocalAWS, bucket: str, tmp_path: Path
) -> None:
    tarball = make_sample_tarball(tmp_path, assembly="grch37", options={"genome_assembly": "grch38"})
    result = capillary("submit", str(tarball), "--bucket", bucket)
    assert result.returncode == 1
    assert "not uploaded" in result.stderr and "vcf_wrong_assembly" in result.stderr
    assert _keys(aws) == []


def test_a_large_sample_goes_up_in_parts(aws: LocalAWS, bucket: str, tmp_path: Path) -> None:
    # GIVEN a 12 MiB sample (an incompressible index file beside the VCF)
    index = tmp_path / "big.csi"
    index.write_bytes(os.urandom(12 << 20))
    tarball = make_sample_tarball(tmp_path, extra_members={"s/tumor1.vcf.gz.csi": index})
    # WHEN submitted with 5 MiB parts, as JSON
    result = capillary(
        "submit",
        str(tarball),
        "--bucket",
        bucket,
        "--batch",
        "big",
        "--multipart-threshold-mb",
        "5",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    details = json.loads(result.stdout)
    # THEN the object is a multipart upload (its ETag says how many parts) with the whole file's sha256
    head = aws.client("s3").head_object(Bucket=bucket, Key=details["key"])
    assert head["ETag"].strip('"').endswith("-3")
    assert head["Metadata"]["sha256"] == details["sha256"] == hashlib.sha256(tarball.read_bytes()).hexdigest()
    assert details["batch"] == "big" and details["output_key"] == SampleKey.parse(details["key"]).output_key


def test_submit_needs_a_batch_for_a_file_not_named_by_the_contract(bucket: str, tmp_path: Path) -> None:
    tarball = make_sample_tarball(tmp_path, name="my sample.tar.gz")
    assert capillary("submit", str(tarball), "--bucket", bucket).returncode == 2
    bad_batch = capillary("submit", str(tarball), "--bucket", bucket, "--batch=x_")
    assert bad_batch.returncode == 2 and "must start and end with a letter or digit" in bad_batch.stderr


def test_validate_exit_codes_and_json(tmp_path: Path) -> None:
    good = make_sample_tarball(tmp_path)
    bad = make_sample_tarball(tmp_path, options={"tumour_site": 3}, name="bad.tar.gz")
    assert capillary("validate", str(good)).returncode == 0
    result = capillary("validate", str(bad), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and [p["code"] for p in report["problems"]] == ["option_unknown"]
    key = capillary("validate", "--key", "inputs/b1-abc123-somatic-tar.gz")
    assert key.returncode == 1 and "a hyphen where the dot belongs" in key.stdout
    assert capillary("validate", "--key", "inputs/b1-abc123-somatic.tar.gz").returncode == 0
    assert capillary("validate", str(tmp_path / "missing.tar.gz")).returncode == 2
