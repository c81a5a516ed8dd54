"""The release pipeline locally: Packer's local source bakes for real, the smoke test feeds the
new image one sample from the smoke queue, the image id lands in SSM; the image boots clean.

The bake provisions data_volume (directory-only: a container has no block device), pcgr_refdata
(from a local artifact server, small artifacts with the real layout) and pcgr_consumer; see
tests/support/bake.py for the settings, and why pcgr is left out.

The bake is cached (`capillary_bake_reuse`): a re-run reuses `localhost/capillary-worker:<release>`
when its `org.capillary.build-key` label matches bake.yml's key of the commit (or uncommitted
sources), the provisioning extra vars, the catalogue they name and the Packer variables.
"""

from __future__ import annotations

import json
import os
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from capillary.contract.naming import deployment_names
from capillary.local.bake import LocalBake, local_bake
from capillary.local.endpoint import LocalAWS
from capillary.local.playbook import run_playbook
from capillary.release import refdata
from tests.support.podman_targets import BASE_IMAGE, CONSUMER_UNIT, boot_worker, podman, write_launch_env

pytestmark = [pytest.mark.integration, pytest.mark.containers]

RELEASE = "2.3.2"
IMAGE = f"localhost/capillary-worker:{RELEASE}"
DEPLOYMENT = "bake7"
DATA_ROOT = "/srv/capillary"
ASM = "grch38"
# The fetch tool's proof of a verified, complete artifact (roles/pcgr_refdata/files/capillary-refdata).
STAMP = ".capillary-artifact.json"


@pytest.fixture(scope="module")
def bake_inputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBake]:
    """The release's reference artifacts served on the loopback, and the bake's variables."""
    with local_bake(tmp_path_factory.mktemp("bake"), RELEASE) as inputs:
        yield inputs


