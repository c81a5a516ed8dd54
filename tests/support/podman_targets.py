"""Booted bookworm containers: Ansible targets with a real systemd, and baked workers.

- `booted(prefix)` / `Target`: a container on podman's default network, for roles that need no
  host service;
- `BootedTarget`: one on the host network (it reaches the 127.0.0.1 artifact servers and the
  local AWS endpoint), with an inventory for playbook runs;
- `boot_worker(image, ...)`: a worker container from a baked image, booted as the local platform
  boots one, timed to its consumer active or to its first ReceiveMessage.

Each container is named with a caller's prefix so a test only ever removes its own, and it is
removed on exit of the context manager whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from capillary.contract.layout import STATE_FILE
from capillary.local.podman import PODMAN_ENV, podman
from capillary.local.project import project_dir

REPO = project_dir()
BASE_IMAGE = "localhost/capillary-bookworm:latest"


@dataclass
class Target:
    name: str

    def sh(self, script: str, check: bool = True, timeout: float = 120) -> str:
        return podman("exec", self.name, "/bin/sh", "-c", script, check=check, timeout=timeout)

    def write(self, path: str, content: str, mode: str = "0600") -> None:
        podman(
            "exec",
            "-i",
            self.name,
            "/bin/sh",
            "-c",
            f"mkdir -p \"$(dirname '{path}')\" && cat > '{path}' && chmod {mode} '{path}'",
            input=content,
        )

    def inventory(self, directory: Path) -> Path:
        path = directory / f"{self.name}.ini"
        path.write_text(
            f"{self.name} ansible_connection=containers.podman.podman "
            "ansible_python_interpreter=/usr/bin/python3\n"
        )
        return path

    def wait_booted(self, timeout: float = 60) -> str:
        return wait_system_running(self.name, timeout)


def wait_system_running(name: str, timeout: float = 60) -> str:
    """Wait until systemd in container `name` says running (or degraded); its state."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = podman("exec", name, "systemctl", "is-system-running", check=False).strip()
        if state in ("running", "degraded"):
            return state
        time.sleep(0.2)
    raise TimeoutError(f"{name} did not boot in {timeout}s (state {state!r})")


@contextlib.contextmanager
def booted(prefix: str, image: str = BASE_IMAGE, extra: Sequence[str] = ()) -> Iterator[Target]:
    """A container from `image` running systemd as PID 1, removed afterwards."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    podman("run", "-d", "--name", name, "--systemd=always", "--tmpfs", "/tmp", *extra, image, "/sbin/init")
    target = Target(name)
    try:
        target.wait_booted()
        yield target
    finally:
        podman("rm", "-f", "-t", "2", name, check=False)


class BootedTarget:
    """A systemd bookworm container on the host network (it reaches 127.0.0.1 servers).

    Named `<prefix>-<random>` so cleanup never touches another area's containers.
    `inventory(path)` writes an inventory with the podman connection for host `target`.
    """

    def __init__(self, prefix: str = "capillary-refdata") -> None:
        self.name = f"{prefix}-{os.urandom(3).hex()}"

    def start(self) -> BootedTarget:
        podman(
            "run",
            "-d",
            "--name",
            self.name,
            "--network",
            "host",
            "--systemd",
            "always",
            "--tmpfs",
            "/run",
            "--tmpfs",
            "/tmp",
            BASE_IMAGE,
            "/sbin/init",
        )
        wait_system_running(self.name)
        return self

    def exec(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", "exec", self.name, *argv],
            check=check,
            env=PODMAN_ENV,
            capture_output=True,
            text=True,
        )

    def inventory(self, path: Path, **hostvars: Any) -> Path:
        host = {
            "ansible_connection": "containers.podman.podman",
            "ansible_host": self.name,
            "ansible_python_interpreter": "/usr/bin/python3",
            **hostvars,
        }
        path.write_text(yaml.safe_dump({"all": {"hosts": {"target": host}}}))
        return path

    def stop(self) -> None:
        podman("rm", "-f", "-t", "0", self.name, check=False)

    def __enter__(self) -> BootedTarget:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
# workers from a baked image
# ---------------------------------------------------------------------------------------------

CONSUMER_UNIT = "capillary-consumer"


def write_launch_env(path: Path, queue_url: str, aws_env: dict[str, str]) -> Path:
    """A worker's launch.env: its work queue, no IMDS (no instance here), the AWS endpoint."""
    lines = [f"CAPILLARY_QUEUE_URL={queue_url}", "CAPILLARY_IMDS_ENABLED=false"]
    lines += [f"{k}={v}" for k, v in aws_env.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


# How the local platform starts a worker (roles/workers/tasks/up_local.yml): host network, systemd
# as PID 1, and CAP_SYS_ADMIN, without which systemd cannot build the consumer unit's sandbox (and
# the consumer, which checks, refuses to start).
WORKER_PODMAN_OPTIONS = ("--network=host", "--systemd=always", "--cap-add=SYS_ADMIN")


def boot_worker(
    image: str, name: str, launch_env: Path, timeout: float = 120, until: str = "active"
) -> float:
    """Boot a worker container from `image` as production does and time it.

    Runs it the way local workers run (WORKER_PODMAN_OPTIONS, launch.env mounted) and returns the
    seconds from `podman run` to `until`: `active`, systemd saying the consumer unit is active
    (`Type=exec`: the daemon's execve), or `polling`, the daemon's first ReceiveMessage call (the
    `first_receive_epoch` of its state file). The container is left running: the caller removes
    it (`podman rm -f <name>`), also on failure. Raises TimeoutError, with the unit's journal, when
    that does not happen in `timeout`.
    """
    if until not in ("active", "polling"):
        raise ValueError(f"until: expected 'active' or 'polling', got {until!r}")
    podman("rm", "-f", "--ignore", name)
    started_epoch = time.time()
    t0 = time.perf_counter()
    podman(
        "run",
        "-d",
        "--name",
        name,
        *WORKER_PODMAN_OPTIONS,
        f"--volume={launch_env}:/etc/capillary/launch.env:ro",
        image,
    )
    state = ""
    while time.perf_counter() - t0 < timeout:
        if until == "active":
            state = podman("exec", name, "systemctl", "is-active", CONSUMER_UNIT, check=False).strip()
            if state == "active":
                return time.perf_counter() - t0
        else:
            raw = podman("exec", name, "cat", STATE_FILE, check=False)
            with contextlib.suppress(ValueError):
                polled = json.loads(raw or "{}").get("first_receive_epoch")
                if polled:
                    return float(polled) - started_epoch
            state = "not polling yet"
        time.sleep(0.05)
    journal = podman("exec", name, "journalctl", "-u", CONSUMER_UNIT, "--no-pager", check=False)
    raise TimeoutError(f"{name}: {CONSUMER_UNIT} is {state!r} after {timeout:.0f} s\n{journal}")
