"""Wall time of `make demo`'s flow: a first run (the image baked) and a cached run (reused).

Targets on 2 cores: <= 5 min first run, <= 90 s cached. The venv and the base image are
assumed present (they are `make setup`'s, shared with `make test`); "first" means the worker
image of this commit is baked during the run.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.common import Figure
from capillary.local.run import LocalRun, Options


def _run(deployment: str, reuse: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        release = os.environ.get("CAPILLARY_BENCH_RELEASE", "current")
        options = Options(deployment=deployment, release=release, reuse_image=reuse, out_dir=Path(out))
        options.progress = False
        run = LocalRun(options)
        result = run.run()
    settled = {s.name: s.state for s in result.samples}
    if any(state not in ("uploaded", "dead-lettered") for state in settled.values()):
        raise RuntimeError(f"the run did not settle: {settled}")
    return result.timings


def run() -> list[Figure]:
    first = _run("benchfirst", reuse=False)
    cached = _run("benchcached", reuse=True)
    figures = [
        Figure("whole flow, first run (image baked)", first["total"], "s", "<= 300 s"),
        Figure("whole flow, cached run (image reused)", cached["total"], "s", "<= 90 s"),
        Figure("cached / first", cached["total"] / first["total"], "ratio"),
    ]
    for label, timings in (("first", first), ("cached", cached)):
        for phase, seconds in timings.items():
            if phase != "total":
                figures.append(Figure(f"{label}: {phase}", seconds, "s"))
    return figures
