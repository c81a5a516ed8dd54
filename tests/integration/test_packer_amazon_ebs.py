"""The amazon-ebs source builds against the local AWS endpoint, with a booted container running
sshd standing in for the build instance: the AMI is registered, tagged and in the manifest; and
the data volume Packer attaches at /dev/sdf is the one data_volume formats and mounts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from capillary.volumes import ebs_by_id_name
from tests.support.imds import LocalIMDS
from tests.support.localaws import LocalAWS
from tests.support.loop_devices import loop_devices, loop_devices_usable
from tests.support.playbook import REPO
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


def _packer_vars(aws: LocalAWS, target: SshTarget, out: Path, provision: dict[str, Any]) -> dict[str, Any]:
    return {
        "output_dir": str(out),
        "capillary_commit": "abc123def456",
        "deployment": "ebs7",
        "ansible_playbook": str(REPO / ".venv/bin/ansible-playbook"),
        "provision_extra_vars": json.dumps(provision),
        "aws_endpoint": aws.endpoint_url,
        "aws_skip_validation": True,
        "base_os": "ubuntu-24.04",
        "source_ami_name": SOURCE_AMI_NAME,
        # Packer 1.6.6 launches spot builds through CreateFleet, whose local-endpoint answer
        # it cannot read (it panics in cleanup); the spot settings are validated by
        # scripts/packer-validate.sh and the build here runs on demand.
        "spot_price": "",
        "spot_instance_types": [],
        "instance_type": "t3.large",
        "ssh_username": target.user,
        "ssh_host": target.host,
        "ssh_port": target.port,
        "ssh_keypair_name": "capillary-bake",
        "ssh_private_key_file": str(target.private_key),
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


def test_amazon_ebs_build_registers_a_tagged_ami(aws: LocalAWS, tmp_path: Path) -> None:
    # GIVEN a Canonical base image and a key pair in the local account, and an SSH target
    out = tmp_path / "out"
    with ssh_target("img7-ebs", tmp_path) as target:
        aws.client("ec2").import_key_pair(
            KeyName="capillary-bake", PublicKeyMaterial=target.public_key.encode()
        )
        # The stand-in instance gets only the hygiene (the software roles have their own tests;
        # without data_volume the data volume lookup is skipped too: no IMDS answers here).
        variables = _packer_vars(aws, target, out, {"capillary_provision_roles": []})
        var_file = tmp_path / "test.pkrvars.json"
        var_file.write_text(json.dumps(variables))

        # WHEN Packer builds the amazon-ebs source
        cmd, env = _packer_build(aws, var_file)
        proc = subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False
        )
        log = proc.stdout + proc.stderr
        assert proc.returncode == 0, log[-6000:]
        # and the hygiene ran on the target: its host keys and authorized_keys are gone
        leftovers = target.target.sh("ls /etc/ssh/ssh_host_* /root/.ssh/authorized_keys 2>/dev/null || true")
        assert leftovers.strip() == ""

    # THEN the manifest holds the AMI id, and the AMI carries the release's tags
    manifest = json.loads((out / "manifest.json").read_text())
    build = manifest["builds"][-1]
    region, ami = build["artifact_id"].split(":")
    assert region == "eu-west-1" and ami.startswith("ami-")
    assert build["custom_data"]["release"] == RELEASE
    image = aws.client("ec2").describe_images(ImageIds=[ami])["Images"][0]
    tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
    assert tags["capillary:release"] == RELEASE
    assert tags["capillary:bundle"] == "20260620"
    assert tags["capillary:vep"] == "115"
    assert tags["capillary:commit"] == "abc123def456"
    assert tags["capillary:source-ami"] == SOURCE_AMI
    assert tags["capillary:build-time"]
    # and version-info.json came back from the build
    info = json.loads((out / "version-info-worker.json").read_text())
    assert info["release"] == RELEASE and info["capillary_commit"] == "abc123def456"


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
        # and an IMDSv2 server the target reaches on its bridge gateway (as an instance reaches
        # 169.254.169.254), with no credentials: the controller describes the instance
        gateway = podman("inspect", "--format", "{{.NetworkSettings.Gateway}}", target.target.name).strip()
        with LocalIMDS(host=gateway) as imds:
            provision = {"capillary_provision_roles": ["data_volume"], "capillary_build_imds_url": imds.url}
            var_file = tmp_path / "test.pkrvars.json"
            var_file.write_text(json.dumps(_packer_vars(aws, target, out, provision)))

            # WHEN Packer builds the amazon-ebs source with data_volume
            cmd, env = _packer_build(aws, var_file)
            # -v: the facts set on the way (the volume id, the device data_volume picked) are shown
            env["ANSIBLE_VERBOSITY"] = "1"
            log = tmp_path / "packer.log"
            with log.open("w") as log_file:
                packer = subprocess.Popen(
                    cmd, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT, text=True
                )
                try:
                    # and, once it has launched the instance, the target becomes that instance: its
                    # IMDS names it, and udev's links name its volumes (udev itself does not run in a
                    # container): the by-id link of each EBS volume, and the by-label link udev adds
                    # once the data volume has its filesystem (mount resolves LABEL= through it)
                    instance = _wait_for_build_instance(aws, packer, log, {"/dev/xvda", "/dev/sdf"})
                    volumes = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]}
                    imds.set_metadata("instance-id", instance["InstanceId"])
                    by_id = "/dev/disk/by-id"
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
                    target.start_sshd()
                    rc = packer.wait(timeout=900)
                finally:
                    if packer.poll() is None:
                        packer.kill()
                        packer.wait()
            output = log.read_text()
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
