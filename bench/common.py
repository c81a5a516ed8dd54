"""What every benchmark shares: the figure type, a few statistics, the load, a local endpoint."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Figure:
    """One measured number: `value` in `unit`, with the target it is read against, if any."""

    name: str
    value: float
    unit: str
    target: str = ""
    note: str = ""
    samples: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


def timed(fn: Callable[[], object], repeat: int = 5) -> list[float]:
    """Wall time of `fn` in seconds, `repeat` times."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def load() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages, which every timing is read with."""
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


class Endpoint:
    """A local AWS endpoint in a process of its own (`python -m capillary.local.endpoint`).

    Its state dies with it, so one suite's buckets never meet the next suite's; and a benchmark
    timing in-process code does not share its interpreter (and GIL) with the server. The client
    environment is set in `os.environ` while it runs and the previous one restored after.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.env: dict[str, str] = {}
        self._saved: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Endpoint:
        env_file = self.directory / "endpoint.env"
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "capillary.local.endpoint", "--port", "0", "--env-file", str(env_file)],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not env_file.exists() or not env_file.read_text().endswith("\n"):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the local AWS endpoint did not start")
            time.sleep(0.1)
        for line in env_file.read_text().splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            self.env[name] = value
        self._saved = dict(os.environ)
        os.environ.update(self.env)
        return self

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def __exit__(self, *exc: object) -> None:
        os.environ.clear()
        os.environ.update(self._saved)
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
