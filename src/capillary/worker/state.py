"""This worker's state file: what the daemon is doing, for `capillary status` and the local run,
and the messages it holds, for the consumer that follows it.

The daemon rewrites a small JSON file (default `/run/capillary/state.json`, the unit's
RuntimeDirectory: it survives a restart of the daemon, not a reboot) whenever its state changes;
readers never see a half-written one. A write that would change nothing but the time stamp is
skipped, so the file is written once per phase, not once per poll. While a message is held its
receipt handle and body are in `held`: a consumer restarted after a crash hands it back at start.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("capillary.worker.state")

# Keys that change on every write and never make one worth doing on their own.
_VOLATILE = ("updated",)


class StateFile:
    """Atomic writes of the daemon's state; a path we cannot write is logged once, never fatal."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._warned = False
        self._last: dict[str, Any] | None = None
        self.writes = 0

    def write(self, state: dict[str, Any]) -> None:
        """Write `state` unless it says what the file already says (ignoring its time stamp)."""
        settled = {k: v for k, v in state.items() if k not in _VOLATILE}
        if settled == self._last:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-")
            with os.fdopen(fd, "w") as fh:
                json.dump(state, fh, sort_keys=True)
            Path(tmp).chmod(0o644)
            Path(tmp).replace(self.path)
        except OSError as exc:
            if not self._warned:
                log.warning(
                    "cannot write the state file %s: %s", self.path, exc.strerror, extra={"phase": "state"}
                )
                self._warned = True
            return
        self._last = settled
        self.writes += 1

    def read(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
            return data
        except (OSError, ValueError):
            return None
