"""The production unit under `systemctl stop` and `restart`, on a worker booted as production boots one.

A worker container from the baked image (`localhost/capillary-worker:<release>`, from `make demo`;
`CAPILLARY_WORKER_IMAGE` names another) is booted by `boot_worker` exactly as the local platform
boots one (host network, systemd as PID 1, CAP_SYS_ADMIN). The image may predate this checkout,
so the test first puts this checkout into it the way the pcgr_consumer role would: the package as
a wheel into the role's virtualenv, and the role's own templates (unit and consumer.toml)
rendered by Ansible with the role's defaults. The image itself is never modified. The local AWS
endpoint serves S3 and SQS; a slow bcftools stretches the `summary` engine so the stop lands
mid-run.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from capillary.contract.layout import STATE_FILE
from capillary.contract.message import META_SHA256, WorkMessage
from capillary.contract.samples import SampleKey
from capillary.local.endpoint import LocalAWS
from capillary.local.playbook import REPO, run_playbook
from capillary.local.podman import PODMAN_ENV, podman
from tests.support.podman_targets import (
    CONSUMER_UNIT,
    WORKER_PODMAN_OPTIONS,
    boot_worker,
    wait_system_running,
    write_launch_env,
)
from tests.support.samples import make_sample_tarball

pytestmark = pytest.mark.integration

IMAGE = os.environ.get("CAPILLARY_WORKER_IMAGE", "localhost/capillary-worker:2.3.2")
ROLE = REPO / "roles" / "pcgr_consumer"
VENV = "/opt/capillary/venv"
SLOW_BCFTOOLS = "/usr/local/bin/bcftools-slow"
ENGINE_S = 8


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def this_checkout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """This checkout as the role would install it: a wheel, and the role's rendered templates."""
    out = tmp_path_factory.mktemp("unit-under-test")
    source = out / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(source)],
        check=True,
        timeout=300,
    )
    [wheel] = out.glob("capillary_pcgr-*.whl")
    templates = ROLE / "templates" / "etc"
    rendered = {
        "unit": (templates / "systemd" / "system" / "capillary-consumer.service.j2", out / "unit.service"),
        "config": (templates / "capillary" / "consumer.toml.j2", out / "consumer.toml"),
    }
    play = [
        {
            "name": "Render the consumer's unit and configuration as the role does",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
            "tasks": [
                {
                    "name": f"Render {name}",
                    "ansible.builtin.template": {"src": str(src), "dest": str(dest), "mode": "0644"},
                }
                for name, (src, dest) in rendered.items()
            ],
        }
    ]
    book = out / "render.yml"
    book.write_text(json.dumps(play))
    run_playbook(book, timeout=300).assert_ok()
    return {"wheel": wheel, **{name: dest for name, (_, dest) in rendered.items()}}


@dataclass
class Worker:
    name: str

    def sh(self, script: str, check: bool = True, timeout: float = 120) -> str:
        return podman("exec", self.name, "/bin/sh", "-c", script, check=check, timeout=timeout)

    def state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.sh(f"cat {STATE_FILE}", check=False) or "{}")
        except ValueError:
            return {}
        return data

    def main_pid(self) -> int:
        return int(self.sh(f"systemctl show -p MainPID --value {CONSUMER_UNIT}").strip() or 0)

    def unit(self, *props: str) -> dict[str, str]:
        out = self.sh(f"systemctl show {CONSUMER_UNIT} " + " ".join(f"-p {p}" for p in props))
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self) -> str:
        return self.sh(f"journalctl -u {CONSUMER_UNIT} --no-pager -o cat", check=False)

    def wait_phase(self, phase: str, timeout: float = 60) -> None:
        """This run of the daemon (the unit's main process) in `phase`."""
        wait_for(
            lambda: self.state().get("phase") == phase and self.state().get("pid") == self.main_pid(),
            timeout,
            f"phase {phase}:\n{self.journal()[-3000:]}",
        )

    def install(self, checkout: dict[str, Path]) -> None:
        """Put this checkout's package, unit and configuration in place, as the role would."""
        podman("cp", str(checkout["wheel"]), f"{self.name}:/tmp/{checkout['wheel'].name}")
        podman("cp", str(checkout["unit"]), f"{self.name}:/etc/systemd/system/{CONSUMER_UNIT}.service")
        podman("cp", str(checkout["config"]), f"{self.name}:/etc/capillary/consumer.toml")
        self.sh(
            f"systemctl stop {CONSUMER_UNIT} && "
            f"{VENV}/bin/pip install --quiet --no-index --no-deps --force-reinstall "
            f"/tmp/{checkout['wheel'].name} && "
            "chmod 0644 /etc/systemd/system/capillary-consumer.service && "
            "chown root:capillary /etc/capillary/consumer.toml && chmod 0640 /etc/capillary/consumer.toml && "
            f'printf \'#!/bin/sh\\nif [ "$1" = stats ]; then sleep {ENGINE_S}; fi\\n'
            f'exec /usr/bin/bcftools "$@"\\n\' > {SLOW_BCFTOOLS} && chmod 0755 {SLOW_BCFTOOLS} && '
            "systemctl daemon-reload",
            timeout=300,
        )


