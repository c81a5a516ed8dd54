"""This worker's state file: what the daemon is doing, for `capillary status` and the local run.

The daemon rewrites a small JSON file (default `/run/capillary/state.json`, the unit's
RuntimeDirectory) whenever its state changes; readers never see a half-written one.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("capillary.worker.state")


class StateFile:
    """Atomic writes of the daemon's state; a path we cannot write is logged once, never fatal."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._warned = False

    def write(self, state: dict[str, Any]) -> None:
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

    def read(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
            return data
        except (OSError, ValueError):
            return None
