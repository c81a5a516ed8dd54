# Copyright: Capillary contributors
# Apache License 2.0
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
  - Requires the C(capillary) Python package on the controller.
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

try:
    from capillary.release.volumes import VolumeError
    from capillary.release.volumes import data_volume_device as _pick
except ImportError as exc:  # pragma: no cover - depends on the controller's environment
    IMPORT_ERROR = exc
else:
    IMPORT_ERROR = None


def data_volume_device(facts):
    if IMPORT_ERROR is not None:
        raise AnsibleFilterError(
            f"capillary.pcgr.data_volume_device needs the capillary package: {IMPORT_ERROR}"
        )
    try:
        return _pick(facts)
    except VolumeError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self):
        return {"data_volume_device": data_volume_device}
