"""playbooks/mirror_refdata.yml: upstream (a local HTTP server) to the S3 mirror, once per release."""

from __future__ import annotations

from pathlib import Path

import pytest

from capillary.local.artifacts import ArtifactServer, build_artifacts, make_test_catalogue, sha256_of
from capillary.local.endpoint import LocalAWS
from capillary.release.catalogue import load_catalogue

pytestmark = pytest.mark.integration

PLAYBOOK = "playbooks/mirror_refdata.yml"


def test_mirror_copies_each_artifact_once_with_its_sha256(aws: LocalAWS, playbook, tmp_path: Path) -> None:
    # GIVEN upstream serving the current release's files, and an empty mirror bucket
    release = load_catalogue().current
    files = build_artifacts(tmp_path / "upstream", release)
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="capillary-mirror", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    with ArtifactServer(tmp_path / "upstream") as upstream:
        catalogue = make_test_catalogue(
            tmp_path / "c.yml",
            upstream.base_url,
            tmp_path / "upstream",
            versions=(release.version,),
            current=release.version,
        )
        extra = {
            "mirror_bucket": "capillary-mirror",
            "mirror_catalogue": str(catalogue),
            "mirror_workdir": str(tmp_path / "work"),
            "mirror_retry_delay": 0,
        }

        # WHEN the playbook runs twice
        first = playbook(PLAYBOOK, extra_vars=extra).assert_ok()
        served = sum(upstream.bytes_served.values())
        second = playbook(PLAYBOOK, extra_vars=extra)

    # THEN every file is in the mirror with its sha256, and the second run copied nothing
    assert first.changed > 0
    second.assert_idempotent()
    assert served == sum(p.stat().st_size for p in files.values())
    for name, path in files.items():
        head = s3.head_object(Bucket="capillary-mirror", Key=f"refdata/{name}")
        assert head["Metadata"]["sha256"] == sha256_of(path)
        assert head["ContentLength"] == path.stat().st_size
    assert not [p for p in (tmp_path / "work").rglob("*") if p.is_file()]


def test_mirror_refuses_a_corrupt_upstream_file(aws: LocalAWS, playbook, tmp_path: Path) -> None:
    # GIVEN a catalogue sha256 that the upstream file does not match
    release = load_catalogue().current
    build_artifacts(tmp_path / "upstream", release)
    aws.client("s3").create_bucket(
        Bucket="capillary-mirror", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    bundle = release.bundle.assemblies["grch38"].filename
    with ArtifactServer(tmp_path / "upstream") as upstream:
        catalogue = make_test_catalogue(
            tmp_path / "c.yml",
            upstream.base_url,
            tmp_path / "upstream",
            versions=(release.version,),
            current=release.version,
            sha_override={bundle: "f" * 64},
        )
        recap = playbook(
            PLAYBOOK,
            extra_vars={
                "mirror_bucket": "capillary-mirror",
                "mirror_catalogue": str(catalogue),
                "mirror_workdir": str(tmp_path / "work"),
                "mirror_retry_delay": 0,
            },
        )
    # THEN it fails naming the mismatch and uploads nothing
    assert recap.rc != 0 and "sha256 mismatch" in " ".join(recap.stdout.split())
    assert aws.client("s3").list_objects_v2(Bucket="capillary-mirror").get("KeyCount", 0) == 0