@dataclass
class Deployment:
    aws: LocalAWS
    s3: Any
    sqs: Any
    bucket: str
    queue_url: str
    dlq_url: str
    tmp: Path

    def launch_env(self, **extra: str) -> Path:
        settings = {
            **self.aws.env,
            "CAPILLARY_BUCKET": self.bucket,
            "CAPILLARY_IDLE_MINUTES": "30",
            "CAPILLARY_POLL_WAIT_S": "2",
            "CAPILLARY_SUMMARY_BCFTOOLS": SLOW_BCFTOOLS,
            **extra,
        }
        path = self.tmp / f"launch-{uuid.uuid4().hex[:6]}.env"
        return write_launch_env(path, self.queue_url, settings)

    def submit(self) -> str:
        tarball = make_sample_tarball(self.tmp / "samples", batch="unit")
        data = tarball.read_bytes()
        key = f"inputs/{tarball.name}"
        self.s3.put_object(
            Bucket=self.bucket, Key=key, Body=data, Metadata={META_SHA256: hashlib.sha256(data).hexdigest()}
        )
        head = self.s3.head_object(Bucket=self.bucket, Key=key)
        message = WorkMessage.for_sample(
            SampleKey.parse(key), bucket=self.bucket, size=head["ContentLength"], etag=head["ETag"].strip('"')
        )
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=message.to_body())
        return key

    def counts(self, url: str) -> tuple[int, int]:
        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def peek(self) -> list[WorkMessage]:
        resp = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        return [WorkMessage.from_body(m["Body"]) for m in resp.get("Messages", [])]

    def outputs(self) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix="outputs/").get("Contents", [])
        return [o["Key"] for o in listed]

    def run_json(self, key: str) -> dict[str, Any]:
        out_key = key.replace("inputs/", "outputs/").replace(".tar.gz", "-output.tar.gz")
        body = self.s3.get_object(Bucket=self.bucket, Key=out_key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("/run.json"))
            data: dict[str, Any] = json.loads(tar.extractfile(member).read())  # type: ignore[union-attr]
        return data


@pytest.fixture
def deployment(aws: LocalAWS, tmp_path: Path) -> Deployment:
    if subprocess.run(["podman", "image", "exists", IMAGE], env=PODMAN_ENV, check=False).returncode != 0:
        pytest.skip(f"{IMAGE} is not built here (make demo bakes it)")
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    bucket = "capillary-unit-samples"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": aws.region})
    dlq_url = sqs.create_queue(QueueName="capillary-unit-work-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName="capillary-unit-work",
        Attributes={
            # The intake's: engine timeout + margin. Only the net.
            "VisibilityTimeout": "3600",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}),
        },
    )["QueueUrl"]
    return Deployment(aws, s3, sqs, bucket, queue_url, dlq_url, tmp_path)


