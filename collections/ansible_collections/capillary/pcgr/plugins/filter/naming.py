# Copyright: Capillary contributors
# Apache License 2.0
"""The names of a deployment's resources, from `capillary.contract.naming` (their one home)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: deployment_names
short_description: Every resource name of a Capillary deployment
version_added: 0.1.0
description:
  - Derives the bucket, queue, IAM, SSM and tag names of a deployment from its name, with the
    same function the intake handler, the worker daemon and the CLI use.
  - Requires the C(capillary) Python package on the controller (C(pip install) this repository).
options:
  _input:
    description: The deployment name (1-24 lowercase letters, digits and hyphens).
    type: str
    required: true
  bucket:
    description: A bucket name to use instead of C(capillary-<deployment>-samples).
    type: str
"""

EXAMPLES = r"""
- name: Look up the work queue of the demo deployment
  ansible.builtin.debug:
    msg: "{{ ('demo' | capillary.pcgr.deployment_names).work_queue }}"
"""

RETURN = r"""
_value:
  description: The names, keyed as C(capillary.contract.naming.DeploymentNames) fields.
  type: dict
"""

from ansible.errors import AnsibleFilterError

try:
    from capillary.contract.naming import DeploymentNameError
    from capillary.contract.naming import deployment_names as _deployment_names
except ImportError as exc:  # pragma: no cover - depends on the controller's environment
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None


def deployment_names(deployment, bucket=None):
    if _IMPORT_ERROR is not None:
        raise AnsibleFilterError(
            "capillary.pcgr.deployment_names needs the capillary Python package on the controller: "
            f"{_IMPORT_ERROR}"
        )
    try:
        return _deployment_names(deployment, bucket or None).as_dict()
    except DeploymentNameError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self):
        return {"deployment_names": deployment_names}
