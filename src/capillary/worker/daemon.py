"""The worker daemon: one work message at a time, from S3 tarball to report, losing no sample.

For each message: a fresh 0700 workspace on the data volume; a streaming download verified against
the object's `sha256` metadata (or its single-part ETag); safe extraction; the engine as a
subprocess in its own process group; an output tarball holding only this run's output directory
and `run.json`; upload to `outputs/`; and only then the message is deleted. Whatever happens, the
workspace is removed.

A failure writes `outputs/…-error.json` (reason, attempt, log tail — never VCF contents) and
leaves the message to come back; after `max_receive_count` receives the queue moves it to the
dead-letter queue, and the last report says so. A drain (SIGTERM, or a spot interruption notice
read from IMDSv2) stops the engine, hands the message back at once and exits. With nothing to do
for `idle_minutes` the daemon exits with EXIT_IDLE, on which the unit powers the worker off.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from capillary import __version__
from capillary.contract.layout import EXIT_IDLE, EXIT_OK
from capillary.contract.samples import SampleKey, SampleKeyError
from capillary.contract.tarball import TarballError, safe_extract
from capillary.worker.config import SQS_MAX_VISIBILITY_S, ConsumerConfig
from capillary.worker.engines import (
    EngineInputError,
    EngineSetupError,
    ProcessOutcome,
    get_engine,
    run_process,
)
from capillary.worker.imds import IMDSClient, IMDSError
from capillary.worker.state import StateFile

log = logging.getLogger("capillary.worker.daemon")

CHUNK = 1024 * 1024
# Leave this much of SQS's 12-hour window for the report and the hand-back.
_VISIBILITY_MARGIN_S = 120
_CLAIM_PREFIX = "outputs/.claims/"
_META_INPUT_ETAG = "input-etag"
_META_INPUT_SHA256 = "input-sha256"


class SampleFailedError(Exception):
    """This attempt cannot produce an output; `reason` goes into the error report."""

    def __init__(self, phase: str, reason: str, *, retryable: bool = True) -> None:
        super().__init__(reason)
        self.phase = phase
        self.reason = reason
        self.retryable = retryable


class HandBackError(Exception):
    """A drain interrupted the run: return the message to the queue at once, no report."""


@dataclass
class WorkItem:
    message_id: str
    receipt: str
    attempt: int
    received_at: float
    bucket: str
    key: str
    sample: SampleKey
    body: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ctx(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "key": self.key,
            "sample": self.sample.name,
            "attempt": self.attempt,
        }


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _looks_like_vcf_data(line: str) -> bool:
    """VCF header/records never go into a report: they may identify a patient."""
    stripped = line.lstrip()
    return stripped.startswith(("#CHROM", "##")) or stripped.count("\t") >= 4


def log_tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of an engine log, without anything that looks like VCF content."""
    if not path.exists():
        return []
    size = path.stat().st_size
    with path.open("rb") as fh:
        fh.seek(max(0, size - 64 * 1024))
        text = fh.read().decode(errors="replace")
    kept = [ln[:500] for ln in text.splitlines() if not _looks_like_vcf_data(ln)]
    return kept[-lines:]


