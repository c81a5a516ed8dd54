# -*- coding: utf-8 -*-

# Copyright: Contributors to the Capillary project
# SPDX-License-Identifier: Apache-2.0

"""The one import guard of the controller plugins that call the capillary Python package.

The filters and the lookup are thin: the logic they expose has its one home in the package
(`capillary-pcgr` on PyPI, imported as `capillary`). The package is imported when a plugin is
called, not when it is loaded, so `ansible-doc` and `ansible-test sanity` work without it, and a
controller that lacks it gets an error naming the plugin and what to install.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib

DISTRIBUTION = "capillary-pcgr"


def import_capillary(module, plugin, error):
    """Import `capillary.<module>` for `plugin`, or raise `error` saying what to install."""
    try:
        return importlib.import_module("capillary." + module)
    except ImportError as exc:
        raise error(
            "%s needs the capillary Python package on the controller "
            "(pip install %s, into the Python that runs ansible): %s" % (plugin, DISTRIBUTION, exc)
        ) from exc
