"""The worker daemon: one work message at a time, from S3 tarball to report, losing no sample.

This module is the loop: start-up, receive, the drain (signal handlers and the spot watcher only
set an Event), idle exit, and the dispatch of one message. For each message: a fresh 0700
workspace on the data volume, a heartbeat keeping the message invisible (`visibility`), the
sample's pipeline (`pipeline`: download, verify, extract, engine, package) and the output side
(`outputs`: claim, upload, error report, delete); whatever happens, the workspace is removed.

A failure writes `outputs/…-error.json` (reason, attempt, log tail — never VCF contents) and
leaves the message to come back; after `max_receive_count` receives the queue moves it to the
dead-letter queue, and the last report says so. A drain (SIGTERM, or a spot interruption notice
read from IMDSv2) stops the engine, hands the message back at once and exits. With nothing to do
for `idle_minutes` the daemon exits with EXIT_IDLE, on which the unit powers the worker off.
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

from capillary.contract.layout import EXIT_IDLE, EXIT_OK
from capillary.contract.message import WorkMessage, WorkMessageError
from capillary.worker.config import ConsumerConfig
from capillary.worker.engines import get_engine
from capillary.worker.fleet import leave_group
from capillary.worker.imds import IMDSClient, IMDSError
from capillary.worker.item import ENGINE_LOG, HandBackError, SampleFailedError, WorkItem, now_iso
from capillary.worker.outputs import Outputs
from capillary.worker.pipeline import SamplePipeline
from capillary.worker.state import StateFile
from capillary.worker.visibility import Heartbeat, change_visibility

log = logging.getLogger("capillary.worker.daemon")


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
        self.engine = get_engine(cfg.engine, cfg)
        self.stop = threading.Event()
        self.stop_reason = ""
        self.state = StateFile(cfg.state_file)
        self.counts = {"processed": 0, "failed": 0, "handed_back": 0, "skipped": 0}
        self._identity: dict[str, str] | None = None
        self.outputs = Outputs(cfg, self.s3, self.sqs, self.stop, self.identity)
        self.pipeline = SamplePipeline(
            cfg, self.s3, self.engine, self.outputs, self.stop, self.identity, self._phase
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
        self.state.write(
            {
                "state": state,
                "pid": os.getpid(),
                "engine": self.cfg.engine,
                "queue_url": self.cfg.queue_url,
                "updated": now_iso(),
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

    def run(self, once: bool = False) -> int:
        """The loop. Returns the exit status: EXIT_OK after a drain or `once`, EXIT_IDLE when idle."""
        self.clean_workdir()
        watcher: SpotWatcher | None = None
        if self.cfg.imds_enabled:
            watcher = SpotWatcher(self)
            watcher.start()
        log.info(
            "consumer started: engine %s, queue %s",
            self.cfg.engine,
            self.cfg.queue_url,
            extra={"phase": "startup"},
        )
        idle_since = time.monotonic()
        backoff = 1.0
        status = EXIT_OK
        try:
            while not self.stop.is_set():
                self._write_state("idle", idle_since_s=round(time.monotonic() - idle_since, 1))
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
                    idle_since = time.monotonic()
                    if once:
                        break
                    continue
                if once and backoff == 1.0:
                    break
                if time.monotonic() - idle_since >= self.cfg.idle_minutes * 60:
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
        if self.stop.is_set():
            log.info("stopped (%s)", self.stop_reason, extra={"phase": "drain"})
            self._write_state("stopped", reason=self.stop_reason)
        elif status == EXIT_OK:
            self._write_state("stopped", reason="once")
        return status

    def receive(self) -> list[dict[str, Any]]:
        resp = self.sqs.receive_message(
            QueueUrl=self.cfg.queue_url,
            MaxNumberOfMessages=1,
            WaitTimeSeconds=self.cfg.poll_wait_s,
            AttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = resp.get("Messages", [])
        return messages

    # -- one message -----------------------------------------------------------------------------

    def parse(self, message: dict[str, Any]) -> WorkItem | None:
        mid = message.get("MessageId", "")
        attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        try:
            work = WorkMessage.from_body(message.get("Body", ""))
            bucket = work.bucket or self.cfg.bucket
            if not bucket:
                raise WorkMessageError("bucket", "not in the message and none configured")
        except WorkMessageError as exc:
            # Not a sample we can name, so no report can be written beside it: leave it for the DLQ.
            log.error(
                "unusable work message (%s): leaving it for the dead-letter queue",
                exc,
                extra={"message_id": mid, "attempt": attempt, "phase": "parse"},
            )
            return None
        return WorkItem(
            message_id=mid,
            receipt=message["ReceiptHandle"],
            attempt=attempt,
            received_at=time.monotonic(),
            bucket=bucket,
            message=work,
        )

    def handle(self, message: dict[str, Any]) -> None:
        item = self.parse(message)
        if item is None:
            self._set_visibility(message["ReceiptHandle"], self.cfg.retry_backoff_s, {})
            return
        log.info("received", extra={**item.ctx, "phase": "receive"})
        heartbeat = Heartbeat(self.sqs, self.cfg, item)
        heartbeat.start()
        workspace = Path(tempfile.mkdtemp(prefix="msg-", dir=self.cfg.workdir))
        workspace.chmod(0o700)
        try:
            self._write_state("working", message_id=item.message_id, key=item.key, sample=item.sample.name)
            settled = self.pipeline.run(item, workspace, heartbeat)
            if settled != "deferred":
                self.counts[settled] += 1
        except HandBackError:
            heartbeat.stop()
            self._set_visibility(item.receipt, 0, item.ctx)
            self.counts["handed_back"] += 1
            log.warning(
                "handed the message back (%s)", self.stop_reason, extra={**item.ctx, "phase": "drain"}
            )
        except SampleFailedError as failure:
            heartbeat.stop()
            self._failed(item, failure, workspace)
        except (BotoCoreError, ClientError) as exc:
            # The endpoint failing mid-run: nothing was deleted, so the message simply returns.
            heartbeat.stop()
            self._failed(item, SampleFailedError("aws", f"S3/SQS request failed: {exc}"), workspace)
        except Exception as exc:  # a bug or an unexpected service error must not kill the daemon
            heartbeat.stop()
            log.exception("unexpected error", extra={**item.ctx, "phase": "unexpected"})
            self._failed(item, SampleFailedError("unexpected", f"{type(exc).__name__}: {exc}"), workspace)
        finally:
            heartbeat.stop()
            shutil.rmtree(workspace, ignore_errors=True)
            log.info("workspace removed", extra={**item.ctx, "phase": "cleanup"})

    def _failed(self, item: WorkItem, failure: SampleFailedError, workspace: Path) -> None:
        self.counts["failed"] += 1
        self.outputs.report_failure(item, failure, workspace / ENGINE_LOG)

    def _set_visibility(self, receipt: str, seconds: int, ctx: dict[str, Any]) -> None:
        change_visibility(self.sqs, self.cfg.queue_url, receipt, seconds, ctx)

    def _phase(self, item: WorkItem, phase: str) -> None:
        self._write_state(
            "working", message_id=item.message_id, key=item.key, sample=item.sample.name, phase=phase
        )
