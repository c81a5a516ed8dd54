# Copyright: Contributors to the Capillary project
# SPDX-License-Identifier: Apache-2.0
"""Device name -> EBS volume id of an instance, from `capillary.release.volumes` (its one home)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: ebs_volume_mappings
short_description: The EBS volume id attached at each device name of an instance
version_added: 0.1.0
description:
  - Turns one instance of C(amazon.aws.ec2_instance_info) into a dict of device name (C(/dev/sdf))
    to EBS volume id. Names lacking C(/dev/) get it; mappings without an EBS volume are left out.
  - Used at bake time to find the volume Packer attached as the data volume, whose id the
    C(data_volume) role needs to find it under C(/dev/disk/by-id).
  - Requires the C(capillary-pcgr) Python package on the controller (C(pip install capillary-pcgr)).
options:
  _input:
    description: One element of C(instances) as returned by C(amazon.aws.ec2_instance_info).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Pick the volume attached as /dev/sdf
  ansible.builtin.set_fact:
    data_volume_ebs_volume_id: >-
      {{ (instance_info.instances | first | capillary.pcgr.ebs_volume_mappings)['/dev/sdf'] }}
"""

RETURN = r"""
_value:
  description: Device name to EBS volume id, one entry per EBS mapping of the instance.
  sample: {"/dev/xvda": "vol-0123456789abcdef0", "/dev/sdf": "vol-0fedcba9876543210"}
  type: dict
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.capillary.pcgr.plugins.module_utils.capillary_package import import_capillary


def ebs_volume_mappings(instance):
    volumes = import_capillary("release.volumes", "capillary.pcgr.ebs_volume_mappings", AnsibleFilterError)
    if not isinstance(instance, dict):
        raise AnsibleFilterError(
            f"capillary.pcgr.ebs_volume_mappings expects an instance dict, got {type(instance).__name__}"
        )
    return volumes.ebs_volume_mappings(instance)


class FilterModule:
    def filters(self):
        return {"ebs_volume_mappings": ebs_volume_mappings}
