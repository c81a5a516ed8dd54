"""Where the project's playbooks, roles and inventories are, for the one-machine run.

The local run drives the same `ansible-playbook` a centre runs, so it needs the checkout (or an
unpacked copy) that holds `ansible.cfg`, `playbooks/` and `roles/`: `$CAPILLARY_PROJECT_DIR`,
else the checkout this package was installed from in development mode, else the current
directory.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "CAPILLARY_PROJECT_DIR"


def _is_project(path: Path) -> bool:
    return (path / "ansible.cfg").is_file() and (path / "playbooks").is_dir()


def project_dir() -> Path:
    """The project directory; raises FileNotFoundError naming what was looked for."""
    explicit = os.environ.get(ENV, "")
    if explicit:
        path = Path(explicit).resolve()
        if not _is_project(path):
            raise FileNotFoundError(f"{ENV}={explicit}: no ansible.cfg and playbooks/ there")
        return path
    for candidate in (*Path(__file__).resolve().parents, Path.cwd().resolve()):
        if _is_project(candidate):
            return candidate
    raise FileNotFoundError(
        f"no Capillary project directory (ansible.cfg and playbooks/) found: set {ENV} to a checkout"
    )


def containers_conf() -> Path:
    """The project's podman configuration for local workers and builds (explicit ulimits, runc)."""
    return project_dir() / "inventories" / "local" / "containers.conf"
