"""Make `ansible_collections.capillary.pcgr` importable beside the collections in site-packages.

`ansible_collections` is a namespace package; putting the repository's `collections/` directory on
sys.path adds our collection to it, the way `collections_path` does for ansible itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

COLLECTIONS = Path(__file__).resolve().parents[6]
if str(COLLECTIONS) not in sys.path:
    sys.path.append(str(COLLECTIONS))
