"""The amazon-ebs source builds against the local AWS endpoint, with a booted container running
sshd standing in for the build instance (and an IMDSv2 server on its bridge gateway naming the
instance Packer launched): bake.yml's aws path registers a tagged AMI, makes it and the build
instance IMDSv2-only and records it in SSM; and the data volume Packer attaches at /dev/sdf is the
one data_volume formats and mounts.

Both build on spot, the template's default: Packer 1.6.6 asks CreateFleet for one instance of the
cheapest of `spot_instance_types`, from a launch template holding the volumes (the local endpoint
launches it with them, see tests/support/localaws.py). What spot capacity and prices AWS offers
is AWS's to show."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from capillary.local.endpoint import LocalAWS
from capillary.local.playbook import REPO, Recap, parse_recap, playbook_command
from capillary.release.volumes import ebs_by_id_name
from tests.support.imds import LocalIMDS
from tests.support.loop_devices import loop_devices, loop_devices_usable
from tests.support.podman_targets import podman
from tests.support.ssh_target import SshTarget, ssh_target

pytestmark = [
    pytest.mark.integration,
    pytest.mark.containers,
    pytest.mark.skipif(shutil.which("packer") is None, reason="packer is not installed"),
]

RELEASE = "2.3.2"


# One of the local endpoint's built-in images: Canonical's owner id, an EBS root, x86_64, HVM.
SOURCE_AMI = "ami-785db401"
SOURCE_AMI_NAME = "ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-*"


def _stand_in_vars(aws: LocalAWS, target: SshTarget) -> dict[str, Any]:
    """Packer's variables for the local endpoint, its base image and the SSH stand-in (what
    bake.yml takes as capillary_bake_packer_vars)."""
    return {
        "aws_endpoint": aws.endpoint_url,
        "aws_skip_validation": True,
        "base_os": "ubuntu-24.04",
        "source_ami_name": SOURCE_AMI_NAME,
        "ssh_username": target.user,
        "ssh_host": target.host,
        "ssh_port": target.port,
        "ssh_keypair_name": "capillary-bake",
        "ssh_private_key_file": str(target.private_key),
    }


def _packer_vars(aws: LocalAWS, target: SshTarget, out: Path, provision: dict[str, Any]) -> dict[str, Any]:
    """All of `packer build`'s variables, those bake.yml would add included."""
    return {
        "output_dir": str(out),
        "capillary_commit": "abc123def456",
        "deployment": "ebs7",
        "ansible_playbook": str(REPO / ".venv/bin/ansible-playbook"),
        "provision_extra_vars": json.dumps(provision),
        **_stand_in_vars(aws, target),
    }


def _packer_build(aws: LocalAWS, var_file: Path) -> tuple[list[str], dict[str, str]]:
    """The `packer build` of the amazon-ebs source, and its environment."""
    env = {
        **os.environ,
        **aws.env,
        "PACKER_NO_COLOR": "1",
        "PATH": f"{REPO / 'packer/bin'}:{REPO / '.venv/bin'}:{os.environ['PATH']}",
    }
    cmd = [
        "packer",
        "build",
        "-only=worker.amazon-ebs.worker",
        f"-var-file={REPO / 'packer/releases' / f'{RELEASE}.pkrvars.hcl'}",
        f"-var-file={var_file}",
        str(REPO / "packer/worker.pkr.hcl"),
    ]
    return cmd, env


