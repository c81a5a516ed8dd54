"""The worker's filesystem and process contract: where things live on a worker, and what its
exit codes mean. Roles (through the `capillary.pcgr.worker_layout` filter), the daemon, the
engines, the image gate and the local run read these; nothing restates them.
"""

from __future__ import annotations

# --- exit codes of `capillary consume` (the unit's SuccessExitStatus / ExecStopPost read them) ---
EXIT_OK = 0
# Idle for idle_minutes with nothing in flight: the unit powers the worker off.
EXIT_IDLE = 75
# The configuration cannot be used (EX_CONFIG): systemd must not restart it in a loop.
EXIT_CONFIG = 78
