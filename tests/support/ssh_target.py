"""A booted base-image container running sshd on a loopback port: a stand-in build instance.

Packer's amazon-ebs builder talks to the local AWS endpoint for the instance and the image, and
to this container (ssh_host/ssh_port) for provisioning. The key pair is made for the test;
host keys are generated in the container (the base image ships none).

`start_sshd=False` leaves sshd down until `SshTarget.start_sshd()`: Packer waits for SSH, so a
test can finish setting up the stand-in (e.g. from the instance Packer launched) before any
provisioning reaches it.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.podman_targets import Target, booted


@dataclass
class SshTarget:
    target: Target
    host: str
    port: int
    user: str
    private_key: Path
    public_key: str

    def start_sshd(self, timeout: float = 30) -> None:
        setup = [
            "chmod 700 /root/.ssh",
            "ssh-keygen -A",
            "systemctl unmask ssh.service",
            "systemctl start ssh.service",
        ]
        self.target.sh(" && ".join(setup))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            probe = subprocess.run(
                [
                    "ssh",
                    "-i",
                    str(self.private_key),
                    "-p",
                    str(self.port),
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "UserKnownHostsFile=/dev/null",
                    "-o",
                    "BatchMode=yes",
                    f"{self.user}@{self.host}",
                    "true",
                ],
                capture_output=True,
                check=False,
                timeout=20,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.5)
        raise TimeoutError(f"sshd in {self.target.name} not reachable on {self.host}:{self.port}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def ssh_target(
    prefix: str, workdir: Path, extra: Sequence[str] = (), start_sshd: bool = True
) -> Iterator[SshTarget]:
    key = workdir / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "packer-test", "-f", str(key)], check=True
    )
    public = key.with_suffix(".pub").read_text().strip()
    port = _free_port()
    with booted(prefix, extra=["--publish", f"127.0.0.1:{port}:22", *extra]) as target:
        target.write("/root/.ssh/authorized_keys", public + "\n")
        ssh = SshTarget(target, "127.0.0.1", port, "root", key, public)
        if start_sshd:
            ssh.start_sshd()
        yield ssh