class Heartbeat(threading.Thread):
    """Keeps a message invisible while it is worked on, within SQS's 12-hour ceiling.

    Extends at once (the queue's own timeout may be shorter than ours), then every `heartbeat_s`.
    When the next extension would pass the ceiling it sets `exhausted`, which stops the engine.
    """

    def __init__(self, consumer: Consumer, item: WorkItem) -> None:
        super().__init__(name="visibility-heartbeat", daemon=True)
        self.consumer = consumer
        self.item = item
        self.done = threading.Event()
        self.exhausted = threading.Event()

    def extend_once(self) -> bool:
        cfg = self.consumer.cfg
        elapsed = time.monotonic() - self.item.received_at
        remaining = SQS_MAX_VISIBILITY_S - _VISIBILITY_MARGIN_S - elapsed
        timeout = int(min(cfg.visibility_timeout_s, remaining))
        if timeout <= cfg.heartbeat_s:
            log.error(
                "visibility cannot be extended past the SQS 12-hour limit; giving up on this attempt",
                extra={**self.item.ctx, "phase": "heartbeat"},
            )
            self.exhausted.set()
            return False
        try:
            self.consumer.sqs.change_message_visibility(
                QueueUrl=cfg.queue_url, ReceiptHandle=self.item.receipt, VisibilityTimeout=timeout
            )
        except (BotoCoreError, ClientError) as exc:
            # Keep trying: the next beat may get through before the message becomes visible.
            log.warning("visibility extension failed: %s", exc, extra={**self.item.ctx, "phase": "heartbeat"})
        return True

    def run(self) -> None:
        while not self.done.is_set():
            if not self.extend_once():
                return
            self.done.wait(self.consumer.cfg.heartbeat_s)

    def stop(self) -> None:
        self.done.set()
        if self.is_alive():
            self.join(timeout=30)


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
                "updated": _now_iso(),
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
            body = json.loads(message.get("Body", ""))
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
            key = str(body["key"])
            bucket = str(body.get("bucket") or self.cfg.bucket)
            if not bucket:
                raise ValueError("no bucket in the message and none configured")
            sample = SampleKey.parse(key)
        except (ValueError, KeyError, SampleKeyError) as exc:
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
            key=key,
            sample=sample,
            body=body,
        )

    def handle(self, message: dict[str, Any]) -> None:
        item = self.parse(message)
        if item is None:
            self._set_visibility(message["ReceiptHandle"], self.cfg.retry_backoff_s, {})
            return
        log.info("received", extra={**item.ctx, "phase": "receive"})
        heartbeat = Heartbeat(self, item)
        heartbeat.start()
        workspace = Path(tempfile.mkdtemp(prefix="msg-", dir=self.cfg.workdir))
        workspace.chmod(0o700)
        try:
            self._write_state("working", message_id=item.message_id, key=item.key, sample=item.sample.name)
            self.process(item, workspace, heartbeat)
        except HandBackError:
            heartbeat.stop()
            self._set_visibility(item.receipt, 0, item.ctx)
            self.counts["handed_back"] += 1
            log.warning(
                "handed the message back (%s)", self.stop_reason, extra={**item.ctx, "phase": "drain"}
            )
        except SampleFailedError as failure:
            heartbeat.stop()
            self.counts["failed"] += 1
            self.report_failure(item, failure, workspace)
        except (BotoCoreError, ClientError) as exc:
            # The endpoint failing mid-run: nothing was deleted, so the message simply returns.
            heartbeat.stop()
            self.counts["failed"] += 1
            self.report_failure(item, SampleFailedError("aws", f"S3/SQS request failed: {exc}"), workspace)
        except Exception as exc:  # a bug or an unexpected service error must not kill the daemon
            heartbeat.stop()
            self.counts["failed"] += 1
            log.exception("unexpected error", extra={**item.ctx, "phase": "unexpected"})
            self.report_failure(
                item, SampleFailedError("unexpected", f"{type(exc).__name__}: {exc}"), workspace
            )
        finally:
            heartbeat.stop()
            shutil.rmtree(workspace, ignore_errors=True)
            log.info("workspace removed", extra={**item.ctx, "phase": "cleanup"})

    def _set_visibility(self, receipt: str, seconds: int, ctx: dict[str, Any]) -> None:
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.cfg.queue_url, ReceiptHandle=receipt, VisibilityTimeout=seconds
            )
        except (BotoCoreError, ClientError) as exc:
            log.warning("could not change visibility: %s", exc, extra={**ctx, "phase": "visibility"})

    def _phase(self, item: WorkItem, phase: str) -> None:
        self._write_state(
            "working", message_id=item.message_id, key=item.key, sample=item.sample.name, phase=phase
        )

    def _check_drain(self) -> None:
        if self.stop.is_set():
            raise HandBackError()

    def process(self, item: WorkItem, ws: Path, heartbeat: Heartbeat) -> None:
        ctx = item.ctx
        # 1. The input as it is now; its tag keys idempotence and the download.
        try:
            head = self.s3.head_object(Bucket=item.bucket, Key=item.key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NotFound"):
                raise SampleFailedError(
                    "download",
                    f"input s3://{item.bucket}/{item.key} no longer exists (deleted before download)",
                ) from exc
            raise
        etag = str(head["ETag"]).strip('"')
        expected_sha = str(head.get("Metadata", {}).get("sha256", "")).lower()
        if self.already_done(item, etag, expected_sha):
            self.delete(item)
            self.counts["skipped"] += 1
            log.info(
                "output for this input already exists: deleted the message",
                extra={**ctx, "phase": "idempotence"},
            )
            return
        self._check_drain()

        # 2. Streaming download, hashing as the bytes arrive.
        self._phase(item, "download")
        t0 = time.monotonic()
        tarball = ws / "input.tar.gz"
        sha, md5, size = self.download(item, etag, head, tarball)
        item.timings["download_s"] = time.monotonic() - t0
        if expected_sha:
            if sha != expected_sha:
                raise SampleFailedError(
                    "verify", f"sha256 mismatch: metadata says {expected_sha}, downloaded {sha}"
                )
            verified = "sha256 metadata"
        elif "-" not in etag and md5 is not None:
            if md5 != etag:
                raise SampleFailedError(
                    "verify", f"MD5 mismatch with the single-part ETag {etag}: downloaded {md5}"
                )
            verified = "etag md5"
        else:
            verified = "unverified (multipart upload without sha256 metadata)"
            log.warning(
                "input has no sha256 metadata and a multipart ETag: not verified",
                extra={**ctx, "phase": "verify"},
            )
        self._check_drain()

        # 3. Safe extraction; the tarball itself goes as soon as it is unpacked.
        self._phase(item, "extract")
        t0 = time.monotonic()
        try:
            sample = safe_extract(tarball, ws / "input")
        except TarballError as exc:
            raise SampleFailedError("extract", f"the tarball was refused: {exc}", retryable=False) from exc
        tarball.unlink()
        item.timings["extract_s"] = time.monotonic() - t0
        self._check_drain()

        # 4. The engine, in its own process group.
        outdir = ws / "out" / item.sample.name
        outdir.mkdir(parents=True)
        try:
            cmd = self.engine.command(sample, item.sample.name, outdir)
        except EngineInputError as exc:
            raise SampleFailedError("options", f"the sample cannot be run: {exc}", retryable=False) from exc
        except EngineSetupError as exc:
            raise SampleFailedError("engine-setup", str(exc)) from exc
        log.info(
            "engine %s starting", self.cfg.engine, extra={**ctx, "phase": "engine", "engine": self.cfg.engine}
        )
        engine_log = ws / "engine.log"
        self._phase(item, "engine")
        outcome = run_process(cmd, engine_log, self.cfg.engine_timeout_s, (self.stop, heartbeat.exhausted))
        item.timings["engine_s"] = outcome.duration_s
        self._engine_outcome(item, outcome)
        log.info(
            "engine finished in %.1f s",
            outcome.duration_s,
            extra={**ctx, "phase": "engine", "duration_s": round(outcome.duration_s, 2)},
        )

        # 5. Output tarball: this run's output directory and run.json, nothing else.
        self._phase(item, "package")
        t0 = time.monotonic()
        run_info = self.run_json(item, etag, sha, size, verified, sample.sha256, outdir)
        (outdir / "run.json").write_text(json.dumps(run_info, indent=2, sort_keys=True) + "\n")
        package = ws / "output.tar.gz"
        with tarfile.open(package, "w:gz", compresslevel=6) as tar:
            tar.add(outdir, arcname=item.sample.name, filter=_regular_files_only)
        item.timings["package_s"] = time.monotonic() - t0
        self._check_drain()

        # 6. Upload (one output per sample, even with two workers racing), then delete.
        self._phase(item, "upload")
        self.upload(item, package, etag, sha)

    def _engine_outcome(self, item: WorkItem, outcome: ProcessOutcome) -> None:
        if outcome.stopped and self.stop.is_set():
            raise HandBackError()
        if outcome.stopped:
            raise SampleFailedError(
                "engine",
                "the run reached SQS's 12-hour visibility limit; "
                "stopped so the message returns with this report",
            )
        if outcome.timed_out:
            raise SampleFailedError(
                "engine", f"the engine ran longer than engine_timeout_s ({self.cfg.engine_timeout_s} s)"
            )
        if outcome.returncode != 0:
            raise SampleFailedError("engine", f"the engine exited with status {outcome.returncode}")

    def already_done(self, item: WorkItem, etag: str, sha: str) -> bool:
        try:
            out = self.s3.head_object(Bucket=item.bucket, Key=item.sample.output_key)
        except ClientError:
            return False
        meta = out.get("Metadata", {})
        if sha and meta.get(_META_INPUT_SHA256) == sha:
            return True
        return bool(meta.get(_META_INPUT_ETAG) == etag)

    def download(
        self, item: WorkItem, etag: str, head: dict[str, Any], dest: Path
    ) -> tuple[str, str | None, int]:
        if int(head.get("ContentLength", 0)) > self.cfg.max_tarball_bytes:
            raise SampleFailedError(
                "download",
                f"input is {head['ContentLength']} bytes; max_tarball_bytes is {self.cfg.max_tarball_bytes}",
            )
        want_md5 = not head.get("Metadata", {}).get("sha256")
        try:
            obj = self.s3.get_object(Bucket=item.bucket, Key=item.key, IfMatch=etag)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404"):
                raise SampleFailedError(
                    "download", f"input s3://{item.bucket}/{item.key} was deleted before download"
                ) from exc
            if code in ("PreconditionFailed", "412"):
                raise SampleFailedError(
                    "download", "input changed while being fetched; the new upload has its own message"
                ) from exc
            raise
        sha = hashlib.sha256()
        md5 = hashlib.md5(usedforsecurity=False) if want_md5 else None
        size = 0
        body = obj["Body"]
        with dest.open("wb") as fh:
            for chunk in body.iter_chunks(CHUNK):
                if self.stop.is_set():
                    body.close()
                    raise HandBackError()
                fh.write(chunk)
                sha.update(chunk)
                if md5 is not None:
                    md5.update(chunk)
                size += len(chunk)
        return sha.hexdigest(), md5.hexdigest() if md5 is not None else None, size

    def run_json(
        self,
        item: WorkItem,
        etag: str,
        sha: str,
        size: int,
        verified: str,
        members: dict[str, str],
        outdir: Path,
    ) -> dict[str, Any]:
        outputs = {
            p.relative_to(outdir).as_posix(): _sha256_file(p)
            for p in sorted(outdir.rglob("*"))
            if p.is_file() and not p.is_symlink()
        }
        return {
            "capillary": __version__,
            "versions": self.engine.versions(),
            "worker": self.identity(),
            "message_id": item.message_id,
            "attempt": item.attempt,
            "sample": item.sample.name,
            "input": {
                "bucket": item.bucket,
                "key": item.key,
                "etag": etag,
                "size": size,
                "sha256": sha,
                "verified": verified,
            },
            "input_members_sha256": members,
            "outputs_sha256": outputs,
            "timings_s": {k: round(v, 3) for k, v in item.timings.items()},
            "finished": _now_iso(),
        }

    # -- output, claims and reports --------------------------------------------------------------

    def _claim(self, item: WorkItem, etag: str) -> bool:
        """Take the right to write this sample's output (S3 conditional create); a stale claim
        (a worker killed mid-upload) is taken over after `claim_ttl_s`."""
        key = f"{_CLAIM_PREFIX}{item.sample.name}.json"
        body = json.dumps({"message_id": item.message_id, "input_etag": etag, "time": _now_iso()}).encode()
        try:
            self.s3.put_object(Bucket=item.bucket, Key=key, Body=body, IfNoneMatch="*")
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in (
                "PreconditionFailed",
                "412",
                "ConditionalRequestConflict",
            ):
                raise
        try:
            claim = self.s3.head_object(Bucket=item.bucket, Key=key)
        except ClientError:
            return self._claim(item, etag) if not self.stop.is_set() else False
        age = (dt.datetime.now(dt.UTC) - claim["LastModified"]).total_seconds()
        if age < self.cfg.claim_ttl_s:
            return False
        try:
            self.s3.put_object(Bucket=item.bucket, Key=key, Body=body, IfMatch=claim["ETag"])
            return True
        except ClientError:
            return False

    def _release_claim(self, item: WorkItem) -> None:
        with contextlib.suppress(BotoCoreError, ClientError):
            self.s3.delete_object(Bucket=item.bucket, Key=f"{_CLAIM_PREFIX}{item.sample.name}.json")

    def upload(self, item: WorkItem, package: Path, etag: str, sha: str) -> None:
        ctx = item.ctx
        try:
            claimed = self._claim(item, etag)
        except (BotoCoreError, ClientError) as exc:
            raise SampleFailedError("upload", f"output upload failed: {exc}") from exc
        if claimed and self.already_done(item, etag, sha):
            # Another worker finished between our first check and the claim.
            self._release_claim(item)
            claimed = False
        if not claimed:
            if self.already_done(item, etag, sha):
                self.delete(item)
                self.counts["skipped"] += 1
                log.info(
                    "another worker wrote this output: deleted the message", extra={**ctx, "phase": "upload"}
                )
            else:
                log.warning(
                    "another worker is writing this output: message returns later",
                    extra={**ctx, "phase": "upload"},
                )
                self._set_visibility(item.receipt, self.cfg.retry_backoff_s, ctx)
            return
        try:
            t0 = time.monotonic()
            self.s3.upload_file(
                str(package),
                item.bucket,
                item.sample.output_key,
                ExtraArgs={
                    "ContentType": "application/gzip",
                    "Metadata": {
                        _META_INPUT_ETAG: etag,
                        _META_INPUT_SHA256: sha,
                        "sha256": _sha256_file(package),
                        "message-id": item.message_id,
                        "capillary-version": __version__,
                    },
                },
            )
            item.timings["upload_s"] = time.monotonic() - t0
        except (BotoCoreError, ClientError, OSError) as exc:
            # Not uploaded, so not deleted: the message comes back and the sample runs again.
            raise SampleFailedError("upload", f"output upload failed: {exc}") from exc
        finally:
            self._release_claim(item)
        with contextlib.suppress(BotoCoreError, ClientError):
            self.s3.delete_object(Bucket=item.bucket, Key=item.sample.error_key)
        self.delete(item)
        self.counts["processed"] += 1
        log.info(
            "output uploaded to %s; message deleted",
            item.sample.output_key,
            extra={**ctx, "phase": "done", "duration_s": round(time.monotonic() - item.received_at, 2)},
        )

    def delete(self, item: WorkItem) -> None:
        """Delete the message; if that fails the output is already safe, so the message simply
        returns and is deleted as already done — never an error report."""
        try:
            self.sqs.delete_message(QueueUrl=self.cfg.queue_url, ReceiptHandle=item.receipt)
        except (BotoCoreError, ClientError) as exc:
            log.warning(
                "could not delete the message (it will return and be skipped as done): %s",
                exc,
                extra={**item.ctx, "phase": "delete"},
            )

    def report_failure(self, item: WorkItem, failure: SampleFailedError, ws: Path) -> None:
        final = item.attempt >= self.cfg.max_receive_count
        report = {
            "key": item.key,
            "sample": item.sample.name,
            "message_id": item.message_id,
            "phase": failure.phase,
            "reason": failure.reason,
            "retryable": failure.retryable,
            "attempt": item.attempt,
            "max_receive_count": self.cfg.max_receive_count,
            "final_attempt": final,
            "next": (
                "this was the last attempt: the queue moves the message to the dead-letter queue"
                if final
                else f"the message returns for attempt {item.attempt + 1} of {self.cfg.max_receive_count}"
            ),
            "dead_letter_queue": final,
            "log_tail": log_tail(ws / "engine.log", self.cfg.log_tail_lines),
            "engine": self.cfg.engine,
            "capillary": __version__,
            "worker": self.identity(),
            "time": _now_iso(),
        }
        log.error(
            "attempt %d failed: %s%s",
            item.attempt,
            failure.reason,
            " (last attempt: going to the dead-letter queue)" if final else "",
            extra={**item.ctx, "phase": failure.phase, "reason": failure.reason},
        )
        try:
            self.s3.put_object(
                Bucket=item.bucket,
                Key=item.sample.error_key,
                Body=json.dumps(report, indent=2).encode(),
                ContentType="application/json",
            )
        except (BotoCoreError, ClientError) as exc:
            log.error("could not write the error report: %s", exc, extra={**item.ctx, "phase": "report"})
        # Leave the message to return (after a short backoff); the queue's redrive policy takes it
        # to the dead-letter queue after max_receive_count receives.
        self._set_visibility(item.receipt, self.cfg.retry_backoff_s, item.ctx)


def _regular_files_only(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Only directories and regular files go into an output: no links out of the workspace."""
    if not (info.isfile() or info.isdir()):
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
