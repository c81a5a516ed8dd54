"""Run a playbook the way a user does (`ansible-playbook` in a subprocess) and read its recap."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capillary.local.project import project_dir

REPO = project_dir()
_RECAP_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$")
_TASK_HEADER = re.compile(r"^TASK \[(?P<name>.*)\] \**$")
_HOST_RESULT = re.compile(r"^(?P<status>ok|changed|skipping|failed|fatal|included): \[")


@dataclass
class Recap:
    """What `ansible-playbook` printed under PLAY RECAP, per host, with the run's output."""

    rc: int
    hosts: dict[str, dict[str, int]] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""

    def total(self, counter: str) -> int:
        return sum(h.get(counter, 0) for h in self.hosts.values())

    @property
    def changed(self) -> int:
        return self.total("changed")

    @property
    def failed(self) -> int:
        return self.total("failed") + self.total("unreachable")

    def assert_ok(self) -> Recap:
        assert self.rc == 0 and self.failed == 0, f"playbook failed (rc={self.rc}):\n{self.tail()}"
        return self

    def assert_idempotent(self) -> Recap:
        self.assert_ok()
        assert self.changed == 0, f"re-run reported changed={self.changed}:\n{self.tail()}"
        return self

    def outcomes(self, task: str) -> list[str]:
        """The host results printed under every task header that ends with `task` (the role
        prefix may be left off): e.g. ["skipping"] or ["ok", "changed"], in order."""
        found: list[str] = []
        current = False
        for line in self.stdout.splitlines():
            header = _TASK_HEADER.match(line)
            if header:
                name = header.group("name")
                current = name == task or name.endswith(f" : {task}")
                continue
            result = _HOST_RESULT.match(line)
            if current and result:
                found.append(result.group("status"))
        return found

    def tail(self, lines: int = 80) -> str:
        return "\n".join((self.stdout + "\n" + self.stderr).splitlines()[-lines:])


def parse_recap(stdout: str) -> dict[str, dict[str, int]]:
    hosts: dict[str, dict[str, int]] = {}
    in_recap = False
    for line in stdout.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        if in_recap:
            m = _RECAP_LINE.match(line.strip())
            if m:
                counts = dict(kv.split("=") for kv in m.group("counts").split())
                hosts[m.group("host")] = {k: int(v) for k, v in counts.items()}
    return hosts


def playbook_command(
    playbook: str | Path,
    *,
    env: Mapping[str, str] | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    inventory: str | Path | None = None,
    check: bool = False,
    limit: str | None = None,
    tags: Sequence[str] = (),
    args: Sequence[str] = (),
) -> tuple[list[str], dict[str, str]]:
    """The `ansible-playbook` command line and environment run_playbook runs (to run from the
    repository root), for a test that must act while the playbook runs.

    `env` is laid over the current environment (the local endpoint's variables, typically).
    Extra vars travel as JSON so types survive.
    """
    bin_dir = Path(sys.executable).parent
    cmd: list[str] = [str(bin_dir / "ansible-playbook"), str(playbook)]
    if inventory is not None:
        cmd += ["-i", str(inventory)]
    if extra_vars:
        cmd += ["-e", json.dumps(dict(extra_vars))]
    if check:
        cmd.append("--check")
    if limit:
        cmd += ["--limit", limit]
    if tags:
        cmd += ["--tags", ",".join(tags)]
    cmd += list(args)
    full_env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        **(env or {}),
    }
    return cmd, full_env


def run_playbook(
    playbook: str | Path,
    *,
    env: Mapping[str, str] | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    inventory: str | Path | None = None,
    check: bool = False,
    limit: str | None = None,
    tags: Sequence[str] = (),
    args: Sequence[str] = (),
    timeout: float = 900,
) -> Recap:
    """Run `ansible-playbook` from the repository root and return its recap (see playbook_command)."""
    cmd, full_env = playbook_command(
        playbook,
        env=env,
        extra_vars=extra_vars,
        inventory=inventory,
        check=check,
        limit=limit,
        tags=tags,
        args=args,
    )
    proc = subprocess.run(
        cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return Recap(rc=proc.returncode, hosts=parse_recap(proc.stdout), stdout=proc.stdout, stderr=proc.stderr)


_MODULE_PLAYBOOK = """
- name: Run one module
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Run the module
      {module}: {args}
      register: result
      ignore_errors: {ignore_errors}
    - name: Save the result for the test
      ansible.builtin.copy:
        content: "{{{{ result | to_nice_json }}}}"
        dest: {out}
        mode: "0600"
      check_mode: false  # the test reads the result in check mode too
      diff: false
"""


def run_module(
    run: Callable[..., Recap],
    tmp_path: Path,
    module: str,
    args: Mapping[str, Any],
    *,
    check: bool = False,
    diff: bool = False,
    ignore_errors: bool = False,
) -> tuple[Recap, dict[str, Any]]:
    """Run one module through ansible-playbook (with `run`, e.g. the `playbook` fixture) and return
    the recap and what the module registered. With ignore_errors, a failed result is returned too."""
    out = tmp_path / "result.json"
    book = tmp_path / "module.yml"
    book.write_text(
        _MODULE_PLAYBOOK.format(
            module=module, args=json.dumps(dict(args)), out=out, ignore_errors=str(ignore_errors).lower()
        )
    )
    recap = run(str(book), check=check, args=["--diff"] if diff else []).assert_ok()
    result: dict[str, Any] = json.loads(out.read_text())
    return recap, result