@pytest.fixture
def worker_name() -> Iterator[str]:
    name = f"capillary-unit-{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        podman("rm", "-f", "-t", "2", name, check=False)


def test_stop_and_restart_of_the_production_unit_mid_run_hand_the_sample_back(
    deployment: Deployment, this_checkout: dict[str, Path], worker_name: str
) -> None:
    # GIVEN a worker booted as production boots one, running this checkout's consumer
    boot_worker(IMAGE, worker_name, deployment.launch_env(), timeout=120)
    worker = Worker(worker_name)
    worker.install(this_checkout)
    assert worker.unit("KillMode")["KillMode"] == "mixed"
    worker.sh(f"systemctl start {CONSUMER_UNIT}")
    key = deployment.submit()
    worker.wait_phase("engine")

    # WHEN the unit is stopped mid-run
    worker.sh(f"systemctl stop {CONSUMER_UNIT}", timeout=120)
    # THEN the sample is back at once as a fresh message recording the interruption, with no
    # error report (so no notification) and no attempt spent
    [back] = deployment.peek()
    assert [(a.outcome, a.phase) for a in back.history] == [("interrupted", "engine")]
    assert deployment.outputs() == []
    assert worker.unit("Result")["Result"] == "success"
    assert "attempt 1 failed" not in worker.journal()

    # WHEN it is started again, and restarted mid-run
    worker.sh(f"systemctl start {CONSUMER_UNIT}")
    worker.wait_phase("engine")
    worker.sh(f"systemctl restart {CONSUMER_UNIT}", timeout=120)
    # THEN the restarted consumer takes the sample again and finishes it: one output, no error
    # report, nothing dead-lettered, two interruptions in its history
    wait_for(lambda: deployment.counts(deployment.queue_url) == (0, 0), 90, "the sample to finish")
    assert [k for k in deployment.outputs() if k.endswith("-error.json")] == []
    assert deployment.counts(deployment.dlq_url) == (0, 0)
    run = deployment.run_json(key)
    assert [a["outcome"] for a in run["history"]] == ["interrupted", "interrupted"]
    assert "attempt 1 failed" not in worker.journal()
    assert "the engine exited with status" not in worker.journal()
    # AND the daemon says when it first polled the queue
    assert worker.state()["first_receive_epoch"] >= worker.state()["started_epoch"]


def test_kill_9_of_the_production_unit_mid_run_reruns_the_sample_on_the_same_worker_within_30_s(
    deployment: Deployment, this_checkout: dict[str, Path], worker_name: str
) -> None:
    # GIVEN the production unit (Restart=on-failure, RestartSec=10, the role's 5-minute window)
    # in the middle of a run, the message it holds recorded under /run/capillary
    boot_worker(IMAGE, worker_name, deployment.launch_env(), timeout=120)
    worker = Worker(worker_name)
    worker.install(this_checkout)
    assert worker.unit("RuntimeDirectoryPreserve")["RuntimeDirectoryPreserve"] == "restart"
    worker.sh(f"systemctl start {CONSUMER_UNIT}")
    key = deployment.submit()
    worker.wait_phase("engine")
    doomed = worker.main_pid()
    assert [held["key"] for held in worker.state()["held"]] == [key]
    # WHEN the daemon is killed outright (an OOM kill, a crash: no drain, no hand-back)
    worker.sh(f"kill -9 {doomed}")
    killed = time.monotonic()
    # THEN systemd starts it again, the new daemon finds what its predecessor held (the directory
    # survived the restart), hands it back and runs the sample again within 30 s
    wait_for(
        lambda: worker.main_pid() not in (0, doomed) and worker.state().get("phase") == "engine",
        30,
        f"the sample running again after the restart:\n{worker.journal()[-3000:]}",
    )
    rerun_s = time.monotonic() - killed
    print(f"kill -9 -> the same worker runs the sample again: {rerun_s:.1f} s")
    assert rerun_s <= 30
    assert worker.unit("NRestarts")["NRestarts"] == "1"
    # (journald may take a moment to read a new process's first lines)
    wait_for(
        lambda: "released the message a previous run of this consumer held" in worker.journal(),
        15,
        f"the restarted daemon saying it released its predecessor's message:\n{worker.journal()[-3000:]}",
    )
    wait_for(lambda: deployment.counts(deployment.queue_url) == (0, 0), 90, "the sample to finish")
    run = deployment.run_json(key)
    assert [a["outcome"] for a in run["history"]] == ["interrupted"]
    # AND the crash wrote no error report and dead-lettered nothing
    assert [k for k in deployment.outputs() if k.endswith("-error.json")] == []
    assert deployment.counts(deployment.dlq_url) == (0, 0)


