"""Loop devices: real block devices for a container standing in for a cloud instance.

A volume test needs a device to format and mount; EBS volumes cannot exist here, a loop device
over a sparse file can. It is a host-wide resource (root and /dev/loop-control), so every device
is detached on exit of the context manager whatever happened, and only ones this test attached.
A container reaches one with `--device /dev/loopN` (and `--cap-add SYS_ADMIN` to mount it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path


def loop_devices_usable() -> str:
    """Why loop devices cannot be used here, or "" when they can."""
    if os.geteuid() != 0:
        return "loop devices need root"
    if not Path("/dev/loop-control").exists():
        return "no /dev/loop-control"
    if shutil.which("losetup") is None:
        return "losetup is not installed"
    return ""


@contextlib.contextmanager
def loop_devices(workdir: Path, count: int, size_mb: int = 64) -> Iterator[list[str]]:
    """`count` loop devices over sparse files in `workdir`: ["/dev/loopN", ...]."""
    attached: list[str] = []
    try:
        for i in range(count):
            backing = workdir / f"loop-{i}.img"
            with backing.open("wb") as f:
                f.truncate(size_mb * 1024 * 1024)
            proc = subprocess.run(
                ["losetup", "--find", "--show", str(backing)], capture_output=True, text=True, check=True
            )
            attached.append(proc.stdout.strip())
        yield list(attached)
    finally:
        for device in attached:
            subprocess.run(["losetup", "--detach", device], capture_output=True, check=False)
