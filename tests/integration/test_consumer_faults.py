"""The consumer under faults: the daemon as a real subprocess against the local AWS endpoint.

Each test starts `capillary consume` (the venv's console script) with a TOML config, real S3 and
SQS on moto, real tarballs (tests.support.samples) and the real `summary` engine; a slow stand-in
for bcftools (tests.support.slow_tools) stretches a run where a fault must land during the engine.
Times are scaled down (a 6 s visibility timeout instead of 30 s) so the file runs in a couple of
minutes on two cores; CAPILLARY_FULL_FAULTS=1 runs the heartbeat test at the issue's full
90 s / 30 s. The `pcgr` engine tests run a stand-in for the PCGR executable alone (which cannot
run here) that records its argv.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from capillary.contract.message import META_INPUT_ETAG, META_SHA256, WorkMessage
from capillary.contract.samples import SampleKey
from capillary.local.endpoint import LocalAWS
from tests.support.imds import LocalIMDS
from tests.support.pcgr_standin import conda_layout, refdata_layout
from tests.support.samples import make_sample_tarball
from tests.support.slow_tools import slow_bcftools

pytestmark = pytest.mark.integration

CAPILLARY = Path(sys.executable).parent / "capillary"
EXIT_IDLE = 75


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    log_path: Path
    state_file: Path

    def log(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                records.append({"message": line})
        return records

    def messages(self) -> str:
        return "\n".join(r.get("message", "") for r in self.log())

    def state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.state_file.read_text())
            return data
        except (OSError, ValueError):
            return {}

    def wait_phase(self, phase: str, timeout: float = 30) -> None:
        # This daemon's state: a restarted one starts with its predecessor's file.
        wait_for(
            lambda: self.state().get("phase") == phase and self.state().get("pid") == self.proc.pid,
            timeout,
            f"phase {phase}: {self.messages()[-2000:]}",
        )

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@dataclass
class World:
    aws: LocalAWS
    tmp: Path
    bucket: str
    queue_url: str
    dlq_url: str
    s3: Any
    sqs: Any
    daemons: list[Daemon] = field(default_factory=list)

    def upload_sample(self, *, batch: str = "b1", sha256: bool = True, **kwargs: Any) -> str:
        tarball = make_sample_tarball(self.tmp / "samples", batch=batch, **kwargs)
        data = tarball.read_bytes()
        key = f"inputs/{tarball.name}"
        meta = {META_SHA256: hashlib.sha256(data).hexdigest()} if sha256 else {}
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, Metadata=meta)
        return key

    def send(self, key: str, *, version: bool = True) -> None:
        """Queue the message the intake would for `key` as it is now; `version=False` leaves out
        the etag and size, as a hand-written (or an older intake's) message does."""
        head = self.s3.head_object(Bucket=self.bucket, Key=key) if version and self.exists(key) else {}
        message = WorkMessage.for_sample(
            SampleKey.parse(key),
            bucket=self.bucket,
            size=head.get("ContentLength"),
            etag=head["ETag"].strip('"') if head else None,
            event_time="2026-11-21T00:00:00Z",
            sequencer="0055AED6DCD90281E5",
        )
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=message.to_body())

    def exists(self, key: str) -> bool:
        return bool(self.s3.list_objects_v2(Bucket=self.bucket, Prefix=key).get("KeyCount"))

    def output_keys(self) -> list[str]:
        """The outputs (not their run records, nor error reports)."""
        return [k for k in self.keys("outputs/") if k.endswith("-output.tar.gz")]

    def keys(self, prefix: str = "outputs/") -> list[str]:
        return [
            o["Key"] for o in self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix).get("Contents", [])
        ]

    def error_reports(self) -> list[str]:
        return [k for k in self.keys() if k.endswith("-error.json")]

    def report(self, key: str) -> dict[str, Any]:
        error_key = key.replace("inputs/", "outputs/").replace(".tar.gz", "-error.json")
        data: dict[str, Any] = json.loads(
            self.s3.get_object(Bucket=self.bucket, Key=error_key)["Body"].read()
        )
        return data

    def run_json(self, key: str) -> dict[str, Any]:
        name = key.removeprefix("inputs/").removesuffix(".tar.gz")
        run: dict[str, Any] = json.loads(self.output_members(key)[f"{name}/run.json"])
        return run

    def record(self, key: str) -> dict[str, Any]:
        """The run record beside the output of input `key` (`outputs/…-run.json`)."""
        name = key.removeprefix("inputs/").removesuffix(".tar.gz")
        body = self.s3.get_object(Bucket=self.bucket, Key=f"outputs/{name}-run.json")["Body"].read()
        run: dict[str, Any] = json.loads(body)
        return run

    def output_members(self, key: str) -> dict[str, bytes]:
        out_key = key.replace("inputs/", "outputs/").replace(".tar.gz", "-output.tar.gz")
        body = self.s3.get_object(Bucket=self.bucket, Key=out_key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            return {m.name: (tar.extractfile(m).read() if m.isfile() else b"") for m in tar.getmembers()}  # type: ignore[union-attr]

    def output_versions(self, key: str) -> int:
        out_key = key.replace("inputs/", "outputs/").replace(".tar.gz", "-output.tar.gz")
        versions = self.s3.list_object_versions(Bucket=self.bucket, Prefix=out_key).get("Versions", [])
        return len([v for v in versions if v["Key"] == out_key])

    def queue_counts(self, url: str | None = None) -> tuple[int, int]:
        attrs = self.sqs.get_queue_attributes(QueueUrl=url or self.queue_url, AttributeNames=["All"])[
            "Attributes"
        ]
        return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def delayed(self, url: str | None = None) -> int:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=url or self.queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessagesDelayed"])

    def peek(self, url: str | None = None) -> list[WorkMessage]:
        """The messages visible in a queue, read and left there (visibility 0)."""
        resp = self.sqs.receive_message(
            QueueUrl=url or self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0
        )
        return [WorkMessage.from_body(m["Body"]) for m in resp.get("Messages", [])]

    def report_versions(self, key: str) -> int:
        """How many times the error report was written (a versioned bucket keeps each write)."""
        error_key = key.replace("inputs/", "outputs/").replace(".tar.gz", "-error.json")
        versions = self.s3.list_object_versions(Bucket=self.bucket, Prefix=error_key).get("Versions", [])
        return len([v for v in versions if v["Key"] == error_key])

    def config(self, name: str = "consumer", **overrides: Any) -> Path:
        settings: dict[str, Any] = {
            "queue_url": self.queue_url,
            "bucket": self.bucket,
            "workdir": str(self.tmp / name / "work"),
            "state_file": str(self.tmp / name / "state.json"),
            "engine": "summary",
            "poll_wait_s": 1,
            "visibility_extension_s": 6,
            "heartbeat_s": 2,
            "retry_backoff_s": 1,
            "idle_minutes": 30,
            "max_receive_count": 3,
            "imds_enabled": False,
            "error_backoff_max_s": 2,
        }
        tables: dict[str, dict[str, Any]] = {"summary": {}, "pcgr": {}}
        for k, v in overrides.items():
            if "__" in k:
                table, sub = k.split("__", 1)
                tables[table][sub] = v
            else:
                settings[k] = v
        lines = [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
        for table, values in tables.items():
            if values:
                lines.append(f"[{table}]")
                lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
        path = self.tmp / name / "consumer.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(
        self,
        name: str = "consumer",
        *,
        once: bool = False,
        env: dict[str, str] | None = None,
        engine_s: float = 0,
        new_session: bool = False,
        **overrides: Any,
    ) -> Daemon:
        """Start `capillary consume`; `engine_s` makes each `summary` run take that long;
        `new_session` starts it in a process group of its own, as systemd does a unit's process."""
        if engine_s:
            overrides["summary__bcftools"] = str(slow_bcftools(self.tmp / name, engine_s))
        cfg = self.config(name, **overrides)
        log_path = self.tmp / name / "daemon.log"
        argv = [str(CAPILLARY), "consume", "--config", str(cfg)] + (["--once"] if once else [])
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=log,
                env={**os.environ, **(env or {})},
                start_new_session=new_session,
            )
        daemon = Daemon(proc, log_path, self.tmp / name / "state.json")
        self.daemons.append(daemon)
        return daemon

    def no_workspace_left(self, name: str = "consumer") -> None:
        """A run's report or output goes up before its cleanup: wait for that run to end."""
        wait_for(lambda: self.workspaces(name) == [], 30, "every workspace removed")

    def workspaces(self, name: str = "consumer") -> list[Path]:
        work = self.tmp / name / "work"
        return list(work.glob("msg-*")) if work.exists() else []


