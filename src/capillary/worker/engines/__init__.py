"""Engines turn one unpacked sample into reports; the consumer only runs the command they build.

An engine is a module `capillary.worker.engines.<name>` exposing `ENGINE`, a class taking its own
section of the consumer's configuration (the `[<name>]` table, a dataclass the module defines:
`PcgrConfig`, `SummaryConfig`; or the section it names in `SECTION`). Configuration names the
engine for each kind of sample (`engine`, `engine_normal`, `engine_somatic`); nothing guesses.
Adding an engine means adding one module (and its section to `worker.config`). The engines never
import the configuration module: it imports them.

Every engine runs as a subprocess in its own process group, so a timeout, a spot notice or a
SIGTERM kills the whole tree (PCGR starts VEP, R and friends) and never leaves half a run behind.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from capillary.contract.tarball import ExtractedSample

KILL_GRACE_S = 3.0


class EngineInputError(ValueError):
    """The sample cannot be run by this engine (unknown option, wrong VCF count…); not retryable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class EngineSetupError(RuntimeError):
    """This worker cannot run the engine (missing software or reference data)."""


@dataclass(frozen=True)
class EngineCommand:
    argv: list[str]
    cwd: Path
    env: Mapping[str, str] = field(default_factory=dict)


class Engine(Protocol):
    name: str

    def versions(self) -> dict[str, str]:
        """Versions recorded in run.json (engine, PCGR release, bundle…)."""
        ...

    def command(self, sample: ExtractedSample, sample_id: str, outdir: Path) -> EngineCommand:
        """The command producing this sample's reports in `outdir`; EngineInputError if it cannot."""
        ...


def available() -> list[str]:
    """Engine names: every module of this package that defines ENGINE."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def section_of(name: str) -> str:
    """The configuration section engine `name` reads: its own, or the one its module names in
    `SECTION` (`cpsr` reads `[pcgr]`: whatever reads `[pcgr]` runs the PCGR install)."""
    module = importlib.import_module(f"capillary.worker.engines.{name}")
    return str(getattr(module, "SECTION", name))


def get_engine(name: str, cfg: object) -> Engine:
    """The engine `name`, given its section of `cfg` (the consumer's configuration: the section is
    its attribute of the same name, e.g. `cfg.pcgr`, or the one its module names in `SECTION`:
    `cpsr` reads `[pcgr]`, the install it shares)."""
    if name not in available():
        raise EngineSetupError(f"engine {name!r} is not one of {', '.join(available())}")
    module = importlib.import_module(f"capillary.worker.engines.{name}")
    section_name = section_of(name)
    section = getattr(cfg, section_name, None)
    if section is None:
        raise EngineSetupError(f"engine {name!r}: the configuration has no [{section_name}] section")
    engine: Engine = module.ENGINE(section)
    return engine


@dataclass(frozen=True)
class ProcessOutcome:
    returncode: int | None
    duration_s: float
    timed_out: bool = False
    stopped: bool = False


def kill_group(proc: subprocess.Popen[bytes], grace_s: float = KILL_GRACE_S) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left of it after `grace_s`."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; make sure nothing it started lives on in the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return


def run_process(
    cmd: EngineCommand,
    log_path: Path,
    timeout_s: float,
    stops: Sequence[threading.Event],
    poll_s: float = 0.2,
) -> ProcessOutcome:
    """Run `cmd` in a new session (its own process group), output to `log_path`.

    Returns when it exits, when `timeout_s` passes or when any of `stops` is set; in the last two cases the
    whole group has been killed before this returns.
    """
    env = dict(cmd.env) if cmd.env else dict(os.environ)
    started = time.monotonic()
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd.argv,
            cwd=cmd.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            while True:
                try:
                    rc = proc.wait(timeout=poll_s)
                    return ProcessOutcome(returncode=rc, duration_s=time.monotonic() - started)
                except subprocess.TimeoutExpired:
                    pass
                if any(event.is_set() for event in stops):
                    kill_group(proc)
                    return ProcessOutcome(proc.returncode, time.monotonic() - started, stopped=True)
                if time.monotonic() - started > timeout_s:
                    kill_group(proc)
                    return ProcessOutcome(proc.returncode, time.monotonic() - started, timed_out=True)
        except BaseException:
            kill_group(proc)
            raise
