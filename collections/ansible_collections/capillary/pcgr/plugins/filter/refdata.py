# Copyright: Contributors to the Capillary project
# SPDX-License-Identifier: Apache-2.0
"""What pcgr_refdata fetches and where it goes, from `capillary.release.refdata` (its one home)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: refdata_artifacts
short_description: The reference artifacts of a PCGR release, with their place on the worker
version_added: 0.1.0
description:
  - Expands a release (from the C(capillary.pcgr.pcgr_release) lookup) into one dict per file to
    fetch (bundle and VEP cache per assembly) with its URL for the chosen source, its expected
    sha256, its destination directory and the check that proves it complete.
  - Requires the C(capillary-pcgr) Python package on the controller (C(pip install capillary-pcgr)).
options:
  _input:
    description: The release dict returned by C(capillary.pcgr.pcgr_release).
    type: dict
    required: true
  root:
    description: The data volume's mountpoint; empty means the worker layout's default data root.
    type: str
    default: ""
  assemblies:
    description: The assemblies to fetch.
    type: list
    elements: str
    default: [grch38]
  source:
    description: C(upstream), C(s3) or C(path).
    type: str
    default: upstream
  base_url:
    description: Fetch C(<base_url>/<file name>) instead of the catalogue URL (mirrors, tests).
    type: str
    default: ""
  recorded:
    description: File name to C({sha256}) recorded by an earlier verified download (the local fact).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: List the files of the current release for GRCh38
  ansible.builtin.debug:
    msg: >-
      {{ lookup('capillary.pcgr.pcgr_release', 'current')
         | capillary.pcgr.refdata_artifacts(assemblies=['grch38']) }}
"""

RETURN = r"""
_value:
  description:
    - One dict per artifact (kind, assembly, version, filename, url, size, sha256, dest, part,
      stamp...).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.capillary.pcgr.plugins.module_utils.capillary_package import import_capillary


def refdata_artifacts(release, root="", assemblies=None, source="upstream", base_url="", recorded=None):
    plugin = "capillary.pcgr.refdata_artifacts"
    layout = import_capillary("contract.layout", plugin, AnsibleFilterError)
    catalogue = import_capillary("release.catalogue", plugin, AnsibleFilterError)
    refdata = import_capillary("release.refdata", plugin, AnsibleFilterError)
    try:
        return refdata.artifacts_for(
            release,
            root=root or layout.DATA_ROOT,
            assemblies=list(assemblies or ["grch38"]),
            source=source,
            base_url=base_url or "",
            recorded=recorded or {},
        )
    except (catalogue.CatalogueError, ValueError) as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self):
        return {"refdata_artifacts": refdata_artifacts}
