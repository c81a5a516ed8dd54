"""`up.yml` that finds nothing to do (issue 16): what every sample's webhook costs once the fleet is sized.

AWX, StackStorm and EDA start `up.yml` once per sample, so most runs find the fleet already at its
count. On the local AWS endpoint (in this process), the deployment the up/down tests use
(tests/integration/test_up_down.py: image, instance profile, queue, a day of spot prices), platform
`aws`: one `up.yml` with `capillary_workers=2` sizes the group, then REPEAT more runs find it sized
and must report changed=0. Figures: their median wall time (target <= 3 s) against its peer, the
same `ansible-playbook` command running a one-task play on localhost (what any playbook costs to
start here), and the ratio; the note names the three slowest tasks of one run
(ansible.posix.profile_tasks) and the load.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import time
from pathlib import Path

from bench.common import Figure, load, median
from capillary.local.endpoint import LocalAWS
from capillary.local.playbook import run_playbook

REPEAT = 5
NOOP_PLAY = """- name: One task, nothing else
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Say so
      ansible.builtin.debug:
        msg: nothing to do
"""
# ansible.posix.profile_tasks prints `<task name> ---- 1.23s` per task at the end of a run.
_PROFILE_LINE = re.compile(r"^(?P<task>.+?) -{2,} (?P<s>\d+\.\d+)s$")


def _timed(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t0


def run() -> list[Figure]:
    from tests.integration.test_up_down import seeded_deployment, up_vars

    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="capillary-bench-up-") as tmp:
        aws = LocalAWS().start()
        stack.callback(aws.stop)
        seeded_deployment(aws)
        extra = up_vars(capillary_workers=2, capillary_event="bench-up")
        run_playbook("playbooks/up.yml", env=aws.env, extra_vars=extra).assert_ok()

        def noop_up() -> None:
            run_playbook("playbooks/up.yml", env=aws.env, extra_vars=extra).assert_idempotent()

        play = Path(tmp) / "noop.yml"
        play.write_text(NOOP_PLAY)

        def peer() -> None:
            run_playbook(play, env=aws.env).assert_ok()

        before = load()
        up_s = [_timed(noop_up) for _ in range(REPEAT)]
        peer_s = [_timed(peer) for _ in range(REPEAT)]
        after = load()
        profiled = run_playbook(
            "playbooks/up.yml",
            env={**aws.env, "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"},
            extra_vars=extra,
        ).assert_idempotent()
    tasks = sorted(
        (
            (m["task"].strip(), float(m["s"]))
            for line in profiled.stdout.splitlines()
            if (m := _PROFILE_LINE.match(line))
        ),
        key=lambda t: -t[1],
    )
    slowest = "; ".join(f"{name} {s:.2f} s" for name, s in tasks[:3])
    note = f"median of {REPEAT}, platform aws on the local endpoint, load {before} -> {after}"
    return [
        Figure("no-op up.yml", median(up_s), "s", "<= 3", note, samples=REPEAT, extra={"runs_s": up_s}),
        Figure(
            "one-task playbook (peer: ansible-playbook's own start)",
            median(peer_s),
            "s",
            note=note,
            samples=REPEAT,
            extra={"runs_s": peer_s},
        ),
        Figure(
            "no-op up.yml / one-task playbook",
            median(up_s) / median(peer_s),
            "ratio",
            note=f"slowest tasks: {slowest}",
        ),
    ]
