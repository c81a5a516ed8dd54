# Copyright: Contributors to the Capillary project
# SPDX-License-Identifier: Apache-2.0
"""The worker's on-disk layout, from `capillary.contract.layout` (its one home)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: worker_layout
short_description: Where things live on a worker, under its data root
version_added: 0.1.0
description:
  - From the worker's data root (the data volume's mountpoint), every path the roles, the image
    gate and the consumer agree on - the reference data and VEP cache directories and their
    C(current) links, the consumer's workspace, the part files of resumable downloads, the stamp
    atop every verified artifact, the consumer's state file, the conda prefix and, for the
    container method, the mount points and C(XDG_CACHE_HOME)/C(HOME) inside the container.
  - An empty or null root is the default data root, so a role's default can read
    C({{ ('' | capillary.pcgr.worker_layout).root }}).
  - Requires the C(capillary-pcgr) Python package on the controller (C(pip install capillary-pcgr)).
options:
  _input:
    description: The data root; empty means the default.
    type: str
    required: true
  pcgr_version:
    description: A PCGR release; adds C(conda), that release's conda layout.
    type: str
    default: ""
  conda_prefix:
    description: The conda install prefix for C(conda); empty means the default.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Show where the consumer's workspace and the active bundle are
  ansible.builtin.debug:
    msg: >-
      {{ (data_volume_mountpoint | capillary.pcgr.worker_layout).workspace }}
      {{ (data_volume_mountpoint | capillary.pcgr.worker_layout).refdata_current }}

- name: Show where the pcgr role installs PCGR 2.3.2 with conda
  ansible.builtin.debug:
    msg: "{{ ('' | capillary.pcgr.worker_layout(pcgr_version='2.3.2')).conda.envs.pcgr }}"
"""

RETURN = r"""
_value:
  description:
    - C(root), C(assemblies) (the genome builds PCGR knows), C(refdata), C(refdata_current),
      C(vep), C(vep_current), C(workspace), C(downloads) (paths), C(artifact_stamp) (a file
      name), C(state_file), C(conda_prefix), C(container) (C(input), C(output), C(refdata),
      C(vep), C(home), C(xdg_cache_home)), and with I(pcgr_version) C(conda) (C(prefix),
      C(micromamba), C(envs_dir), C(locks_dir), C(envs.pcgr), C(envs.pcgrr)).
  type: dict
"""

from pathlib import PurePosixPath

from ansible.errors import AnsibleFilterError
from ansible_collections.capillary.pcgr.plugins.module_utils.capillary_package import import_capillary


def worker_layout(root, pcgr_version="", conda_prefix=""):
    layout_ = import_capillary("contract.layout", "capillary.pcgr.worker_layout", AnsibleFilterError)
    if root is not None and not isinstance(root, str):
        raise AnsibleFilterError(f"capillary.pcgr.worker_layout: the data root must be a path, got {root!r}")
    try:
        layout = layout_.WorkerLayout(PurePosixPath(root or layout_.DATA_ROOT)).as_dict()
        if pcgr_version:
            conda = layout_.CondaLayout(PurePosixPath(conda_prefix or layout_.CONDA_PREFIX))
            layout["conda"] = conda.as_dict(str(pcgr_version))
    except ValueError as exc:
        raise AnsibleFilterError(f"capillary.pcgr.worker_layout: {exc}") from exc
    return layout


class FilterModule:
    def filters(self):
        return {"worker_layout": worker_layout}
