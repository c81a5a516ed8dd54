"""capillary.run: a capillary.pcgr playbook, run with the ansible-playbook of this pack's virtualenv.

StackStorm builds the pack's virtualenv from requirements.txt (ansible-core, capillary-pcgr, boto3)
and runs this action with that virtualenv's Python, so `sys.executable`'s directory holds the
ansible-playbook to run: not the StackStorm ansible pack's (its old virtualenv has neither the
collection nor amazon.aws's boto3). The collections are found in the virtualenv's collections
path, or the pack configuration's `collections_path`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from st2common.runners.base_action import Action

PLAYBOOK = re.compile(r"^capillary\.pcgr\.[a-z][a-z0-9_]*$")
RECAP_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$")


def collections_path(config: dict[str, Any] | None) -> Path:
    """Where the collections are: the pack configuration's collections_path, else <virtualenv>/collections."""
    configured = (config or {}).get("collections_path") or ""
    return Path(configured) if configured else Path(sys.prefix) / "collections"


def command(playbook: str, extra_vars: dict[str, Any]) -> list[str]:
    """The ansible-playbook command line; raises ValueError for anything but a capillary.pcgr playbook."""
    if not PLAYBOOK.match(playbook):
        raise ValueError(
            f"playbook {playbook!r}: expected a capillary.pcgr playbook by name, e.g. capillary.pcgr.up"
        )
    return [str(Path(sys.executable).parent / "ansible-playbook"), playbook, "-e", json.dumps(extra_vars)]


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP's counters per host."""
    hosts: dict[str, dict[str, int]] = {}
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("PLAY RECAP")), len(lines))
    for line in lines[start + 1 :]:
        m = RECAP_LINE.match(line.strip())
        if m:
            hosts[m.group("host")] = {
                k: int(v) for k, v in (kv.split("=") for kv in m.group("counts").split())
            }
    return hosts


class Playbook(Action):
    def run(self, playbook: str, extra_vars: dict[str, Any] | None = None, timeout: int = 1800) -> Any:
        try:
            argv = command(playbook, dict(extra_vars or {}))
        except ValueError as exc:
            return (False, {"error": str(exc)})
        env = {
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": str(collections_path(getattr(self, "config", None))),
            "ANSIBLE_NOCOLOR": "1",
        }
        try:
            proc = subprocess.run(
                argv,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            return (
                False,
                {"error": f"{playbook}: still running after {timeout}s, stopped", "stdout": exc.stdout or ""},
            )
        sys.stdout.write(proc.stdout)  # the execution's stdout in StackStorm
        return (
            proc.returncode == 0,
            {
                "rc": proc.returncode,
                "ansible_playbook": argv[0],
                "playbook": playbook,
                "recap": recap(proc.stdout),
            },
        )
