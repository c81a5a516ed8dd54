"""`podman` as the local platform calls it: the project's containers.conf, output captured."""

from __future__ import annotations

import os
import socket
import subprocess

from capillary.local.project import containers_conf

PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF") or str(containers_conf())}


def podman(*args: str, check: bool = True, timeout: float = 120, input: str | None = None) -> str:
    """Run `podman ARGS...`; its stdout, or RuntimeError with its stderr when `check` and it fails."""
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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
