"""Booted systemd containers under podman: the targets roles and images are tested on.

    with booted("capillary-test-x", network_host=True) as c:
        c.exec("systemctl", "is-active", "capillary-consumer")

Containers get CAP_SYS_ADMIN because systemd needs it to give hardened units their mount
namespaces (ProtectSystem=, PrivateTmp=); without it such units fail with 226/NAMESPACE.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE = os.environ.get("CAPILLARY_BASE_IMAGE", "localhost/capillary-bookworm:latest")
CONTAINERS_CONF = str(REPO / "tests" / "containers" / "containers.conf")


def podman(*args: str, check: bool = True, timeout: float = 300, input: str | None = None) -> str:
    env = {**os.environ, "CONTAINERS_CONF": CONTAINERS_CONF}
    proc = subprocess.run(
        ["podman", *args], env=env, capture_output=True, text=True, timeout=timeout, input=input, check=False
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


@dataclass
class Container:
    name: str

    def exec(self, *cmd: str, check: bool = True, user: str | None = None, timeout: float = 120) -> str:
        args = ["exec"] + (["--user", user] if user else []) + [self.name, *cmd]
        return podman(*args, check=check, timeout=timeout)

    def sh(self, script: str, check: bool = True) -> str:
        return self.exec("bash", "-c", script, check=check)

    def wait_booted(self, timeout: float = 60) -> str:
        """Wait until systemd has finished booting; returns its state (running or degraded)."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.exec("systemctl", "is-system-running", check=False).strip()
            if state in ("running", "degraded"):
                return state
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} did not boot within {timeout}s (state: {state!r})")


def run_booted(
    name: str,
    image: str = BASE_IMAGE,
    *,
    network_host: bool = False,
    volumes: Sequence[str] = (),
    env: dict[str, str] | None = None,
    extra: Sequence[str] = (),
) -> Container:
    podman("rm", "-f", "--ignore", name, check=False)
    args = ["run", "-d", "--name", name, "--hostname", name, "--systemd", "always", "--cap-add", "SYS_ADMIN"]
    if network_host:
        args += ["--network", "host"]
    for volume in volumes:
        args += ["-v", volume]
    for key, value in (env or {}).items():
        args += ["-e", f"{key}={value}"]
    args += [*extra, image, "/sbin/init"]
    podman(*args)
    return Container(name)


@contextlib.contextmanager
def booted(name: str, image: str = BASE_IMAGE, **kwargs: object) -> Iterator[Container]:
    """A container booted to systemd's running state, removed afterwards whatever happens."""
    container = run_booted(name, image, **kwargs)  # type: ignore[arg-type]
    try:
        container.wait_booted()
        yield container
    finally:
        podman("rm", "-f", "--time", "2", name, check=False)