def _wait_for_build_instance(
    aws: LocalAWS, packer: subprocess.Popen[str], log: Path, devices: set[str]
) -> dict[str, Any]:
    """The instance Packer launched (tagged capillary:role=bake) once it has volumes at `devices`.

    The local endpoint shows the instance while RunInstances is still attaching its volumes, so
    it is taken only once every mapping is there (in AWS the build host runs nothing before SSH
    is up, long after)."""
    ec2 = aws.client("ec2")
    deadline = time.monotonic() + 300
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        reservations = ec2.describe_instances(
            Filters=[
                {"Name": "tag:capillary:role", "Values": ["bake"]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )["Reservations"]
        seen = [i for r in reservations for i in r["Instances"]]
        assert len(seen) <= 1, seen
        if seen and devices <= {m["DeviceName"] for m in seen[0].get("BlockDeviceMappings", [])}:
            return seen[0]
        if packer.poll() is not None:
            raise AssertionError(
                f"packer exited ({packer.returncode}), build instances {seen}:\n{log.read_text()[-6000:]}"
            )
        time.sleep(0.2)
    raise TimeoutError(
        f"no build instance with volumes at {devices} in 300 s ({seen}):\n{log.read_text()[-6000:]}"
    )


def _build_on_stand_in(
    aws: LocalAWS,
    cmd: list[str],
    env: dict[str, str],
    target: SshTarget,
    imds: LocalIMDS,
    log: Path,
    become_instance: Callable[[dict[str, Any]], None] = lambda _instance: None,
) -> tuple[int, str, dict[str, Any]]:
    """Run `cmd` (a Packer build, or a playbook running one) and, once Packer has launched its
    instance, make the stand-in that instance: its IMDS names it, `become_instance` finishes the
    stand-in (links to its volumes), and sshd starts, so provisioning can reach it.

    Returns the exit status, the output and the instance as first described."""
    with log.open("w") as log_file:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT, text=True)
        try:
            instance = _wait_for_build_instance(aws, proc, log, {"/dev/xvda", "/dev/sdf"})
            imds.set_metadata("instance-id", instance["InstanceId"])
            become_instance(instance)
            target.start_sshd()
            rc = proc.wait(timeout=900)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return rc, log.read_text(), instance


def _gateway(target: SshTarget) -> str:
    """podman's bridge gateway as the stand-in sees it: where it reaches the test's IMDS (as an
    instance reaches 169.254.169.254)."""
    return podman("inspect", "--format", "{{.NetworkSettings.Gateway}}", target.target.name).strip()


def test_bake_playbook_registers_a_tagged_imdsv2_ami_and_records_it(aws: LocalAWS, tmp_path: Path) -> None:
    # GIVEN a Canonical base image and a key pair in the local account, and a stand-in build
    # instance whose sshd stays down until Packer has launched the instance it stands in for
    with (
        ssh_target("img7-ebs", tmp_path, start_sshd=False) as target,
        LocalIMDS(host=_gateway(target)) as imds,
    ):
        aws.client("ec2").import_key_pair(
            KeyName="capillary-bake", PublicKeyMaterial=target.public_key.encode()
        )
        # The stand-in gets only the hygiene (the software roles have their own tests), and
        # Packer the test's endpoint, base image and SSH target; bake.yml adds the rest.
        cmd, env = playbook_command(
            "playbooks/bake.yml",
            extra_vars={
                "capillary_deployment": "ebs7",
                "capillary_platform": "aws",
                "capillary_release": RELEASE,
                "capillary_bake_smoke": False,  # tested to its boundary in test_bake_smoke_aws.py
                "capillary_bake_output_dir": str(tmp_path / "bake"),
                "capillary_bake_provision_extra_vars": {
                    "capillary_provision_roles": [],
                    "capillary_build_imds_url": imds.url,
                },
                "capillary_bake_packer_vars": _stand_in_vars(aws, target),
            },
        )
        # -v: Packer's output is in the log, should the build fail
        env["ANSIBLE_VERBOSITY"] = "1"

        # WHEN bake.yml bakes the release on AWS (the local endpoint)
        rc, output, instance = _build_on_stand_in(aws, cmd, env, target, imds, tmp_path / "bake.log")
        recap = Recap(rc=rc, hosts=parse_recap(output), stdout=output, stderr="")
        recap.assert_ok()
        # and the hygiene ran on the stand-in: its host keys and authorized_keys are gone
        leftovers = target.target.sh("ls /etc/ssh/ssh_host_* /root/.ssh/authorized_keys 2>/dev/null || true")
        assert leftovers.strip() == ""

    # THEN the manifest holds the AMI id
    manifest = json.loads((tmp_path / "bake" / RELEASE / "manifest.json").read_text())
    build = manifest["builds"][-1]
    region, ami = build["artifact_id"].split(":")
    assert region == "eu-west-1" and ami.startswith("ami-")
    assert build["custom_data"]["release"] == RELEASE
    # and the AMI carries the release's tags
    ec2 = aws.client("ec2")
    image = ec2.describe_images(ImageIds=[ami])["Images"][0]
    tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
    commit = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert tags["capillary:release"] == RELEASE
    assert tags["capillary:bundle"] == "20260620"
    assert tags["capillary:vep"] == "115"
    assert tags["capillary:commit"].startswith(commit)
    assert tags["capillary:source-ami"] == SOURCE_AMI
    assert tags["capillary:build-time"]
    # and every instance launched from it requires IMDSv2 (Packer 1.6.6 cannot say so; bake.yml did)
    assert image["ImdsSupport"] == "v2.0"
    assert ec2.describe_image_attribute(ImageId=ami, Attribute="imdsSupport")["ImdsSupport"] == {
        "Value": "v2.0"
    }
    # and so did the build instance, from before any role ran, though it was launched without
    # (on spot, with the data volume Packer asked for)
    assert instance["InstanceLifecycle"] == "spot"
    assert instance["MetadataOptions"]["HttpTokens"] == "optional"
    after = ec2.describe_instances(InstanceIds=[instance["InstanceId"]])["Reservations"][0]["Instances"][0]
    assert after["MetadataOptions"]["HttpTokens"] == "required"
    assert imds.requests[:2] == [("PUT", "/latest/api/token"), ("GET", "/latest/meta-data/instance-id")]
    assert imds.rejected == 0 and not any(t in output for t in imds.tokens)
    # and version-info.json came back from the build
    info = json.loads((tmp_path / "bake" / RELEASE / "version-info-worker.json").read_text())
    assert info["release"] == RELEASE and info["capillary_commit"] == tags["capillary:commit"]
    # and the image is recorded for the release and, the catalogue's current one, as current
    ssm = aws.client("ssm")
    assert ssm.get_parameter(Name=f"/capillary/ebs7/images/{RELEASE}")["Parameter"]["Value"] == ami
    assert ssm.get_parameter(Name="/capillary/ebs7/images/current")["Parameter"]["Value"] == ami


@pytest.mark.skipif(bool(loop_devices_usable()), reason=f"cannot run here: {loop_devices_usable()}")
def test_amazon_ebs_build_formats_and_mounts_the_volume_packer_attached_at_sdf(
    aws: LocalAWS, tmp_path: Path
) -> None:
    # GIVEN two real block devices (loop devices) for the SSH target that stands in for the build
    # instance: one will be the data volume, the other the root volume, a decoy; sshd stays down
    # until the target looks like the instance Packer launches
    out = tmp_path / "out"
    with (
        loop_devices(tmp_path, 2) as (data_dev, root_dev),
        ssh_target(
            "img7-ebsvol",
            tmp_path,
            extra=["--cap-add", "SYS_ADMIN", "--device", data_dev, "--device", root_dev],
            start_sshd=False,
        ) as target,
    ):
        aws.client("ec2").import_key_pair(
            KeyName="capillary-bake", PublicKeyMaterial=target.public_key.encode()
        )
        # and an IMDSv2 server the target reaches on its bridge gateway, with no credentials: the
        # controller describes the instance
        with LocalIMDS(host=_gateway(target)) as imds:
            provision = {"capillary_provision_roles": ["data_volume"], "capillary_build_imds_url": imds.url}
            var_file = tmp_path / "test.pkrvars.json"
            var_file.write_text(json.dumps(_packer_vars(aws, target, out, provision)))
            volumes: dict[str, str] = {}
            by_id = "/dev/disk/by-id"

            def become_instance(instance: dict[str, Any]) -> None:
                # udev's links name the instance's volumes (udev itself does not run in a
                # container): the by-id link of each EBS volume, and the by-label link udev adds
                # once the data volume has its filesystem (mount resolves LABEL= through it)
                volumes.update(
                    {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]}
                )
                links = {
                    f"{by_id}/{ebs_by_id_name(volumes['/dev/sdf'])}": data_dev,
                    f"{by_id}/{ebs_by_id_name(volumes['/dev/xvda'])}": root_dev,
                    "/dev/disk/by-label/capillary-data": data_dev,
                }
                target.target.sh(
                    f"mkdir -p {by_id} /dev/disk/by-label && "
                    + " && ".join(
                        f"ln -s ../..{dev.removeprefix('/dev')} {link}" for link, dev in links.items()
                    )
                )

            # WHEN Packer builds the amazon-ebs source with data_volume, the target becoming the
            # instance it launched
            cmd, env = _packer_build(aws, var_file)
            # -v: the facts set on the way (the volume id, the device data_volume picked) are shown
            env["ANSIBLE_VERBOSITY"] = "1"
            rc, output, _ = _build_on_stand_in(
                aws, cmd, env, target, imds, tmp_path / "packer.log", become_instance
            )
            assert rc == 0, output[-6000:]

        # THEN the volume attached at /dev/sdf carries the data filesystem, mounted at the mountpoint
        mounted = target.target.sh("findmnt -n -o SOURCE,FSTYPE /srv/capillary").split()
        assert mounted == [data_dev, "ext4"]
        label = target.target.sh(f"blkid -p -o value -s LABEL {data_dev}").strip()
        assert label == "capillary-data"
        # and fstab mounts it by label, so a worker from the AMI mounts it whatever its NVMe name
        fstab = target.target.sh("cat /etc/fstab").split("\n")
        assert "LABEL=capillary-data /srv/capillary ext4 defaults,nofail,noatime 0 0" in fstab
        # and the root volume was left alone
        assert target.target.sh(f"blkid -p {root_dev}; echo rc=$?", check=False).strip() == "rc=2"
        # and the build host read its identity the IMDSv2 way, and no token reached the log
        assert imds.requests == [("PUT", "/latest/api/token"), ("GET", "/latest/meta-data/instance-id")]
        assert imds.rejected == 0
        assert imds.tokens and not any(t in output for t in imds.tokens)
        # and the lookup is what found it (not the label link, which data_volume also accepts):
        # data_volume was handed the /dev/sdf volume's id and picked that volume's by-id link
        facts = [line.split(": ", 1)[-1].strip() for line in output.splitlines()]
        assert f"data_volume_ebs_volume_id: {volumes['/dev/sdf']}" in facts
        assert f"__data_volume_device: {by_id}/{ebs_by_id_name(volumes['/dev/sdf'])}" in facts
