"""A stand-in for the external PCGR executable (which cannot run here), in the conda layout the
pcgr engine runs it from, and pcgr_refdata's reference data layout; the code under test is ours.

The stand-in writes `report.html` and `fake-pcgr-call.json` (its argv, environment, process
group) into the `--output_dir` it is given, appends its argv as one line to `$FAKE_PCGR_CALLS`
when that is set (a daemon test counts the runs across samples), and exits `$FAKE_PCGR_EXIT`.
"""

from __future__ import annotations

import stat
from pathlib import Path

FAKE_PCGR = """#!/bin/sh
# Stand-in for the PCGR executable: records how it was called, writes a report, honours exit code.
out=""
prev=""
for a in "$@"; do
  if [ "$prev" = "--output_dir" ]; then out="$a"; fi
  prev="$a"
done
{
  printf '{"argv": "%s", "conda_prefix": "%s", "xdg_cache_home": "%s", "pgid": "%s", "pid": "%s"}\\n' \\
    "$*" "$CONDA_PREFIX" "$XDG_CACHE_HOME" "$(ps -o pgid= -p $$ | tr -d ' ')" "$$"
} > "$out/fake-pcgr-call.json"
if [ -n "${FAKE_PCGR_CALLS:-}" ]; then printf '%s\\n' "$*" >> "$FAKE_PCGR_CALLS"; fi
echo "<html>fake report</html>" > "$out/report.html"
echo "pcgr: done"
exit "${FAKE_PCGR_EXIT:-0}"
"""


def conda_layout(base: Path) -> Path:
    """The release's `pcgr` env under `base` with the stand-in as its `bin/pcgr`, and the `pcgrr`
    env beside it; returns the env's prefix (pcgr.conda_prefix)."""
    prefix = base / "conda" / "envs" / "pcgr"
    (prefix / "bin").mkdir(parents=True)
    (prefix.parent / "pcgrr").mkdir()
    exe = prefix / "bin" / "pcgr"
    exe.write_text(FAKE_PCGR)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return prefix


def refdata_layout(base: Path, *assemblies: str) -> Path:
    """pcgr_refdata's layout for `assemblies`: `<root>/<assembly>/data/<assembly>/`; returns the root."""
    root = base / "refdata" / "current"
    for assembly in assemblies:
        (root / assembly / "data" / assembly).mkdir(parents=True)
    return root
