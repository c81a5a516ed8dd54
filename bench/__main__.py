"""Run the benchmarks and write bench/results/results.json and results.md.

python -m bench              # every bench/bench_*.py
python -m bench spot intake  # only bench_spot.py and bench_intake.py
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from bench.common import Figure

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


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
