"""Booted bookworm containers as Ansible targets, for tests that need a real systemd host.

Each container is named with a caller's prefix so a test only ever removes its own, and it is
removed on exit of the context manager whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE = "localhost/capillary-bookworm:latest"
PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": str(REPO / "tests/containers/containers.conf")}


def podman(*args: str, check: bool = True, timeout: float = 120, input: str | None = None) -> str:
    proc = subprocess.run(
        ["podman", *args],
        env=PODMAN_ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        input=input,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


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
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.sh("systemctl is-system-running 2>/dev/null || true", check=False).strip()
            if state in ("running", "degraded"):
                return state
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} did not boot in {timeout}s (state {state!r})")


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
