# Copyright: Contributors to the Capillary project
# SPDX-License-Identifier: Apache-2.0
"""Sample keys in playbooks, from `capillary.contract.samples` (their one home)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: sample_key
short_description: Parse a Capillary sample key
version_added: 0.1.0
description:
  - Parses C(inputs/{batch}-{uuid}-{kind}.tar.gz) with the same code as the intake handler, the
    worker daemon and the CLI, and returns its parts and derived keys.
  - Fails with the contract's reason (for example a hyphen where the dot belongs) for a misnamed key.
  - Requires the C(capillary-pcgr) Python package on the controller (C(pip install capillary-pcgr)).
options:
  _input:
    description: An input key (already URL-decoded).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Show where a sample's report will land
  ansible.builtin.debug:
    msg: "{{ ('inputs/batch1-0a1b2c-somatic.tar.gz' | capillary.pcgr.sample_key).output_key }}"

- name: The output key of an input key, directly
  ansible.builtin.debug:
    msg: "{{ 'inputs/batch1-0a1b2c-somatic.tar.gz' | capillary.pcgr.sample_output_key }}"
"""

RETURN = r"""
_value:
  description: C(batch), C(uuid), C(kind), C(name), C(input_key), C(output_key), C(error_key).
  type: dict
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.capillary.pcgr.plugins.module_utils.capillary_package import import_capillary


def _parse(key, plugin):
    samples = import_capillary("contract.samples", plugin, AnsibleFilterError)
    try:
        return samples.SampleKey.parse(str(key))
    except samples.SampleKeyError as exc:
        raise AnsibleFilterError(f"sample key {exc.key!r} rejected: {exc.reason}") from exc


def sample_key(key):
    sample = _parse(key, "capillary.pcgr.sample_key")
    return {
        "batch": sample.batch,
        "uuid": sample.uuid,
        "kind": sample.kind,
        "name": sample.name,
        "input_key": sample.input_key,
        "output_key": sample.output_key,
        "error_key": sample.error_key,
    }


def sample_output_key(key):
    return _parse(key, "capillary.pcgr.sample_output_key").output_key


class FilterModule:
    def filters(self):
        return {"sample_key": sample_key, "sample_output_key": sample_output_key}
