"""Run the benchmarks and write bench/results/results.json and results.md.

python -m bench              # every bench/bench_*.py
python -m bench spot intake  # only bench_spot.py and bench_intake.py

Each suite runs as if alone: the environment and the local AWS state it found are restored after
it, whatever it changed.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

from bench.common import Figure

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


@contextlib.contextmanager
def _independent() -> Iterator[None]:
    """Run one suite as if it were alone: the environment it found, and no AWS resources left by
    the suites before it (a local endpoint started in this process keeps moto's state, which is
    per process, not per server: `python -m bench intake consumer` met the intake's bucket)."""
    saved = dict(os.environ)
    _reset_moto()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        _reset_moto()


def _reset_moto() -> None:
    if "moto" not in sys.modules:
        return
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    RESULTS.mkdir(exist_ok=True)
    # Running some suites keeps the others' last figures: results.json is merged, not replaced.
    results_json = RESULTS / "results.json"
    previous = json.loads(results_json.read_text()) if results_json.exists() else {}
    report: dict[str, object] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "suites": dict(previous.get("suites", {})),
    }
    failed = []
    lines = ["| suite | figure | value | unit | target | note |", "|---|---|---|---|---|---|"]
    for name in names:
        print(f"== bench {name}", flush=True)
        try:
            module = importlib.import_module(f"bench.bench_{name}")
            with _independent():
                figures: list[Figure] = module.run()
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        report["suites"][name] = [f.as_dict() for f in figures]  # type: ignore[index]
        for f in figures:
            print(f"  {f.name}: {f.value:.4g} {f.unit} {f.target}", flush=True)
    for name, figures in sorted(report["suites"].items()):  # type: ignore[attr-defined]
        for f in figures:
            lines.append(
                f"| {name} | {f['name']} | {f['value']:.4g} | {f['unit']} | {f['target']} | {f['note']} |"
            )
    results_json.write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if failed:
        print(f"benchmarks that did not run: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
