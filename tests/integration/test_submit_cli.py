"""`capillary submit`, `pack`, `validate` and `status --deployment` as a user runs them, against the
local endpoint."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from capillary.contract.naming import deployment_names
from capillary.contract.samples import SampleKey
from capillary.local.endpoint import LocalAWS
from tests.support.samples import DEFAULT_OPTIONS, make_sample_tarball, options_toml, vcf_text

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


def _deployment(aws: LocalAWS, name: str = "cli") -> str:
    """What intake.yml leaves for the CLI: the bucket and the configuration naming it."""
    names = deployment_names(name)
    aws.client("s3").create_bucket(
        Bucket=names.bucket, CreateBucketConfiguration={"LocationConstraint": aws.region}
    )
    sqs = aws.client("sqs")
    dlq = sqs.create_queue(QueueName=names.dead_letter_queue)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    work = sqs.create_queue(
        QueueName=names.work_queue,
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})},
    )["QueueUrl"]
    ssm = aws.client("ssm")
    for key, value in {"bucket": names.bucket, "work_queue_url": work, "platform": "aws"}.items():
        ssm.put_parameter(Name=f"{names.ssm_config}/{key}", Value=value, Type="String")
    return names.bucket


def test_submit_takes_many_tarballs_and_folders_and_sums_up(aws: LocalAWS, tmp_path: Path) -> None:
    # GIVEN a deployment, two tarballs in a folder and one beside it
    bucket = _deployment(aws)
    folder = tmp_path / "run7"
    folder.mkdir()
    inside = [make_sample_tarball(folder, batch="run7", seed=i) for i in range(2)]
    single = make_sample_tarball(tmp_path, batch="single", kind="normal")
    # WHEN they are submitted by the deployment's name, with progress asked for
    result = capillary("submit", str(folder), str(single), "--deployment", "cli", "--progress")
    # THEN each is uploaded to the deployment's bucket, its key on stdout, in order
    assert result.returncode == 0, result.stderr
    keys = result.stdout.split()
    assert [SampleKey.parse(k).batch for k in keys] == ["run7", "run7", "single"]
    stored = aws.client("s3").list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(o["Key"] for o in stored) == sorted(keys)
    # AND stderr shows each upload's progress (every 10% when not a terminal) and a summary
    for path in [*inside, single]:
        assert f"  {path.name}  100%" in result.stderr
    assert f"3 of 3 uploaded to s3://{bucket}" in result.stderr.splitlines()[-1]


def test_one_invalid_tarball_stops_the_whole_submission_unless_told(aws: LocalAWS, tmp_path: Path) -> None:
    bucket = _deployment(aws)
    good = make_sample_tarball(tmp_path, batch="ok")
    bad = make_sample_tarball(tmp_path, options={"tumour_site": 3}, batch="bad")
    # WHEN one of two is invalid THEN neither goes up (a re-run after the fix uploads nothing twice)
    refused = capillary("submit", str(good), str(bad), "--deployment", "cli")
    assert refused.returncode == 1 and "none of the 2 went up" in refused.stderr
    assert "option_unknown" in refused.stderr and bad.name in refused.stderr
    assert _keys_of(aws, bucket) == []
    # WHEN told to skip invalid ones THEN the valid one goes up and the summary counts both
    partial = capillary("submit", str(good), str(bad), "--deployment", "cli", "--skip-invalid")
    assert partial.returncode == 1
    assert [SampleKey.parse(k).batch for k in _keys_of(aws, bucket)] == ["ok"]
    assert "1 of 2 uploaded" in partial.stderr and "1 invalid" in partial.stderr


def _keys_of(aws: LocalAWS, bucket: str) -> list[str]:
    return [o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_pack_makes_a_valid_tarball_from_a_folder(tmp_path: Path) -> None:
    # GIVEN a folder with a plain-text VCF and the sample's TOML
    folder = tmp_path / "COLO829"
    folder.mkdir()
    (folder / "tumor.vcf").write_text(vcf_text(n_variants=20))
    (folder / "sample.toml").write_text(options_toml(DEFAULT_OPTIONS))
    (folder / ".DS_Store").write_bytes(b"\0")
    # WHEN packed
    result = subprocess.run(
        [sys.executable, "-m", "capillary", "pack", str(folder)],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )  # fmt: skip
    # THEN the tarball holds the bgzipped VCF and the TOML under the folder's name, and validates
    assert result.returncode == 0, result.stderr
    tarball = Path(result.stdout.strip())
    assert tarball == tmp_path / "COLO829.tar.gz" and "bgzipped tumor.vcf" in result.stderr
    with tarfile.open(tarball) as tar:
        assert sorted(tar.getnames()) == ["COLO829/sample.toml", "COLO829/tumor.vcf.gz"]
        member = tar.extractfile("COLO829/tumor.vcf.gz")
        assert member is not None and member.read(4) == b"\x1f\x8b\x08\x04"  # BGZF
    assert capillary("validate", str(tarball)).returncode == 0
    # AND it will not overwrite without --force
    again = subprocess.run(
        [sys.executable, "-m", "capillary", "pack", str(folder)],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert again.returncode == 2 and "exists already" in again.stderr


def test_pack_refuses_a_sample_that_would_not_validate(tmp_path: Path) -> None:
    folder = tmp_path / "wrong"
    folder.mkdir()
    (folder / "tumor.vcf").write_text(vcf_text(assembly="grch37"))
    (folder / "sample.toml").write_text(options_toml({**DEFAULT_OPTIONS, "genome_assembly": "grch38"}))
    result = subprocess.run(
        [sys.executable, "-m", "capillary", "pack", str(folder), "-o", str(tmp_path / "w.tar.gz")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 1 and "not packed" in result.stderr and "vcf_wrong_assembly" in result.stderr
    assert not (tmp_path / "w.tar.gz").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["wrong"]  # nothing left behind


def test_status_of_a_deployment_lists_samples_failures_and_workers(aws: LocalAWS, tmp_path: Path) -> None:
    # GIVEN a deployment with one sample done, one failed for good, one retrying, one waiting,
    # a rejected upload, and a worker
    bucket = _deployment(aws)
    s3 = aws.client("s3")
    names = {state: SampleKey.new("st", "somatic") for state in ("done", "failed", "retrying", "waiting")}
    for sample in names.values():
        s3.put_object(Bucket=bucket, Key=sample.input_key, Body=b"x")
    s3.put_object(Bucket=bucket, Key=names["done"].output_key, Body=b"out")
    report = {"phase": "engine", "reason": "pcgr exited 1", "attempt": 3, "max_receive_count": 3}
    s3.put_object(
        Bucket=bucket, Key=names["failed"].error_key, Body=json.dumps({**report, "final_attempt": True})
    )
    s3.put_object(
        Bucket=bucket,
        Key=names["retrying"].error_key,
        Body=json.dumps({**report, "attempt": 1, "final_attempt": False}),
    )
    s3.put_object(
        Bucket=bucket,
        Key="rejected/bad name.tar.gz.json",
        Body=json.dumps({"key": "inputs/bad name.tar.gz", "reason": "a space in the name"}),
    )
    ec2 = aws.client("ec2")
    ec2.run_instances(
        ImageId="ami-785db401",
        MinCount=1,
        MaxCount=1,
        InstanceType="m6i.xlarge",
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [
                    {"Key": "capillary:deployment", "Value": "cli"},
                    {"Key": "capillary:role", "Value": "worker"},
                    {"Key": "capillary:release", "Value": "2.3.2"},
                ],
            }
        ],
    )
    # WHEN the operator asks
    result = capillary("status", "--deployment", "cli", "--json")
    # THEN each sample is where it is, with the failure's reason, and the worker is listed
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    found = status["samples"]
    assert {s["sample"] for s in found["in_flight"]} == {names["waiting"].name, names["retrying"].name}
    assert [r["sample"] for r in found["results"]] == [names["done"].name]
    assert [(f["sample"], f["reason"]) for f in found["failures"]] == [
        (names["failed"].name, "pcgr exited 1")
    ]
    assert found["rejections"] == [
        {
            "key": "inputs/bad name.tar.gz",
            "time": found["rejections"][0]["time"],
            "reason": "a space in the name",
        }
    ]
    [worker] = status["workers"]
    assert (worker["type"], worker["release"], worker["state"]) == ("m6i.xlarge", "2.3.2", "running")
    assert status["queue"]["visible"] == 0 and status["queue"]["dead_letter"] == 0
    # AND the text says the same to a person
    text = capillary("status", "--deployment", "cli").stdout
    assert "in flight    2" in text and "results      1" in text and "failures     1" in text
    assert "pcgr exited 1" in text and "workers      1" in text and "m6i.xlarge" in text
