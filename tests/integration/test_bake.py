"""The release pipeline locally: Packer's local source bakes for real, the smoke test feeds the
new image one sample from the smoke queue, the image id lands in SSM; the image boots clean.

The bake is cached per release and commit (`capillary_bake_reuse`): a re-run on the same commit
reuses `localhost/capillary-worker:<release>` when its `org.capillary.commit` label matches.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from capillary.naming import deployment_names
from tests.support.localaws import LocalAWS
from tests.support.playbook import REPO, run_playbook
from tests.support.podman_targets import BASE_IMAGE, podman

pytestmark = [pytest.mark.integration, pytest.mark.containers]

RELEASE = "2.3.2"
IMAGE = f"localhost/capillary-worker:{RELEASE}"
GATE = REPO / "roles/image_hygiene/files/hygiene_gate.py"
DEPLOYMENT = "bake7"
# The software roles (pcgr, pcgr_refdata, data_volume) have their own tests against the local
# artifact servers; the bake here installs the consumer (summary engine) and runs the hygiene.
PROVISION = {"capillary_provision_roles": ["pcgr_consumer"]}


def _launch_env(aws: LocalAWS, queue_url: str, path: Path) -> Path:
    lines = [f"CAPILLARY_QUEUE_URL={queue_url}", "CAPILLARY_IMDS_ENABLED=false"]
    lines += [f"{k}={v}" for k, v in aws.env.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def baked_image(_local_aws_server: LocalAWS) -> str:
    """The local bake for real (no smoke test), cached per release and source content."""
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
            "capillary_bake_provision_extra_vars": PROVISION,
        },
        timeout=2400,
    )
    recap.assert_ok()
    return podman("image", "inspect", "--format", "{{.Id}}", IMAGE).strip()


def test_baked_image_boots_to_an_active_consumer(aws: LocalAWS, tmp_path: Path, baked_image: str) -> None:
    # GIVEN the baked image and a work queue on the local endpoint
    podman("image", "exists", IMAGE)
    queue_url = aws.client("sqs").create_queue(QueueName="capillary-boot7-work")["QueueUrl"]
    env_file = _launch_env(aws, queue_url, tmp_path / "launch.env")
    name = "img7-boot-test"
    podman("rm", "-f", "--ignore", name)
    try:
        # WHEN a worker container boots from it with its launch environment
        t0 = time.monotonic()
        podman(
            "run",
            "-d",
            "--name",
            name,
            "--network=host",
            "--systemd=always",
            "--tmpfs=/tmp",
            f"--volume={env_file}:/etc/capillary/launch.env:ro",
            IMAGE,
        )
        state = ""
        while time.monotonic() - t0 < 60:
            state = podman("exec", name, "systemctl", "is-active", "capillary-consumer", check=False).strip()
            if state == "active":
                break
            time.sleep(0.1)
        boot_s = time.monotonic() - t0

        # THEN the consumer is enabled, active, and still active a moment later (not crash-looping)
        assert state == "active", podman(
            "exec", name, "journalctl", "-u", "capillary-consumer", "--no-pager", check=False
        )
        assert podman("exec", name, "systemctl", "is-enabled", "capillary-consumer").strip() == "enabled"
        time.sleep(3)
        assert (
            podman("exec", name, "systemctl", "is-active", "capillary-consumer", check=False).strip()
            == "active"
        )
        assert boot_s < 60
    finally:
        podman("rm", "-f", "-t", "2", "--ignore", name, check=False)


def test_baked_image_holds_no_identity_keys_or_samples(baked_image: str) -> None:
    # GIVEN the baked image's filesystem, read without booting it
    # WHEN the hygiene gate scans it
    proc = subprocess.run(
        [
            "podman",
            "run",
            "--rm",
            "-i",
            "--network=none",
            "--entrypoint",
            "/usr/bin/python3",
            IMAGE,
            "-",
            "--root",
            "/",
            "--journal",
            "skip",
            "--exclude",
            "/proc",
            "--exclude",
            "/sys",
            "--exclude",
            "/dev",
            "--content-root",
            "/etc",
            "--content-root",
            "/root",
            "--content-root",
            "/home",
            "--content-root",
            "/opt",
            "--content-root",
            "/srv",
            "--workspace",
            "/srv/capillary/work",
            "--allow",
            "*/site-packages/botocore/data/*/examples-1.json",
        ],
        input=GATE.read_text(),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env={**os.environ, "CONTAINERS_CONF": str(REPO / "tests/containers/containers.conf")},
    )
    report = json.loads(proc.stdout)

    # THEN nothing is found: no machine-id content, no host keys, no keys, no samples
    assert report["clean"], report["findings"]
    listing = podman(
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        IMAGE,
        "-c",
        "wc -c < /etc/machine-id; ls /etc/ssh | grep -c ssh_host_ || true",
    )
    assert listing.split() == ["0", "0"]
    # and it is the release's image, from the project's base
    labels = json.loads(podman("image", "inspect", "--format", "{{json .Labels}}", IMAGE))
    assert labels["org.capillary.release"] == RELEASE
    assert podman("image", "exists", BASE_IMAGE) == ""


def test_local_bake_smoke_tests_then_records_the_image(aws: LocalAWS, baked_image: str) -> None:
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
            "capillary_bake_provision_extra_vars": PROVISION,
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
    assert aws.client("s3").list_objects_v2(Bucket=names.bucket).get("KeyCount", 0) == 0
