"""`cpsr`: the CPSR command for one `normal` (germline) sample, from its TOML and the release's table.

CPSR, PCGR's Cancer Predisposition Sequencing Reporter, is installed with PCGR at every release
of the catalogue (the `cpsr` command in the same conda env or container image; 1.4.1 included,
see `capillary.contract.pcgr_options.cpsr_1_4_1`) and reads the same reference bundle and VEP
cache. So this engine is the pcgr engine with CPSR's option table and executable, configured by
the same `[pcgr]` section (`SECTION`): one install, one place to say where it is. Everything the
pcgr engine's docstring says about checks, the safe vocabulary, assemblies and the two ways of
running holds here; CPSR takes no copy-number file, so a sample carrying one is refused.
"""

from __future__ import annotations

from capillary.worker.engines.pcgr import PcgrEngine

# The configuration section this engine reads: the install it shares with PCGR.
SECTION = "pcgr"


class CpsrEngine(PcgrEngine):
    name = "cpsr"
    program = "cpsr"


ENGINE = CpsrEngine
