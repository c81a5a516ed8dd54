"""Slow stand-ins for the tools an engine runs, so a fault can land while the engine is busy.

    bcftools = slow_bcftools(tmp_path, seconds=6)
    world.start(summary__bcftools=str(bcftools))   # or CAPILLARY_SUMMARY_BCFTOOLS=...

The stand-in is a shell script that sleeps before each `bcftools stats` (the `summary` engine
runs one per VCF; the test samples hold one) and then execs the real bcftools, so the run's
outputs are the real ones. `bcftools --version` (recorded in run.json) answers at once. The
sleep is a child in the engine's process group, so a drain or a timeout kills it with the rest.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path


def slow_bcftools(directory: Path, seconds: float, real: str | None = None) -> Path:
    """Write `directory/bcftools-slow`, which sleeps `seconds` before each `stats` run."""
    found = real or shutil.which("bcftools")
    if not found:
        raise FileNotFoundError("bcftools: not on PATH (the slow stand-in execs the real one)")
    if seconds < 0:
        raise ValueError(f"seconds: must be 0 or more, got {seconds}")
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "bcftools-slow"
    script.write_text(
        "#!/bin/sh\n"
        "# Written by tests/support/slow_tools.py: a slow bcftools for the consumer's fault tests.\n"
        f'if [ "$1" = stats ]; then sleep {seconds:g}; fi\n'
        f'exec {shlex.quote(str(Path(found).resolve()))} "$@"\n'
    )
    script.chmod(0o755)
    return script
