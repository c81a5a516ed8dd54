"""The state file is written once per change, not once per poll, and holds what a restart needs."""

from __future__ import annotations

import json
from pathlib import Path

from capillary.worker.state import StateFile


def test_a_write_that_changes_nothing_but_the_time_is_skipped(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "state.json")
    for second in range(5):  # five polls of an idle daemon
        state.write({"state": "idle", "updated": f"2026-01-01T00:00:0{second}Z"})
    assert state.writes == 1
    state.write({"state": "working", "held": [{"receipt": "r"}], "updated": "2026-01-01T00:00:09Z"})
    assert state.writes == 2
    assert json.loads((tmp_path / "state.json").read_text())["held"] == [{"receipt": "r"}]
    assert (tmp_path / "state.json").stat().st_mode & 0o777 == 0o644


def test_a_state_file_that_cannot_be_written_is_not_fatal(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    state = StateFile(blocker / "state.json")
    state.write({"state": "idle"})
    assert state.writes == 0 and state.read() is None
