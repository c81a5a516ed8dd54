"""The worker daemon: one work message at a time, from S3 tarball to report, losing no sample.

This module is the loop: start-up, receive, the drain (signal handlers and the spot watcher only
set an Event), idle exit, and the dispatch of one message. For each message: a fresh 0700
workspace on the data volume, a heartbeat keeping the message invisible a few minutes at a time
(`visibility`), the sample's pipeline (`pipeline`: fetch, engine, package) and the output side
(`outputs`: upload, error report, delete); whatever happens, the workspace is removed.

A message that produced no output is sent again fresh, carrying its history (`requeue`): at
once after a drain (SIGTERM, or a spot interruption notice read from IMDSv2: the engine is
stopped, the message handed back, the daemon exits), after `retry_backoff_s` after the sample's
own failure (with `outputs/…-error.json`: reason, attempt, log tail - never VCF contents), and
to the dead-letter queue when it cannot succeed on retry or has failed `max_receive_count`
times. Only the sample's own failures count. The message held is recorded in the state file, so
a consumer restarted after a crash hands it back at start and the worker picks it up again in
seconds. With nothing to do for `idle_minutes` the daemon exits with EXIT_IDLE, on which the
unit powers the worker off.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from capillary.contract.layout import EXIT_CONFIG, EXIT_IDLE, EXIT_OK
from capillary.contract.message import WorkMessage, WorkMessageError
from capillary.contract.samples import KINDS
from capillary.worker import sandbox
from capillary.worker.config import ConsumerConfig, engine_for, engines_in_use
from capillary.worker.engines import get_engine
from capillary.worker.fleet import leave_group
from capillary.worker.imds import IMDSClient, IMDSError
from capillary.worker.item import ENGINE_LOG, HandBackError, SampleFailedError, WorkItem, now_iso
from capillary.worker.outputs import Outputs
from capillary.worker.pipeline import SamplePipeline
from capillary.worker.provenance import Provenance
from capillary.worker.requeue import Requeue
from capillary.worker.samplelog import SampleLog
from capillary.worker.state import StateFile
from capillary.worker.visibility import Heartbeat

log = logging.getLogger("capillary.worker.daemon")


def _iso_ms(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


class SpotWatcher(threading.Thread):
    """Polls IMDSv2 `spot/instance-action`; a notice starts the drain."""

    def __init__(self, consumer: Consumer) -> None:
        super().__init__(name="spot-watcher", daemon=True)
        self.consumer = consumer
        self.imds = consumer.imds
        self.finished = threading.Event()
        self._reported_error = False

    def run(self) -> None:
        while not self.finished.is_set() and not self.consumer.stop.is_set():
            try:
                notice = self.imds.spot_notice()
            except IMDSError as exc:
                if not self._reported_error:
                    log.warning("IMDS spot check failed (will keep trying): %s", exc, extra={"phase": "spot"})
                    self._reported_error = True
                notice = None
            if notice is not None:
                log.warning(
                    "spot interruption notice (%s at %s): draining",
                    notice.action,
                    notice.time,
                    extra={"phase": "spot"},
                )
                self.consumer.request_stop("spot interruption")
                return
            self.finished.wait(self.consumer.cfg.spot_poll_s)


class Consumer:
    def __init__(self, cfg: ConsumerConfig) -> None:
        self.cfg = cfg
        boto_cfg = BotoConfig(
            retries={"mode": "standard", "max_attempts": 4}, connect_timeout=10, read_timeout=60
        )
        region = {"region_name": cfg.region} if cfg.region else {}
        self.sqs = boto3.client("sqs", config=boto_cfg, **region)
        self.s3 = boto3.client("s3", config=boto_cfg, **region)
        self.imds = IMDSClient(cfg.imds_url)
        self.engines = {name: get_engine(name, cfg) for name in engines_in_use(cfg)}
        self.stop = threading.Event()
        self.stop_reason = ""
        self.state = StateFile(cfg.state_file)
        self.counts = {"processed": 0, "failed": 0, "handed_back": 0, "skipped": 0}
        self.started = time.time()
        self.first_receive: float | None = None
        self._identity: dict[str, str] | None = None
        self.outputs = Outputs(cfg, self.s3, self.sqs, self.stop, self.identity)
        self.requeue = Requeue(cfg, self.sqs, self.identity)
        # The spot price at launch, for the run records: asked once, with the worker's region, and
        # briefly (a sample waits for the answer; without one, its record says why).
        ec2_cfg = BotoConfig(
            retries={"mode": "standard", "max_attempts": 2}, connect_timeout=3, read_timeout=10
        )
        self.provenance = Provenance(
            cfg, self.identity, lambda: boto3.client("ec2", config=ec2_cfg, **region)
        )
        self.pipeline = SamplePipeline(
            cfg, self.s3, self.engines, self.outputs, self.stop, self.identity, self._phase, self.provenance
        )

    # -- lifecycle -------------------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        if not self.stop.is_set():
            self.stop_reason = reason
            self.stop.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only flag it: the loop notices, hands back what it holds and exits.
        self.stop_reason = self.stop_reason or signal.Signals(signum).name
        self.stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def identity(self) -> dict[str, str]:
        if self._identity is None:
            self._identity = self.imds.identity() if self.cfg.imds_enabled else {}
            self._identity["hostname"] = socket.gethostname()
        return self._identity

    def _write_state(self, state: str, **extra: Any) -> None:
        timing: dict[str, Any] = {"started": _iso_ms(self.started), "started_epoch": self.started}
        if self.first_receive is not None:
            timing["first_receive"] = _iso_ms(self.first_receive)
            timing["first_receive_epoch"] = self.first_receive
        self.state.write(
            {
                "state": state,
                "pid": os.getpid(),
                "engine": self.cfg.engine,
                "engines": {kind: engine_for(self.cfg, kind) for kind in KINDS},
                "queue_url": self.cfg.queue_url,
                "visibility_extension_s": self.cfg.visibility_extension_s,
                "updated": now_iso(),
                **timing,
                **self.counts,
                **extra,
            }
        )

    def clean_workdir(self) -> None:
        """Remove workspaces a killed run left behind: no sample stays on disk across restarts."""
        self.cfg.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for stale in self.cfg.workdir.glob("msg-*"):
            log.warning(
                "removing a workspace left by an earlier run: %s", stale.name, extra={"phase": "startup"}
            )
            shutil.rmtree(stale, ignore_errors=True)

    def release_predecessor(self) -> None:
        """Hand back at once what an earlier run of this consumer held when it died (its state file
        under /run survives a restart of the daemon, not a reboot)."""
        previous = self.state.read()
        if not previous or previous.get("pid") == os.getpid():
            return
        for held in previous.get("held") or []:
            if isinstance(held, dict):
                self.requeue.release(
                    held, f"the consumer restarted (pid {previous.get('pid')} stopped holding it)"
                )

    def sandbox_problems(self) -> list[str]:
        return sandbox.problems() if self.cfg.require_sandbox else []

    def run(self, once: bool = False) -> int:
        """The loop. Returns the exit status: EXIT_OK after a drain or `once`, EXIT_IDLE when idle,
        EXIT_CONFIG when the unit's sandbox is required and not in effect."""
        refused = self.sandbox_problems()
        if refused:
            log.error(
                "refusing to start outside the unit's sandbox: %s (systemd could not build its mount "
                "namespace: a container without CAP_SYS_ADMIN?)",
                "; ".join(refused),
                extra={"phase": "startup", "reason": "; ".join(refused), "status": EXIT_CONFIG},
            )
            return EXIT_CONFIG
        self.clean_workdir()
        self.release_predecessor()
        watcher: SpotWatcher | None = None
        if self.cfg.imds_enabled:
            watcher = SpotWatcher(self)
            watcher.start()
        log.info(
            "consumer started: engines %s, queue %s; a message is held %d s at a time, extended every "
            "%d s (the queue's own visibility, %s, is only the net)",
            ", ".join(f"{kind} {engine_for(self.cfg, kind)}" for kind in KINDS),
            self.cfg.queue_url,
            self.cfg.visibility_extension_s,
            self.cfg.heartbeat_s,
            f"{self.cfg.visibility_timeout_s} s" if self.cfg.visibility_timeout_s else "not configured",
            extra={"phase": "startup"},
        )
        idle_since = now_iso()
        idle_at = time.monotonic()
        backoff = 1.0
        status = EXIT_OK
        try:
            while not self.stop.is_set():
                self._write_state("idle", idle_since=idle_since)
                try:
                    messages = self.receive()
                except (BotoCoreError, ClientError) as exc:
                    # A worker booting before the network, or an endpoint hiccup: wait and retry.
                    log.warning(
                        "receive failed, retrying in %.0f s: %s", backoff, exc, extra={"phase": "receive"}
                    )
                    self.stop.wait(backoff)
                    backoff = min(backoff * 2, self.cfg.error_backoff_max_s)
                    messages = []
                else:
                    backoff = 1.0
                if messages:
                    self.handle(messages[0])
                    idle_since, idle_at = now_iso(), time.monotonic()
                    if once:
                        break
                    continue
                if once and backoff == 1.0:
                    break
                if time.monotonic() - idle_at >= self.cfg.idle_minutes * 60:
                    log.info(
                        "idle for %.1f minutes with nothing in flight: exiting for shutdown",
                        self.cfg.idle_minutes,
                        extra={"phase": "idle", "status": EXIT_IDLE},
                    )
                    self._write_state("idle-shutdown")
                    # Out of its Auto Scaling group first, so the group does not replace it.
                    leave_group(
                        self.imds,
                        lambda: boto3.client("autoscaling", region_name=self.sqs.meta.region_name),
                        self.cfg.imds_enabled,
                    )
                    status = EXIT_IDLE
                    break
        finally:
            if watcher is not None:
                watcher.finished.set()
            self.settle()
        if self.stop.is_set():
            log.info("stopped (%s)", self.stop_reason, extra={"phase": "drain"})
            self._write_state("stopped", reason=self.stop_reason)
        elif status == EXIT_OK:
            self._write_state("stopped", reason="once")
        return status

    def settle(self) -> None:
        """Wait until the messages of every uploaded output are deleted."""
        self.outputs.settle()

    def receive(self) -> list[dict[str, Any]]:
        called = time.time()
        resp = self.sqs.receive_message(
            QueueUrl=self.cfg.queue_url,
            MaxNumberOfMessages=1,
            WaitTimeSeconds=self.cfg.poll_wait_s,
            # The rolling window from the start: a worker that dies before its first heartbeat
            # gives the message back in minutes, not after the queue's hours.
            VisibilityTimeout=self.cfg.visibility_extension_s,
            AttributeNames=["ApproximateReceiveCount"],
        )
        if self.first_receive is None:
            # Boot -> polling: the moment the first ReceiveMessage that got through was made.
            self.first_receive = called
            log.info(
                "first ReceiveMessage %.3f s after start",
                called - self.started,
                extra={"phase": "startup", "duration_s": round(called - self.started, 3)},
            )
        messages: list[dict[str, Any]] = resp.get("Messages", [])
        return messages

    # -- one message -----------------------------------------------------------------------------

    def parse(self, message: dict[str, Any]) -> WorkItem | str:
        """The work item, or why the body is none."""
        mid = message.get("MessageId", "")
        try:
            work = WorkMessage.from_body(message.get("Body", ""))
            bucket = work.bucket or self.cfg.bucket
            if not bucket:
                raise WorkMessageError("bucket", "not in the message and none configured")
        except WorkMessageError as exc:
            return str(exc)
        return WorkItem(
            message_id=mid,
            receipt=message["ReceiptHandle"],
            receive_count=int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
            received_at=time.monotonic(),
            bucket=bucket,
            message=work,
            body=str(message.get("Body", "")),
        )

    def handle(self, message: dict[str, Any]) -> None:
        item = self.parse(message)
        if isinstance(item, str):
            # Not a sample we can name, so no report can be written beside it; it never parses.
            self.requeue.dead_letter_unusable(message, item)
            return
        with SampleLog.capture(item.message_id) as sample_log:
            item.log = sample_log
            self._handle(item)

    def _handle(self, item: WorkItem) -> None:
        log.info("received", extra={**item.ctx, "phase": "receive"})
        heartbeat = Heartbeat(self.sqs, self.cfg, item)
        heartbeat.start()
        workspace = Path(tempfile.mkdtemp(prefix="msg-", dir=self.cfg.workdir))
        workspace.chmod(0o700)
        try:
            self._phase(item, "fetch")
            settled = self.pipeline.run(item, workspace, heartbeat)
            self.counts[settled] += 1
        except HandBackError:
            self._hand_back(item, heartbeat, self.stop_reason or "drain")
        except SampleFailedError as failure:
            self._failed(item, heartbeat, failure, workspace)
        except (BotoCoreError, ClientError) as exc:
            # The endpoint failing mid-run: nothing was deleted, so the message simply returns.
            aws = SampleFailedError("aws", f"S3/SQS request failed: {exc}")
            self._failed(item, heartbeat, aws, workspace)
        except Exception as exc:  # a bug or an unexpected service error must not kill the daemon
            log.exception("unexpected error", extra={**item.ctx, "phase": "unexpected"})
            bug = SampleFailedError("unexpected", f"{type(exc).__name__}: {exc}")
            self._failed(item, heartbeat, bug, workspace)
        finally:
            heartbeat.stop()
            shutil.rmtree(workspace, ignore_errors=True)
            log.info("workspace removed", extra={**item.ctx, "phase": "cleanup"})

    def _hand_back(self, item: WorkItem, heartbeat: Heartbeat, reason: str) -> None:
        heartbeat.stop()
        self.requeue.hand_back(item, reason, item.phase)
        self.counts["handed_back"] += 1

    def _failed(
        self, item: WorkItem, heartbeat: Heartbeat, failure: SampleFailedError, workspace: Path
    ) -> None:
        if self.stop.is_set() and failure.retryable:
            # What fails while the daemon is being stopped fails because of it: not the sample's.
            reason = f"{self.stop_reason or 'drain'}; {failure.phase}: {failure.reason}"
            self._hand_back(item, heartbeat, reason)
            return
        heartbeat.stop()
        self.counts["failed"] += 1
        final = not failure.retryable or item.failures + 1 >= self.cfg.max_receive_count
        self.outputs.report_failure(item, failure, workspace / ENGINE_LOG, final=final)
        if final:
            self.requeue.dead_letter(item, failure)
        else:
            self.requeue.retry(item, failure)

    def _phase(self, item: WorkItem, phase: str) -> None:
        item.phase = phase
        held = {
            "message_id": item.message_id,
            "receipt": item.receipt,
            "receive_count": item.receive_count,
            "key": item.key,
            "phase": phase,
            "body": item.body,
        }
        self._write_state(
            "working",
            message_id=item.message_id,
            key=item.key,
            sample=item.sample.name,
            phase=phase,
            held=[held],
        )
