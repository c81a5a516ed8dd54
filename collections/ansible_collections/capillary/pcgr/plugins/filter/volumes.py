# Copyright: Contributors to the Capillary project
# SPDX-License-Identifier: Apache-2.0
"""Which block device is the data volume, from `capillary.release.volumes` (its one home)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: data_volume_device
short_description: The data volume's device, whatever the kernel named it
version_added: 0.1.0
description:
  - Picks the device to format and mount from the target's /dev/disk/by-id and /dev/disk/by-label
    entries - by EBS volume id (NVMe names differ from the attach name), then by filesystem label,
    then an explicit device. Returns an empty string when there is none (containers, local runs).
  - Requires the C(capillary-pcgr) Python package on the controller (C(pip install capillary-pcgr)).
options:
  _input:
    description:
      - A dict with C(by_id), C(by_label), C(existing_devices) (lists of paths), C(volume_id),
        C(label) and C(device).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Pick the data volume
  ansible.builtin.set_fact:
    device: "{{ {'by_id': ids, 'volume_id': 'vol-0123456789abcdef0'} | capillary.pcgr.data_volume_device }}"
"""

RETURN = r"""
_value:
  description: The device path, or an empty string.
  type: str
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.capillary.pcgr.plugins.module_utils.capillary_package import import_capillary


def data_volume_device(facts):
    volumes = import_capillary("release.volumes", "capillary.pcgr.data_volume_device", AnsibleFilterError)
    try:
        return volumes.data_volume_device(facts)
    except volumes.VolumeError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self):
        return {"data_volume_device": data_volume_device}
