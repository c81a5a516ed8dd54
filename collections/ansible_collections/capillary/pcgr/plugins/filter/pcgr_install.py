# Copyright: Contributors to the Capillary project
# SPDX-License-Identifier: Apache-2.0
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
  - Requires the C(capillary-pcgr) Python package on the controller (C(pip install capillary-pcgr)).
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
from ansible_collections.capillary.pcgr.plugins.module_utils.capillary_package import import_capillary


def pcgr_conda_plan(release, prefix="", lock_base_url=""):
    layout = import_capillary("contract.layout", "capillary.pcgr.pcgr_conda_plan", AnsibleFilterError)
    install = import_capillary("release.pcgr_install", "capillary.pcgr.pcgr_conda_plan", AnsibleFilterError)
    try:
        return install.conda_plan(
            release, prefix=prefix or layout.CONDA_PREFIX, lock_base_url=lock_base_url or ""
        )
    except (ValueError, KeyError) as exc:
        raise AnsibleFilterError(f"pcgr_conda_plan: {exc}") from exc


class FilterModule:
    def filters(self):
        return {"pcgr_conda_plan": pcgr_conda_plan}
