"""Many `up.yml` runs at once, and `down.yml` beside them, against the local endpoint (issue 16).

Real `ansible-playbook` subprocesses race on one deployment while a thread samples the API
(DescribeInstances, pending + running); the local endpoint's Auto Scaling group launches its
instances synchronously on SetDesiredCapacity, so every instance the runs cause is visible to the
sampler at once.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from capillary.local.endpoint import LocalAWS
from capillary.local.playbook import REPO, Recap, parse_recap, playbook_command, run_playbook
from tests.integration.test_up_down import (  # the same seeded deployment and helpers
    DEPLOYMENT,
    GROUP,
    group,
    seeded_deployment,
    send,
    up_vars,
    workers,
)

pytestmark = pytest.mark.integration

# Printed when the task after the take-down token's read starts: the run has read its token.
TOKEN_READ = "TASK [workers : Read how many workers the work queue needs]"
# Printed when the task after the queue's read starts: the run has read the queue.
QUEUE_READ = "TASK [workers : Fix the count, the event id and a take-down's token]"
DOWN = {"capillary_deployment": DEPLOYMENT}


class Run:
    """One `ansible-playbook` started in the background, its output in a file."""

    def __init__(self, aws: LocalAWS, playbook: str, extra_vars: dict[str, Any], out: Path) -> None:
        cmd, env = playbook_command(playbook, env=aws.env, extra_vars=extra_vars)
        self.out = out
        self._fh: IO[str] = out.open("w")
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=self._fh, stderr=subprocess.STDOUT, text=True
        )

    def has_printed(self, text: str) -> bool:
        return text in self.out.read_text()

    def wait(self, timeout: float = 900) -> Recap:
        rc = self.proc.wait(timeout=timeout)
        self._fh.close()
        stdout = self.out.read_text()
        return Recap(rc=rc, hosts=parse_recap(stdout), stdout=stdout)


class Sampler(threading.Thread):
    """Counts the deployment's pending and running workers, as fast as the endpoint answers."""

    def __init__(self, aws: LocalAWS) -> None:
        super().__init__(daemon=True)
        self.aws = aws
        self.counts: list[tuple[float, int]] = []
        self.errors: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        ec2 = self.aws.client("ec2")
        while not self.halt.is_set():
            try:
                self.counts.append((time.monotonic(), len(workers(self.aws, client=ec2))))
            except Exception as exc:  # a slow answer under load must not end the sampling
                self.errors.append(repr(exc))
            self.halt.wait(0.05)

    @property
    def peak(self) -> int:
        return max((n for _, n in self.counts), default=0)

    def since(self, t0: float) -> list[int]:
        return [n for t, n in self.counts if t >= t0]


@pytest.fixture
def deployment(aws: LocalAWS) -> dict[str, Any]:
    return seeded_deployment(aws)


@pytest.fixture
def sampler(aws: LocalAWS) -> Iterator[Sampler]:
    s = Sampler(aws)
    s.start()
    yield s
    s.halt.set()
    s.join(timeout=10)


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_twenty_concurrent_ups_never_exceed_the_cap_and_end_on_it(
    aws: LocalAWS, deployment: Any, sampler: Sampler, tmp_path: Path
) -> None:
    # GIVEN 100 samples queued, no worker, a cap of 4
    send(aws, deployment["queue_url"], 100)

    # WHEN 20 up.yml runs start at once, one per sample event
    runs = [
        Run(
            aws,
            "playbooks/up.yml",
            up_vars(capillary_max_workers=4, capillary_event=f"evt-{i}"),
            tmp_path / f"up-{i}.log",
        )
        for i in range(20)
    ]
    recaps = [r.wait() for r in runs]
    time.sleep(0.5)
    sampler.halt.set()
    sampler.join(timeout=10)

    # THEN every run succeeded, pending + running never went above 4, and exactly 4 run
    for recap in recaps:
        recap.assert_ok()
    assert sampler.counts, "the sampler saw nothing"
    assert sampler.peak == 4, f"peak {sampler.peak}"
    assert len(workers(aws)) == 4
    assert (group(aws)["DesiredCapacity"], group(aws)["MaxSize"]) == (4, 4)
    # AND a run that comes after them changes nothing
    run_playbook(
        "playbooks/up.yml", env=aws.env, extra_vars=up_vars(capillary_max_workers=4)
    ).assert_idempotent()


