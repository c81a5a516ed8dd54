# Copyright: Capillary contributors
# Apache License 2.0
"""The conda layout and commands of a PCGR release, from `capillary.release.pcgr_install` (its one home)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: pcgr_conda_plan
short_description: Paths and micromamba commands that install a PCGR release's two conda envs
version_added: 0.1.0
description:
  - From a release (the C(capillary.pcgr.pcgr_release) lookup), the versioned prefix, the lock-file
    downloads and the C(micromamba create) argv of the C(pcgr) and C(pcgrr) environments, side
    by side so PCGR finds C(pcgrr) as C(dirname($CONDA_PREFIX)/pcgrr).
  - Requires the C(capillary) Python package on the controller.
options:
  _input:
    description: The release dict.
    type: dict
    required: true
  prefix:
    description: The install prefix; empty means the worker layout's (C(capillary.pcgr.worker_layout)).
    type: str
    default: ""
  lock_base_url:
    description: Fetch C(<lock_base_url>/<lock file name>) instead of the catalogue URL.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Show the commands
  ansible.builtin.debug:
    msg: >-
      {{ lookup('capillary.pcgr.pcgr_release', 'current')
         | capillary.pcgr.pcgr_conda_plan }}
"""

RETURN = r"""
_value:
  description:
    - C(prefix), C(micromamba), C(locks_dir), C(envs_dir), C(envs) (name, lock_url, lock_file, path,
      marker, create), C(pcgr_env) and C(pcgr_bin).
  type: dict
"""

from ansible.errors import AnsibleFilterError

try:
    from capillary.contract.layout import CONDA_PREFIX
    from capillary.release.pcgr_install import conda_plan
except ImportError as exc:  # pragma: no cover - depends on the controller's environment
    IMPORT_ERROR = exc
else:
    IMPORT_ERROR = None


def pcgr_conda_plan(release, prefix="", lock_base_url=""):
    if IMPORT_ERROR is not None:
        raise AnsibleFilterError(
            f"capillary.pcgr.pcgr_conda_plan needs the capillary package: {IMPORT_ERROR}"
        )
    try:
        return conda_plan(release, prefix=prefix or CONDA_PREFIX, lock_base_url=lock_base_url or "")
    except (ValueError, KeyError) as exc:
        raise AnsibleFilterError(f"pcgr_conda_plan: {exc}") from exc


class FilterModule:
    def filters(self):
        return {"pcgr_conda_plan": pcgr_conda_plan}