@pytest.fixture(scope="module")
def baked_image(_local_aws_server: LocalAWS, bake_inputs: LocalBake) -> str:
    """The local bake for real (no smoke test), cached per release and build inputs."""
    env = {**_local_aws_server.env, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    recap = run_playbook(
        "playbooks/bake.yml",
        env=env,
        extra_vars={
            "capillary_deployment": "img7",
            "capillary_platform": "local",
            "capillary_release": RELEASE,
            "capillary_bake_reuse": True,
            "capillary_bake_smoke": False,
            # No deployment here (no bucket): the record is the smoke test's, below.
            "capillary_bake_record": False,
            "capillary_bake_provision_extra_vars": bake_inputs.provision_extra_vars,
            "capillary_bake_packer_vars": bake_inputs.packer_vars,
        },
        timeout=2400,
    )
    recap.assert_ok()
    return podman("image", "inspect", "--format", "{{.Id}}", IMAGE).strip()


def _in_image(script: str) -> str:
    """Run `script` in a throwaway container of the image, without booting it."""
    return podman("run", "--rm", "--network=none", "--entrypoint", "/bin/sh", IMAGE, "-c", script)


def test_baked_image_boots_to_an_active_consumer(aws: LocalAWS, tmp_path: Path, baked_image: str) -> None:
    # GIVEN the baked image and a work queue on the local endpoint
    podman("image", "exists", IMAGE)
    queue_url = aws.client("sqs").create_queue(QueueName="capillary-boot7-work")["QueueUrl"]
    env_file = write_launch_env(tmp_path / "launch.env", queue_url, aws.env)
    name = "img7-boot-test"
    try:
        # WHEN a worker container boots from it with its launch environment
        boot_worker(IMAGE, name, env_file, timeout=60)

        # THEN the consumer is enabled, active, and still active a moment later (not crash-looping)
        assert podman("exec", name, "systemctl", "is-enabled", CONSUMER_UNIT).strip() == "enabled"
        time.sleep(3)
        assert podman("exec", name, "systemctl", "is-active", CONSUMER_UNIT, check=False).strip() == "active"
    finally:
        podman("rm", "-f", "-t", "2", "--ignore", name, check=False)


def test_baked_image_holds_the_releases_reference_data(baked_image: str, bake_inputs: LocalBake) -> None:
    # GIVEN the release the image was baked for, as the test catalogue describes it
    release = bake_inputs.release
    bundle, vep = release.bundle.version, str(release.vep.version)
    bundle_dir = refdata.bundle_dir(DATA_ROOT, bundle, ASM)
    vep_cache = f"{refdata.vep_dir(DATA_ROOT, vep)}/{release.vep.cache_dir(ASM)}"

    # WHEN the image's filesystem is read without booting it
    links = _in_image(f"readlink {DATA_ROOT}/refdata/current {DATA_ROOT}/vep/current").split()
    version_file = _in_image(f"cat {DATA_ROOT}/refdata/current/{ASM}/{release.bundle.version_path(ASM)}")
    stamps = _in_image(f"ls {bundle_dir}/{STAMP} {vep_cache}/{STAMP}; test -d {vep_cache} && echo cache-dir")
    info = json.loads(_in_image("cat /etc/capillary/version-info.json"))
    fact = json.loads(_in_image("cat /etc/ansible/facts.d/pcgr_refdata.fact"))
    fstab = _in_image("cat /etc/fstab 2>/dev/null || true")
    consumer = tomllib.loads(_in_image("cat /etc/capillary/consumer.toml"))["pcgr"]

    # THEN current points at the catalogue's bundle and VEP versions, whose files are in place
    assert links == [bundle, vep]
    assert version_file.strip() == bundle
    assert stamps.split() == [f"{bundle_dir}/{STAMP}", f"{vep_cache}/{STAMP}", "cache-dir"]
    # and what went in is recorded: version-info.json and the role's local fact
    assert info["bundle"] == bundle and str(info["vep"]) == vep
    assert info["roles"] == bake_inputs.provision_extra_vars["capillary_provision_roles"]
    assert fact["release"] == RELEASE and fact["bundle_version"] == bundle and str(fact["vep_version"]) == vep
    # and data_volume ran directory-only: no device in a container, so nothing to mount at boot
    assert DATA_ROOT not in fstab
    # and the consumer's PCGR engine reads exactly that bundle (per assembly, under the root) and cache
    assert consumer["refdata_root"] == f"{DATA_ROOT}/refdata/current" and consumer["assemblies"] == [ASM]
    assert "refdata_dir" not in consumer
    assert consumer["vep_dir"] == f"{DATA_ROOT}/vep/current"
    assert consumer["bundle_version"] == bundle


def test_baked_image_holds_no_machine_id_or_host_keys(baked_image: str, bake_inputs: LocalBake) -> None:
    # The hygiene gate's own verdict on this image, with the role's command line and the
    # catalogue's trusted reference trees, is tests/integration/test_gate_corpus.py
    # (test_the_clean_image_passes_unbooted / _booted). Here: what the bake itself must leave.
    # GIVEN the baked image's filesystem, read without booting it
    # THEN it has no machine-id content and no SSH host keys
    listing = _in_image("wc -c < /etc/machine-id; ls /etc/ssh | grep -c ssh_host_ || true")
    assert listing.split() == ["0", "0"]
    # and it is the release's image, from the project's base
    labels = json.loads(podman("image", "inspect", "--format", "{{json .Labels}}", IMAGE))
    assert labels["org.capillary.release"] == RELEASE
    assert podman("image", "exists", BASE_IMAGE) == ""


def test_local_bake_smoke_tests_then_records_the_image(
    aws: LocalAWS, baked_image: str, bake_inputs: LocalBake
) -> None:
    # GIVEN a deployment's bucket and no recorded image
    names = deployment_names(DEPLOYMENT)
    aws.client("s3").create_bucket(
        Bucket=names.bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )

    # WHEN the release pipeline runs for the current release on the local platform
    recap = run_playbook(
        "playbooks/bake.yml",
        env=aws.env,
        extra_vars={
            "capillary_deployment": DEPLOYMENT,
            "capillary_platform": "local",
            "capillary_release": RELEASE,
            "capillary_bake_reuse": True,
            "capillary_bake_provision_extra_vars": bake_inputs.provision_extra_vars,
            "capillary_bake_packer_vars": bake_inputs.packer_vars,
            "capillary_bake_smoke_env": aws.env,
            "capillary_bake_smoke_timeout": 240,
        },
        timeout=2400,
    )

    # THEN the smoke test passed and the image id is recorded for the release and as current
    recap.assert_ok()
    assert "smoke test passed" in recap.stdout, recap.tail()
    image_id = podman("image", "inspect", "--format", "{{.Id}}", IMAGE).strip()
    ssm = aws.client("ssm")
    recorded = ssm.get_parameter(Name=f"{names.ssm_images}/{RELEASE}")["Parameter"]["Value"]
    assert image_id.endswith(recorded.removeprefix("sha256:"))
    assert ssm.get_parameter(Name=f"{names.ssm_images}/current")["Parameter"]["Value"] == recorded
    # and the throwaway worker is gone, and so are the smoke sample and its output
    assert (
        podman("ps", "-a", "--filter", f"name={names.local_worker_prefix}smoke", "--format", "{{.Names}}")
        == ""
    )
    # (the image's record and SBOM stay, under images/<image id>/, pointed at by <release>/record)
    keys = [o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=names.bucket).get("Contents", [])]
    assert [k for k in keys if not k.startswith("images/")] == []
    record = ssm.get_parameter(Name=f"{names.ssm_images}/{RELEASE}/record")["Parameter"]["Value"]
    assert record == f"s3://{names.bucket}/images/{image_id.removeprefix('sha256:')}/record.json"
    assert {record.split("/", 3)[3], record.split("/", 3)[3].replace("record.json", "sbom.cdx.json")} <= set(
        keys
    )