def test_down_all_beside_an_up_wins_and_a_later_up_brings_the_cap_back(
    aws: LocalAWS, deployment: Any, sampler: Sampler, playbook: Any, tmp_path: Path
) -> None:
    # GIVEN 60 workers and 100 samples queued
    send(aws, deployment["queue_url"], 100)
    playbook("playbooks/up.yml", extra_vars=up_vars(capillary_max_workers=60)).assert_ok()
    assert len(workers(aws)) == 60

    # WHEN an up runs, and a down starts once the up has read its token
    up = Run(
        aws,
        "playbooks/up.yml",
        up_vars(capillary_max_workers=60, capillary_event="evt-race"),
        tmp_path / "up.log",
    )
    wait_until(lambda: up.has_printed(TOKEN_READ), 300, "the up run to read its token")
    down = Run(aws, "playbooks/down.yml", DOWN, tmp_path / "down.log").wait()
    after_down = time.monotonic()
    up_recap = up.wait()

    # THEN both succeeded, nothing ran once down reported success, and the group is closed
    down.assert_ok()
    up_recap.assert_ok()
    time.sleep(0.5)
    assert set(sampler.since(after_down)) == {0}, sampler.since(after_down)
    assert workers(aws) == []
    assert (group(aws)["MaxSize"], group(aws)["DesiredCapacity"]) == (0, 0)

    # WHEN the next sample's up runs (the 60 terminated instances are still listed)
    later = playbook(
        "playbooks/up.yml", extra_vars=up_vars(capillary_max_workers=4, capillary_event="evt-next")
    )

    # THEN it opens the group again and brings the cap: terminated workers are not capacity
    later.assert_ok()
    assert len(workers(aws, ("terminated",))) == 60
    assert len(workers(aws)) == 4


def test_three_ups_and_a_down_four_seconds_later_leave_nothing_running(
    aws: LocalAWS, deployment: Any, sampler: Sampler, tmp_path: Path
) -> None:
    # GIVEN no worker and 100 samples queued
    send(aws, deployment["queue_url"], 100)

    # WHEN three up runs start, and a down 4 s later (once all three have read their token)
    t0 = time.monotonic()
    ups = [
        Run(
            aws,
            "playbooks/up.yml",
            up_vars(capillary_max_workers=4, capillary_event=f"evt-{i}"),
            tmp_path / f"up-{i}.log",
        )
        for i in range(3)
    ]
    wait_until(lambda: all(u.has_printed(TOKEN_READ) for u in ups), 300, "the up runs to read their token")
    time.sleep(max(0.0, 4 - (time.monotonic() - t0)))
    down = Run(aws, "playbooks/down.yml", DOWN, tmp_path / "down.log").wait()
    after_down = time.monotonic()
    recaps = [u.wait() for u in ups]

    # THEN once down reported success nothing ran, whatever the ups did after it
    down.assert_ok()
    for recap in recaps:
        recap.assert_ok()
    time.sleep(0.5)
    assert set(sampler.since(after_down)) == {0}, sampler.since(after_down)
    assert workers(aws) == []
    # AND every group of the deployment is closed (an up that created one after the down closed it)
    groups = aws.client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
    assert [(g["AutoScalingGroupName"], g["MaxSize"], g["DesiredCapacity"]) for g in groups] in (
        [],
        [(GROUP, 0, 0)],
    )


def test_down_idle_beside_ups_never_leaves_queued_samples_without_a_worker(
    aws: LocalAWS, deployment: Any, sampler: Sampler, playbook: Any, tmp_path: Path
) -> None:
    # GIVEN 4 workers and one sample left
    playbook("playbooks/up.yml", extra_vars=up_vars(capillary_max_workers=4, capillary_workers=4)).assert_ok()
    send(aws, deployment["queue_url"], 1)
    assert len(workers(aws)) == 4

    # WHEN a down of the idle surplus runs, ten more samples arrive once it has read the queue
    # (it would keep one worker), and their three up runs start beside it
    t0 = time.monotonic()
    down = Run(aws, "playbooks/down.yml", {**DOWN, "capillary_down_only_idle": True}, tmp_path / "down.log")
    wait_until(lambda: down.has_printed(QUEUE_READ), 300, "the down run to read the queue")
    send(aws, deployment["queue_url"], 10)
    ups = [
        Run(
            aws,
            "playbooks/up.yml",
            up_vars(capillary_max_workers=4, capillary_event=f"evt-{i}"),
            tmp_path / f"up-{i}.log",
        )
        for i in range(3)
    ]
    recaps = [down.wait()] + [u.wait() for u in ups]
    time.sleep(0.5)

    # THEN all succeeded, a worker ran all along, and the cap runs for the 11 samples
    for recap in recaps:
        recap.assert_ok()
    assert min(sampler.since(t0)) >= 1, sampler.since(t0)
    assert len(workers(aws)) == 4
    assert group(aws)["DesiredCapacity"] == 4