@pytest.fixture
def world(aws: LocalAWS, tmp_path: Path) -> Iterator[World]:
    s3 = boto3.client("s3")
    sqs = boto3.client("sqs")
    bucket = "capillary-faults-samples"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": aws.region})
    dlq_url = sqs.create_queue(QueueName="capillary-faults-work-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName="capillary-faults-work",
        Attributes={
            "VisibilityTimeout": "6",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}),
        },
    )["QueueUrl"]
    w = World(aws, tmp_path, bucket, queue_url, dlq_url, s3, sqs)
    try:
        yield w
    finally:
        for daemon in w.daemons:
            if daemon.proc.poll() is None:
                daemon.proc.kill()
                daemon.proc.wait()
        _kill_strays(tmp_path)


def engine_pids(tmp_path: Path) -> list[int]:
    """The engine processes of this test's daemons (each the leader of its own process group)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "capillary.worker.engines" in cmdline and str(tmp_path) in cmdline:
            pids.append(int(proc.name))
    return pids


def _kill_strays(tmp_path: Path) -> None:
    """Engine processes orphaned by a kill -9 (systemd's control-group kill does this on a worker)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "capillary.worker.engines" in cmdline and str(tmp_path) in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(proc.name), signal.SIGKILL)


# -- the happy path, once ------------------------------------------------------------------------


def test_once_turns_one_message_into_one_output_with_only_its_files(world: World) -> None:
    # GIVEN two samples queued
    first = world.upload_sample(batch="alpha")
    second = world.upload_sample(batch="beta")
    world.send(first)
    world.send(second)
    # WHEN the daemon runs with --once
    daemon = world.start(once=True)
    assert daemon.proc.wait(timeout=60) == 0, daemon.messages()
    # THEN exactly one output exists (with its run record), holding only that sample's directory and run.json
    outputs = world.output_keys()
    assert len(outputs) == 1, world.keys()
    done = first if "alpha" in outputs[0] else second
    assert world.keys() == [outputs[0], outputs[0].replace("-output.tar.gz", "-run.json")]
    name = done.removeprefix("inputs/").removesuffix(".tar.gz")
    members = world.output_members(done)
    assert all(m == name or m.startswith(f"{name}/") for m in members), members
    assert {f"{name}/run.json", f"{name}/summary.html", f"{name}/summary.tsv"} <= set(members)
    run = json.loads(members[f"{name}/run.json"])
    assert run["input"]["key"] == done
    assert run["input"]["verified"] == "sha256 metadata"
    assert run["versions"]["engine"] == "summary"
    assert set(run["outputs_sha256"]) >= {"summary.html", "summary.tsv"}
    assert all(k.startswith(f"{name}/") for k in run["input_members_sha256"])
    # AND its record beside it is the same run.json; off EC2 it has no price and runs no release, saying why
    assert world.record(done) == run
    assert run["price"] is None and "purchase option is unknown" in run["price_reason"]
    assert run["release"] is None and run["release_reason"] == "the summary engine runs no PCGR release"
    assert run["cost"]["compute_usd"] is None and run["cost"]["storage_usd"] > 0
    # AND the other message is still queued, and no workspace is left
    assert world.queue_counts()[0] + world.queue_counts()[1] == 1
    world.no_workspace_left()
    # AND every log line is JSON with the stable keys
    received = [r for r in daemon.log() if r.get("phase") == "receive"]
    assert received and {"message_id", "key", "sample", "attempt"} <= set(received[0])
    # AND the state file says when the daemon started and when it first polled the queue
    state = daemon.state()
    assert state["started_epoch"] <= state["first_receive_epoch"] < state["started_epoch"] + 30
    assert "first ReceiveMessage" in daemon.messages()
    # AND the input was read once, streamed into the extractor: no tarball was written
    assert run["timings_s"]["fetch_s"] > 0 and "download_s" not in run["timings_s"]
    # AND the daemon's records about this sample travel in run.json: only this message's, up to
    # the packaging, and nothing of the VCF (its data lines are tab-separated)
    phases = [r.get("phase") for r in run["log"]]
    assert phases[0] == "receive" and "engine" in phases, phases
    assert {r["message_id"] for r in run["log"]} == {received[0]["message_id"]}
    assert "\t" not in json.dumps(run["log"])


# -- crash, retry, dead letter -------------------------------------------------------------------


def test_kill_9_then_a_restart_on_the_same_worker_reruns_the_sample_within_30_s(world: World) -> None:
    # GIVEN a daemon holding a message for 2 minutes at a time (the queue's own visibility: an
    # hour), in the middle of a 6-second engine run
    world.sqs.set_queue_attributes(QueueUrl=world.queue_url, Attributes={"VisibilityTimeout": "3600"})
    key = world.upload_sample()
    world.send(key)
    window: dict[str, Any] = {"visibility_extension_s": 120, "heartbeat_s": 40}
    first = world.start("w", engine_s=6, **window)
    first.wait_phase("engine")
    # WHEN it is killed with SIGKILL (no drain, no hand-back; systemd kills the engine's group)
    # and systemd starts it again on the same worker (same state file under /run)
    first.proc.kill()
    first.proc.wait()
    _kill_strays(world.tmp)
    assert world.keys() == []
    restarted = time.monotonic()
    second = world.start("w", **window)
    # THEN the restarted daemon hands back what its predecessor held, takes it again and
    # produces exactly one output, well inside the 2-minute window
    wait_for(lambda: world.queue_counts() == (0, 0), 30, "the message re-run after the restart")
    assert time.monotonic() - restarted <= 30
    assert world.output_versions(key) == 1
    run = world.run_json(key)
    assert run["attempt"] == 2
    assert [a["outcome"] for a in run["history"]] == ["interrupted"]
    assert "the consumer restarted" in run["history"][0]["reason"]
    assert "released the message a previous run of this consumer held" in second.messages()
    assert "removing a workspace left by an earlier run" in second.messages()
    assert world.workspaces("w") == []
    # AND the crash spent none of the sample's attempts and wrote no report
    assert world.queue_counts(world.dlq_url) == (0, 0)
    assert world.error_reports() == []


def test_kill_9_with_the_worker_gone_another_worker_gets_it_within_the_rolling_window(
    world: World,
) -> None:
    # GIVEN a work queue whose own visibility is an hour, and a worker holding its message
    # 8 s at a time (the default is 5 minutes), in the middle of a long engine run
    world.sqs.set_queue_attributes(QueueUrl=world.queue_url, Attributes={"VisibilityTimeout": "3600"})
    key = world.upload_sample()
    world.send(key)
    window: dict[str, Any] = {"visibility_extension_s": 8, "heartbeat_s": 2}
    doomed = world.start("doomed", engine_s=60, **window)
    doomed.wait_phase("engine")
    # AND another worker already polling the queue (its start-up is not part of the window)
    other = world.start("other", **window)
    wait_for(
        lambda: other.state().get("pid") == other.proc.pid and "first_receive_epoch" in other.state(),
        30,
        "the other worker polling",
    )
    # WHEN the first worker disappears (kill -9, nothing hands the message back)
    doomed.proc.kill()
    doomed.proc.wait()
    _kill_strays(world.tmp)
    gone = time.monotonic()
    # THEN the other worker receives it within the rolling window (plus a poll), not the hour
    wait_for(lambda: "received" in other.messages(), 30, "the other worker to receive the sample")
    assert time.monotonic() - gone <= 8 + 5
    wait_for(lambda: world.queue_counts() == (0, 0), 60, "the sample processed by the other worker")
    assert world.output_versions(key) == 1
    assert world.run_json(key)["attempt"] == 2


def test_engine_failure_reports_retries_and_ends_in_the_dlq_saying_so(world: World) -> None:
    # GIVEN an engine that always fails (bcftools replaced by `false`) and maxReceiveCount 3
    key = world.upload_sample()
    world.send(key)
    # WHEN the daemon keeps receiving it
    daemon = world.start(summary__bcftools="false", retry_backoff_s=0)
    wait_for(lambda: world.queue_counts(world.dlq_url)[0] == 1, 60, "the message in the DLQ")
    # THEN the last report says it was the last attempt and the message goes to the DLQ
    report = world.report(key)
    assert report["attempt"] == 3
    assert report["final_attempt"] is True
    assert "dead-letter" in report["next"]
    assert report["phase"] == "engine"
    assert "exited with status 1" in report["reason"]
    assert any("bcftools stats failed" in line for line in report["log_tail"])
    # AND there were three attempts, the daemon is still running, and nothing is left on disk
    attempts = [
        r["attempt"] for r in daemon.log() if r.get("phase") == "engine" and "failed" in r.get("message", "")
    ]
    assert attempts == [1, 2, 3]
    assert report["failures"] == 3
    assert [a["outcome"] for a in report["history"]] == ["failed", "failed"]
    assert daemon.proc.poll() is None
    assert world.keys() == [key.replace("inputs/", "outputs/").replace(".tar.gz", "-error.json")]
    world.no_workspace_left()
    # AND the consumer moved it there itself, its three failures in its history
    [dead] = world.peek(world.dlq_url)
    assert dead.key == key
    assert [(a.outcome, a.phase) for a in dead.history] == [("failed", "engine")] * 3
    assert world.queue_counts() == (0, 0)


def test_bad_inputs_get_clear_reports_and_no_crash_loop(world: World) -> None:
    # GIVEN a message whose input was deleted, one whose checksum does not match, a tarball with a
    # path escaping the workspace, and a sample with an unknown engine option
    deleted = world.upload_sample(batch="deleted")
    world.send(deleted)
    world.s3.delete_object(Bucket=world.bucket, Key=deleted)
    mismatch = world.upload_sample(batch="mismatch")
    world.s3.copy_object(
        Bucket=world.bucket,
        Key=mismatch,
        CopySource={"Bucket": world.bucket, "Key": mismatch},
        Metadata={META_SHA256: "0" * 64},
        MetadataDirective="REPLACE",
    )
    world.send(mismatch)
    evil = world.upload_sample(batch="evil", extra_members={"../../escape.txt": "gotcha"})
    world.send(evil)
    # WHEN one daemon works through them (a long backoff keeps them from coming back here)
    daemon = world.start(retry_backoff_s=600)
    wait_for(lambda: len(world.keys()) == 3, 60, "three error reports")
    # THEN each report names the reason, and the daemon is still up
    assert "no longer exists" in world.report(deleted)["reason"]
    assert "sha256 mismatch" in world.report(mismatch)["reason"]
    evil_report = world.report(evil)
    assert evil_report["phase"] == "extract"
    assert "refused" in evil_report["reason"]
    # AND the report carries what the daemon logged about that sample, and only that
    assert evil_report["log"][0]["phase"] == "receive"
    assert {r["key"] for r in evil_report["log"] if "key" in r} == {evil}
    assert daemon.proc.poll() is None
    assert not (world.tmp / "consumer" / "escape.txt").exists()
    world.no_workspace_left()
    # AND the two that may succeed later are queued again after the backoff, while the tarball
    # that can never be unpacked went to the dead-letter queue at once
    assert world.delayed() == 2
    assert evil_report["retryable"] is False and evil_report["final_attempt"] is True
    assert [m.key for m in world.peek(world.dlq_url)] == [evil]


def test_an_input_replaced_after_its_message_gives_one_output_of_the_newest_upload(world: World) -> None:
    # GIVEN a versioned bucket, a sample's message, and then a second upload of the same key
    # (with its own message) before any worker ran
    world.s3.put_bucket_versioning(Bucket=world.bucket, VersioningConfiguration={"Status": "Enabled"})
    key = world.upload_sample(batch="redo")
    world.send(key)
    first_etag = world.s3.head_object(Bucket=world.bucket, Key=key)["ETag"].strip('"')
    replacement = make_sample_tarball(world.tmp / "redo", batch="redo", uuid=key.split("-")[-2], seed=9)
    data = replacement.read_bytes()
    world.s3.put_object(
        Bucket=world.bucket, Key=key, Body=data, Metadata={META_SHA256: hashlib.sha256(data).hexdigest()}
    )
    newest_etag = world.s3.head_object(Bucket=world.bucket, Key=key)["ETag"].strip('"')
    assert newest_etag != first_etag
    world.send(key)
    # WHEN a daemon works through both messages
    daemon = world.start()
    wait_for(lambda: world.queue_counts() == (0, 0), 60, "both messages deleted")
    # THEN the older message found its upload replaced and went on with the newest one, and the
    # newer message found that output done: one output, of the newest upload, no error report
    assert "input replaced since the message was sent" in daemon.messages()
    assert world.output_versions(key) == 1
    assert world.run_json(key)["input"]["etag"] == newest_etag
    assert world.run_json(key)["input"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert daemon.messages().count("engine summary starting") == 1
    name = key.removeprefix("inputs/").removesuffix(".tar.gz")
    assert world.keys() == [f"outputs/{name}-output.tar.gz", f"outputs/{name}-run.json"]
    assert world.record(key) == world.run_json(key)


def test_the_upload_a_message_names_is_fetched_without_asking_s3_for_it_first(world: World) -> None:
    from capillary.worker.config import load_config
    from capillary.worker.daemon import Consumer

    # GIVEN an in-process consumer whose S3 calls are recorded (operation, key)
    consumer = Consumer(load_config(world.config("inproc"), env={}))
    consumer.clean_workdir()
    calls: list[tuple[str, str]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, str(params.get("Key", ""))))

    consumer.s3.meta.events.register("provide-client-params.s3", record)

    def handle(key: str, *, version: bool) -> list[tuple[str, str]]:
        calls.clear()
        world.send(key, version=version)
        [message] = consumer.receive()
        consumer.handle(message)
        consumer.settle()  # the message's deletion overlaps with what comes next
        return [call for call in calls if call[1] == key]

    # WHEN it handles a message carrying the upload's etag and size
    named = world.upload_sample(batch="named")
    # THEN the input is read with one GET, conditional on that etag: no HEAD first
    assert handle(named, version=True) == [("GetObject", named)]
    # AND a message without them (hand-written, or from an older intake) costs the HEAD it used to
    bare = world.upload_sample(batch="bare")
    assert handle(bare, version=False) == [("HeadObject", bare), ("GetObject", bare)]
    assert world.queue_counts() == (0, 0)
    assert len([k for k in world.output_keys() if k.endswith("-output.tar.gz")]) == 2


def test_a_message_without_etag_or_size_is_still_fetched_and_verified(world: World) -> None:
    # GIVEN hand-written messages (no etag, no size): one for a single-part upload without sha256
    # metadata, one for a multipart upload without it
    single = world.upload_sample(batch="single", sha256=False)
    multipart = f"inputs/{make_sample_tarball(world.tmp / 'mp', batch='multi').name}"
    upload = world.s3.create_multipart_upload(Bucket=world.bucket, Key=multipart)
    part = world.s3.upload_part(
        Bucket=world.bucket,
        Key=multipart,
        UploadId=upload["UploadId"],
        PartNumber=1,
        Body=(world.tmp / "mp" / multipart.removeprefix("inputs/")).read_bytes(),
    )
    world.s3.complete_multipart_upload(
        Bucket=world.bucket,
        Key=multipart,
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    for key in (single, multipart):
        world.send(key, version=False)
    # WHEN a daemon works through them
    daemon = world.start()
    wait_for(lambda: world.queue_counts() == (0, 0), 60, "both messages processed and deleted")
    # THEN both were processed, asking S3 for the input's etag: the single-part one checked
    # against its ETag's MD5, the multipart one said to be unverified
    assert world.run_json(single)["input"]["verified"] == "etag md5"
    assert world.run_json(multipart)["input"]["verified"] == (
        "unverified (multipart upload without sha256 metadata)"
    )
    assert "a multipart ETag: not verified" in daemon.messages()
    # AND each output records the etag it was made from (what the already-done check reads)
    for key in (single, multipart):
        etag = world.s3.head_object(Bucket=world.bucket, Key=key)["ETag"].strip('"')
        out_key = key.replace("inputs/", "outputs/").replace(".tar.gz", "-output.tar.gz")
        assert world.s3.head_object(Bucket=world.bucket, Key=out_key)["Metadata"][META_INPUT_ETAG] == etag


def test_an_input_over_max_tarball_bytes_is_refused_before_download(world: World) -> None:
    # GIVEN a worker taking tarballs up to 1000 bytes, and two 1.6 kB samples: one announced with
    # its size, one by a hand-written message without it
    sized = world.upload_sample(batch="sized")
    world.send(sized)
    unsized = world.upload_sample(batch="unsized")
    world.send(unsized, version=False)
    # WHEN the daemon receives them
    daemon = world.start(max_tarball_bytes=1000, retry_backoff_s=600)
    wait_for(lambda: len(world.keys()) == 2, 60, "two error reports")
    # THEN each report names the size and the limit, and nothing was written to the workspace
    for key in (sized, unsized):
        report = world.report(key)
        assert report["phase"] == "download"
        assert "max_tarball_bytes is 1000" in report["reason"]
    assert daemon.proc.poll() is None
    world.no_workspace_left()


# -- the pcgr engine and the assemblies a worker holds --------------------------------------------


def pcgr_worker(world: World, name: str, assemblies: list[str]) -> tuple[dict[str, Any], Path]:
    """Config overrides for a pcgr worker with a stand-in PCGR and bundles for `assemblies` under
    pcgr_refdata's layout, and the file the stand-in records its calls in."""
    base = world.tmp / name
    prefix = conda_layout(base)
    root = refdata_layout(base, *assemblies)
    (base / "vep" / "current").mkdir(parents=True)
    overrides = {
        "engine": "pcgr",
        "pcgr__conda_prefix": str(prefix),
        "pcgr__refdata_root": str(root),
        "pcgr__assemblies": assemblies,
        "pcgr__vep_dir": str(base / "vep" / "current"),
    }
    return overrides, base / "pcgr-calls.txt"


def calls(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def flag_value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_pcgr_runs_each_sample_on_the_reference_data_of_its_own_assembly(world: World) -> None:
    # GIVEN a worker holding bundles for both assemblies, and a GRCh37 and a GRCh38 sample queued
    overrides, calls_file = pcgr_worker(world, "both", ["grch38", "grch37"])
    keys = {a: world.upload_sample(batch=a, assembly=a) for a in ("grch37", "grch38")}
    for key in keys.values():
        world.send(key)
    # WHEN the daemon works through them
    world.start("both", env={"FAKE_PCGR_CALLS": str(calls_file)}, **overrides)
    wait_for(lambda: world.queue_counts() == (0, 0), 60, "both messages processed and deleted")
    # THEN PCGR ran once per sample, on the bundle of the sample's own assembly
    root = Path(overrides["pcgr__refdata_root"])
    runs = {flag_value(argv, "--genome_assembly"): argv for argv in calls(calls_file)}
    assert sorted(runs) == ["grch37", "grch38"]
    for assembly, argv in runs.items():
        assert flag_value(argv, "--refdata_dir") == str(root / assembly)
        assert flag_value(argv, "--vep_dir") == overrides["pcgr__vep_dir"]
    # AND each sample has its output
    for assembly, key in keys.items():
        name = key.removeprefix("inputs/").removesuffix(".tar.gz")
        assert f"{name}/report.html" in world.output_members(key), assembly


def test_a_sample_of_an_assembly_the_worker_lacks_is_rejected_before_pcgr_runs(world: World) -> None:
    # GIVEN a worker holding GRCh38 reference data only, and a GRCh37 sample
    overrides, calls_file = pcgr_worker(world, "only38", ["grch38"])
    key = world.upload_sample(batch="old-build", assembly="grch37")
    name = key.removeprefix("inputs/").removesuffix(".tar.gz")
    world.send(key)
    # WHEN the daemon receives it
    daemon = world.start("only38", env={"FAKE_PCGR_CALLS": str(calls_file)}, retry_backoff_s=0, **overrides)
    wait_for(lambda: world.queue_counts(world.dlq_url)[0] == 1, 60, "the message in the DLQ")
    # THEN it was rejected with a report naming the sample, its assembly and what is installed
    report = world.report(key)
    assert report["phase"] == "options"
    assert report["retryable"] is False
    assert f"sample {name}: genome_assembly 'grch37' is not installed" in report["reason"]
    assert "reference data installed: grch38" in report["reason"]
    # AND since retrying cannot help, the first attempt was the last: straight to the DLQ
    assert report["attempt"] == 1 and report["final_attempt"] is True
    assert "dead-letter" in report["next"]
    assert world.queue_counts() == (0, 0)
    assert world.keys() == [f"outputs/{name}-error.json"]
    # AND PCGR never started, the daemon is still up, no workspace is left, no VCF line was logged
    assert calls(calls_file) == []
    assert "engine pcgr starting" not in daemon.messages()
    assert daemon.proc.poll() is None
    assert world.workspaces("only38") == []
    assert "##contig" not in daemon.log_path.read_text()


# -- duplicates and races ------------------------------------------------------------------------


def test_duplicate_message_and_racing_consumers_give_one_output(world: World) -> None:
    # GIVEN a versioned bucket (so an overwrite would show) and the same sample queued twice
    world.s3.put_bucket_versioning(Bucket=world.bucket, VersioningConfiguration={"Status": "Enabled"})
    key = world.upload_sample()
    world.send(key)
    world.send(key)
    # WHEN two consumers race on the queue, both runs overlapping
    a = world.start("a", engine_s=2)
    b = world.start("b", engine_s=2)
    wait_for(lambda: world.queue_counts() == (0, 0), 60, "both messages deleted")
    # THEN one output was ever written, and both messages are gone
    assert world.output_versions(key) == 1
    logs = a.messages() + b.messages()
    assert logs.count("output uploaded") == 1
    assert ("already exists" in logs) or ("another worker" in logs)
    # AND a third delivery later is deleted without rerunning the engine
    engine_runs = logs.count("engine summary starting")
    world.send(key)
    wait_for(lambda: world.queue_counts() == (0, 0), 30, "the late duplicate deleted")
    assert world.output_versions(key) == 1
    assert (a.messages() + b.messages()).count("engine summary starting") == engine_runs


# -- the endpoint going away ---------------------------------------------------------------------


class FlakyProxy:
    """A TCP forwarder to the local endpoint that can be switched off (connections refused)."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.enabled = threading.Event()
        self.enabled.set()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if not self.enabled.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while self.enabled.is_set() and (data := src.recv(65536)):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.close()

    def down(self) -> None:
        self.enabled.clear()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass
        self.conns.clear()

    def up(self) -> None:
        self.enabled.set()

    def close(self) -> None:
        self.down()
        self.sock.close()


def test_an_s3_outage_during_the_upload_is_waited_out_with_one_engine_run(world: World) -> None:
    # GIVEN S3 reached through a proxy, and a run whose engine takes 3 s
    proxy = FlakyProxy(world.aws.endpoint_url)
    try:
        key = world.upload_sample()
        world.send(key)
        daemon = world.start(engine_s=3, retry_backoff_s=4, env={"AWS_ENDPOINT_URL_S3": proxy.url})
        daemon.wait_phase("engine")
        # WHEN S3 goes away before the upload, for 12 s
        proxy.down()
        wait_for(lambda: "output upload failed (try" in daemon.messages(), 60, "a failed upload try")
        assert world.keys() == []
        time.sleep(12)
        proxy.up()
        # THEN the upload is retried with the engine's output kept: one engine run, one output on
        # the first attempt, no error report, and the message held throughout
        wait_for(lambda: world.queue_counts() == (0, 0), 60, "the output uploaded after S3 returned")
        assert daemon.messages().count("engine summary starting") == 1
        assert world.output_versions(key) == 1
        assert world.run_json(key)["attempt"] == 1
        assert world.error_reports() == []
        assert "the output is kept" in daemon.messages()
        assert daemon.proc.poll() is None
    finally:
        proxy.close()


def test_an_upload_that_keeps_failing_is_reported_as_an_upload_failure(world: World) -> None:
    # GIVEN S3 through a proxy and a worker retrying uploads for 3 s only
    proxy = FlakyProxy(world.aws.endpoint_url)
    try:
        key = world.upload_sample()
        world.send(key)
        daemon = world.start(
            engine_s=2, upload_retry_s=3, retry_backoff_s=600, env={"AWS_ENDPOINT_URL_S3": proxy.url}
        )
        daemon.wait_phase("engine")
        # WHEN S3 stays away past that
        proxy.down()
        wait_for(lambda: "output upload failed after" in daemon.messages(), 60, "the upload to give up")
        # THEN the attempt fails in phase "upload" (not "unexpected") and the message returns
        failed = [r for r in daemon.log() if "output upload failed after" in r.get("message", "")]
        assert failed[0]["phase"] == "upload"
        assert "unexpected" not in {r.get("phase") for r in daemon.log()}
        wait_for(lambda: world.delayed() == 1, 10, "the message queued again after the backoff")
    finally:
        proxy.close()


def test_a_refusal_that_cannot_succeed_costs_one_download_one_report_one_dlq_move(world: World) -> None:
    # GIVEN a versioned bucket (each write of the error report shows) and a tarball that can never
    # be unpacked, with no backoff, so a retry would come at once
    world.s3.put_bucket_versioning(Bucket=world.bucket, VersioningConfiguration={"Status": "Enabled"})
    key = world.upload_sample(batch="refused", extra_members={"../../escape.txt": "gotcha"})
    world.send(key)
    daemon = world.start(retry_backoff_s=0)
    # WHEN the daemon receives it
    wait_for(lambda: world.queue_counts(world.dlq_url)[0] == 1, 30, "the message in the DLQ")
    time.sleep(3)  # room for a retry, were there one
    # THEN it was received (and downloaded) once, reported once, and moved once
    assert [r["key"] for r in daemon.log() if r.get("phase") == "receive"] == [key]
    assert world.report_versions(key) == 1
    report = world.report(key)
    assert (report["phase"], report["retryable"], report["final_attempt"]) == ("extract", False, True)
    [dead] = world.peek(world.dlq_url)
    assert [(a.outcome, a.phase) for a in dead.history] == [("failed", "extract")]
    assert world.queue_counts() == (0, 0) and world.delayed() == 0
    assert daemon.proc.poll() is None


def test_an_unusable_body_goes_to_the_dead_letter_queue_at_once(world: World) -> None:
    world.sqs.send_message(QueueUrl=world.queue_url, MessageBody='{"key": "not-a-sample"}')
    daemon = world.start()
    wait_for(lambda: world.queue_counts(world.dlq_url)[0] == 1, 30, "the body in the DLQ")
    assert "unusable work message" in daemon.messages()
    assert world.queue_counts() == (0, 0)


# -- long runs, spot, SIGTERM, idle --------------------------------------------------------------


def test_long_engine_run_is_never_visible_to_a_second_consumer(world: World) -> None:
    # GIVEN a queue visibility of 6 s and an engine run of 18 s (the 90 s / 30 s, scaled;
    # CAPILLARY_FULL_FAULTS=1 runs the full length)
    full = os.environ.get("CAPILLARY_FULL_FAULTS") == "1"
    visibility, run_s = (30, 90) if full else (6, 18)
    world.sqs.set_queue_attributes(
        QueueUrl=world.queue_url, Attributes={"VisibilityTimeout": str(visibility)}
    )
    key = world.upload_sample()
    world.send(key)
    worker = world.start(
        "worker", engine_s=run_s, visibility_extension_s=visibility, heartbeat_s=visibility // 3
    )
    worker.wait_phase("engine")
    # WHEN a second consumer polls the same queue for the whole run
    rival = world.start("rival", visibility_extension_s=visibility, heartbeat_s=visibility // 3)
    wait_for(lambda: world.queue_counts() == (0, 0), run_s + 60, "the long run to finish")
    # THEN the rival never received it, and the sample was processed once, on the first attempt
    assert [r for r in rival.log() if r.get("phase") == "receive"] == []
    assert len(world.output_keys()) == 1 and len(world.keys()) == 2  # the output and its record
    name = key.removeprefix("inputs/").removesuffix(".tar.gz")
    run = json.loads(world.output_members(key)[f"{name}/run.json"])
    assert run["attempt"] == 1
    assert run["timings_s"]["engine_s"] >= run_s


def test_spot_notice_hands_the_message_back_within_10_s_and_wipes_the_workspace(world: World) -> None:
    with LocalIMDS() as imds:
        # GIVEN a daemon polling the local IMDSv2 every second, mid-way through a long engine run
        key = world.upload_sample()
        world.send(key)
        daemon = world.start(imds_enabled=True, imds_url=imds.url, spot_poll_s=1, engine_s=60)
        daemon.wait_phase("engine")
        assert world.workspaces() != []
        # WHEN AWS issues a spot interruption notice
        imds.spot_notice()
        noticed = time.monotonic()
        # THEN the message is visible again within 10 s
        wait_for(lambda: world.queue_counts()[0] == 1, 10, "the message handed back")
        assert time.monotonic() - noticed <= 10
        # AND the daemon exits cleanly with the workspace gone and no report or output written
        assert daemon.proc.wait(timeout=20) == 0
        assert world.workspaces() == []
        assert world.keys() == []
        # AND it used IMDSv2 only: every read carried a token
        assert imds.rejected == 0
        assert ("PUT", "/latest/api/token") in imds.requests


def test_sigterm_drains_like_a_spot_notice(world: World) -> None:
    key = world.upload_sample()
    world.send(key)
    daemon = world.start(engine_s=60)
    daemon.wait_phase("engine")
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 20
    assert world.queue_counts() == (1, 0)
    assert world.workspaces() == []
    assert "handed the message back (SIGTERM)" in daemon.messages()
    # AND the message is back as a fresh one that records the interruption: no attempt spent,
    # no error report
    [back] = world.peek()
    assert [(a.outcome, a.reason, a.phase) for a in back.history] == [("interrupted", "SIGTERM", "engine")]
    assert world.keys() == []


def test_a_stop_signal_to_the_whole_process_group_is_a_hand_back_not_an_engine_failure(
    world: World,
) -> None:
    # GIVEN a daemon in a process group of its own, as systemd starts a unit, mid-way through an
    # engine run (the engine in its own process group under it)
    key = world.upload_sample()
    world.send(key)
    daemon = world.start(engine_s=60, new_session=True)
    daemon.wait_phase("engine")
    [engine] = wait_for(lambda: engine_pids(world.tmp), 10, "the engine process")
    assert os.getpgid(engine) != os.getpgid(daemon.proc.pid) == daemon.proc.pid
    # WHEN the stop signal reaches every process, the engine first (KillMode=control-group)
    os.killpg(os.getpgid(engine), signal.SIGTERM)
    os.killpg(daemon.proc.pid, signal.SIGTERM)
    # THEN the daemon hands the message back as a drain: no failure, no report, no attempt spent
    assert daemon.proc.wait(timeout=30) == 0
    assert "failed" not in daemon.messages()
    assert world.keys() == []
    [back] = world.peek()
    assert [a.outcome for a in back.history] == ["interrupted"]
    assert daemon.state()["failed"] == 0 and daemon.state()["handed_back"] == 1


def test_three_restarts_during_one_run_end_in_one_output_and_no_dead_letter(world: World) -> None:
    # GIVEN a sample whose engine takes 4 s, on a queue that dead-letters after 3 receives
    key = world.upload_sample()
    world.send(key)
    daemon = world.start("w", engine_s=4, new_session=True)
    # WHEN the worker's consumer is restarted three times mid-run: stopped, killed, stopped
    for how in ("SIGTERM", "SIGKILL", "SIGTERM"):
        daemon.wait_phase("engine")
        if how == "SIGKILL":
            os.killpg(daemon.proc.pid, signal.SIGKILL)  # the unit's cgroup, as systemd kills it
            daemon.proc.wait()
            _kill_strays(world.tmp)
        else:
            assert daemon.stop() == 0
        daemon = world.start("w", engine_s=4, new_session=True)
    # THEN the fourth run finishes: exactly one output, nothing in the dead-letter queue, no
    # error report, and the output's run.json records the three interruptions
    wait_for(lambda: world.queue_counts() == (0, 0), 60, "the sample processed")
    assert world.output_versions(key) == 1
    assert world.queue_counts(world.dlq_url) == (0, 0)
    assert world.error_reports() == []
    run = world.run_json(key)
    assert [a["outcome"] for a in run["history"]] == ["interrupted"] * 3
    assert run["attempt"] == 4


def test_a_consumer_that_requires_its_sandbox_refuses_to_start_outside_it(world: World) -> None:
    # GIVEN a queued sample and a consumer configured as the unit configures it, started here
    # (no systemd, so no mount namespace: /usr writable, /home visible)
    key = world.upload_sample()
    world.send(key)
    daemon = world.start(env={"CAPILLARY_REQUIRE_SANDBOX": "true"})
    # THEN it refuses with the configuration status (systemd does not restart it), says why, and
    # never touched the queue
    assert daemon.proc.wait(timeout=30) == 78
    assert "refusing to start outside the unit's sandbox" in daemon.messages()
    assert "ProtectSystem=strict is not in effect" in daemon.messages()
    assert world.queue_counts() == (1, 0)


def test_idle_shutdown_exits_with_the_idle_status(world: World) -> None:
    # GIVEN an empty queue and idle_minutes of 3 seconds
    daemon = world.start(idle_minutes=0.05)
    # WHEN nothing arrives
    status = daemon.proc.wait(timeout=30)
    # THEN the daemon exits with the distinct idle status the unit powers off on
    assert status == EXIT_IDLE
    assert daemon.state()["state"] == "idle-shutdown"


def test_unreachable_endpoint_at_boot_keeps_retrying_without_crashing(world: World) -> None:
    daemon = world.start(
        env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ENDPOINT_URL_SQS": "http://127.0.0.1:9"}
    )
    wait_for(lambda: daemon.messages().count("receive failed") >= 2, 30, "two failed receives")
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0


def test_status_shows_queue_dlq_and_worker_state(world: World) -> None:
    key = world.upload_sample()
    world.send(key)
    daemon = world.start(engine_s=30)
    daemon.wait_phase("engine")
    cfg = world.tmp / "consumer" / "consumer.toml"
    out = subprocess.run(
        [str(CAPILLARY), "status", "--config", str(cfg), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    status = json.loads(out.stdout)
    assert status["queue"]["in_flight"] == 1
    assert status["queue"]["dead_letter"] == 0
    assert status["worker"]["state"] == "working"
    assert status["worker"]["sample"] == key.removeprefix("inputs/").removesuffix(".tar.gz")
    text = subprocess.run(
        [str(CAPILLARY), "status", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "in flight  1" in text
    daemon.stop()
