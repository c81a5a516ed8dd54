# Copyright: Contributors to the Capillary project
# SPDX-License-Identifier: Apache-2.0
"""The names of a deployment's resources, from `capillary.contract.naming` (their one home)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: deployment_names
short_description: Every resource name of a Capillary deployment
version_added: 0.1.0
description:
  - Derives the bucket, queue, IAM, SSM and tag names of a deployment from its name, with the
    same function the intake handler, the worker daemon and the CLI use.
  - Given O(release), also the release's image names (C(DeploymentNames.image_parameter) and
    C(DeploymentNames.worker_image)).
  - Requires the C(capillary-pcgr) Python package on the controller (C(pip install capillary-pcgr)).
options:
  _input:
    description: The deployment name (1-24 lowercase letters, digits and hyphens).
    type: str
    required: true
  bucket:
    description: A bucket name to use instead of C(capillary-<deployment>-samples).
    type: str
  release:
    description:
      - A release (a catalogue version such as V(2.3.2), or V(current)); adds C(image_parameter),
        the SSM parameter holding the image id baked for it, and C(worker_image), the local
        platform's container image of it.
    type: str
"""

EXAMPLES = r"""
- name: Look up the work queue of the demo deployment
  ansible.builtin.debug:
    msg: "{{ ('demo' | capillary.pcgr.deployment_names).work_queue }}"

- name: Read the image id baked for release 2.3.2
  ansible.builtin.debug:
    msg: "{{ lookup('amazon.aws.ssm_parameter', names.image_parameter) }}"
  vars:
    names: "{{ 'demo' | capillary.pcgr.deployment_names(release='2.3.2') }}"
"""

RETURN = r"""
_value:
  description:
    - The names, keyed as C(capillary.contract.naming.DeploymentNames) fields; with O(release),
      also C(image_parameter) (C(/capillary/<d>/images/<release>)) and C(worker_image)
      (C(localhost/capillary-worker:<release>)).
  type: dict
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.capillary.pcgr.plugins.module_utils.capillary_package import import_capillary


def deployment_names(deployment, bucket=None, release=None):
    naming = import_capillary("contract.naming", "capillary.pcgr.deployment_names", AnsibleFilterError)
    try:
        names = naming.deployment_names(deployment, bucket or None)
        return names.as_dict(None if release is None else str(release))
    except naming.DeploymentNameError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self):
        return {"deployment_names": deployment_names}