# Five minutes of waiting: `make test` runs the scaled sibling (test_consumer_faults.py,
# test_kill_9_with_the_worker_gone_another_worker_gets_it_within_the_rolling_window); this one
# proves the role's defaults in the production unit, before a release (make test-long).
@pytest.mark.long
def test_a_worker_gone_mid_run_gives_its_sample_back_within_the_default_window(
    deployment: Deployment, this_checkout: dict[str, Path], worker_name: str
) -> None:
    # GIVEN the production unit with the role's defaults (held 300 s at a time, extended every
    # 60 s) on a queue whose own visibility is an hour, in the middle of a long run
    boot_worker(
        IMAGE, worker_name, deployment.launch_env(CAPILLARY_SUMMARY_BCFTOOLS=SLOW_BCFTOOLS), timeout=120
    )
    worker = Worker(worker_name)
    worker.install(this_checkout)
    worker.sh(f"sed -i 's/sleep {ENGINE_S}/sleep 900/' {SLOW_BCFTOOLS}")
    worker.sh(f"systemctl start {CONSUMER_UNIT}")
    deployment.submit()
    worker.wait_phase("engine")
    # WHEN the whole worker disappears (a kernel panic, a spot reclaim without notice)
    podman("kill", "--signal", "KILL", worker_name)
    gone = time.monotonic()
    assert deployment.counts(deployment.queue_url) == (0, 1)
    # THEN its sample is back on the queue within the rolling window, not the queue's hour
    wait_for(lambda: deployment.counts(deployment.queue_url) == (1, 0), 330, "the sample visible again")
    back_s = time.monotonic() - gone
    print(f"worker gone -> its sample visible on the queue again: {back_s:.1f} s")
    assert back_s <= 300 + 5


def test_without_cap_sys_admin_the_unit_refuses_to_run_unsandboxed(
    deployment: Deployment, this_checkout: dict[str, Path], worker_name: str
) -> None:
    # GIVEN a worker booted without CAP_SYS_ADMIN: systemd cannot build the unit's mount
    # namespace, and would run the consumer without its sandbox
    options = [o for o in WORKER_PODMAN_OPTIONS if o != "--cap-add=SYS_ADMIN"]
    env = deployment.launch_env()
    volume = f"--volume={env}:/etc/capillary/launch.env:ro"
    podman("run", "-d", "--name", worker_name, *options, volume, IMAGE)
    wait_system_running(worker_name)
    worker = Worker(worker_name)
    worker.install(this_checkout)
    key = deployment.submit()
    # WHEN the unit starts
    worker.sh(f"systemctl start {CONSUMER_UNIT}", check=False)
    # THEN the consumer refuses, saying why, with the status systemd does not restart, and the
    # sample stays queued for a worker that is sandboxed
    wait_for(lambda: worker.unit("ActiveState")["ActiveState"] == "failed", 30, "the unit to fail")
    assert worker.unit("ExecMainStatus")["ExecMainStatus"] == "78"
    assert "refusing to start outside the unit's sandbox" in worker.journal()
    time.sleep(12)  # past RestartSec: it is not restarted
    assert worker.unit("NRestarts")["NRestarts"] == "0"
    assert deployment.counts(deployment.queue_url) == (1, 0)
    assert key not in "".join(deployment.outputs())
