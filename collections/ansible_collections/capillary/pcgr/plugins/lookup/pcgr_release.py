# Copyright: Contributors to the Capillary project
# SPDX-License-Identifier: Apache-2.0
"""A PCGR release from the release catalogue, read by `capillary.release.catalogue` (its one parser)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: pcgr_release
short_description: One PCGR release from the Capillary release catalogue
version_added: 0.1.0
description:
  - Returns the catalogue entry of a PCGR release (install details, reference bundle and VEP
    cache per assembly, volume sizes) as a dict, parsed by C(capillary.release.catalogue).
  - Requires the C(capillary-pcgr) Python package on the controller (C(pip install capillary-pcgr)).
options:
  _terms:
    description: The release version, or C(current) for the release marked current.
    type: list
    elements: str
    required: true
  catalogue:
    description:
      - Path to a catalogue file on the controller. Empty means C($CAPILLARY_CATALOGUE), else the
        catalogue shipped inside the C(capillary-pcgr) package (the repository's
        C(catalogue/pcgr_releases.yml) of the package's release).
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Show the reference bundle of the current release
  ansible.builtin.debug:
    msg: "{{ lookup('capillary.pcgr.pcgr_release', 'current').bundle.version }}"
"""

RETURN = r"""
_raw:
  description: One dict per term, shaped like C(capillary.release.catalogue.Release.as_dict()).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible_collections.capillary.pcgr.plugins.module_utils.capillary_package import import_capillary


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        catalogues = import_capillary("release.catalogue", "capillary.pcgr.pcgr_release", AnsibleLookupError)
        self.set_options(var_options=variables, direct=kwargs)
        try:
            catalogue = catalogues.load_catalogue(self.get_option("catalogue") or None)
            return [catalogue.release(str(term)).as_dict() for term in terms]
        except catalogues.CatalogueError as exc:
            raise AnsibleLookupError(str(exc)) from exc
