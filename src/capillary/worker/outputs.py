"""Where an attempt ends in the bucket and the queue: the already-done check, the claim, the
upload, the error report and the message's deletion.

One output per sample even with workers racing: before uploading, a worker takes the sample's
claim (an S3 conditional create under `CLAIMS_PREFIX`); a worker that finds the claim taken
either deletes its message (the output is there) or lets it return later. The message is deleted
only once the output is safe. A failure writes `outputs/…-error.json` (reason, attempt, log tail
- never VCF contents) and leaves the message to return, until the queue's redrive policy moves it
to the dead-letter queue.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from capillary import __version__
from capillary.contract.message import (
    META_CAPILLARY_VERSION,
    META_INPUT_ETAG,
    META_INPUT_SHA256,
    META_MESSAGE_ID,
    META_SHA256,
    claim_key,
)
from capillary.worker.config import ConsumerConfig
from capillary.worker.item import SampleFailedError, Settled, WorkItem, now_iso
from capillary.worker.visibility import change_visibility

# The daemon's logger: every line the worker logs carries the same `logger` name.
log = logging.getLogger("capillary.worker.daemon")


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


def is_output_of(recorded: Mapping[str, str] | None, etag: str, sha256: str = "") -> bool:
    """Whether an output's metadata (`recorded`, None: no output) says it was made from this input."""
    if recorded is None:
        return False
    if sha256 and recorded.get(META_INPUT_SHA256) == sha256:
        return True
    return bool(recorded.get(META_INPUT_ETAG) == etag)


class Outputs:
    """The output side of one worker: its S3 and SQS calls after (and before) a run."""

    def __init__(
        self,
        cfg: ConsumerConfig,
        s3: Any,
        sqs: Any,
        stop: threading.Event,
        identity: Callable[[], dict[str, str]],
    ) -> None:
        self.cfg = cfg
        self.s3 = s3
        self.sqs = sqs
        self.stop = stop
        self.identity = identity

    def recorded_input(self, item: WorkItem) -> dict[str, str] | None:
        """The metadata of this sample's output (which input made it), or None when there is none."""
        try:
            out = self.s3.head_object(Bucket=item.bucket, Key=item.sample.output_key)
        except ClientError:
            return None
        recorded: dict[str, str] = out.get("Metadata", {})
        return recorded

    def already_done(self, item: WorkItem, etag: str, sha: str) -> bool:
        return is_output_of(self.recorded_input(item), etag, sha)

    def _claim(self, item: WorkItem, etag: str) -> bool:
        """Take the right to write this sample's output (S3 conditional create); a stale claim
        (a worker killed mid-upload) is taken over after `claim_ttl_s`."""
        key = claim_key(item.sample)
        body = json.dumps({"message_id": item.message_id, "input_etag": etag, "time": now_iso()}).encode()
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
            self.s3.delete_object(Bucket=item.bucket, Key=claim_key(item.sample))

    def upload(self, item: WorkItem, package: Path, package_sha256: str, etag: str, sha: str) -> Settled:
        """Upload the output tarball made from the input (`etag`, `sha`), then delete the message."""
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
                log.info(
                    "another worker wrote this output: deleted the message", extra={**ctx, "phase": "upload"}
                )
                return "skipped"
            log.warning(
                "another worker is writing this output: message returns later",
                extra={**ctx, "phase": "upload"},
            )
            change_visibility(self.sqs, self.cfg.queue_url, item.receipt, self.cfg.retry_backoff_s, ctx)
            return "deferred"
        try:
            t0 = time.monotonic()
            self.s3.upload_file(
                str(package),
                item.bucket,
                item.sample.output_key,
                ExtraArgs={
                    "ContentType": "application/gzip",
                    "Metadata": {
                        META_INPUT_ETAG: etag,
                        META_INPUT_SHA256: sha,
                        META_SHA256: package_sha256,
                        META_MESSAGE_ID: item.message_id,
                        META_CAPILLARY_VERSION: __version__,
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
        log.info(
            "output uploaded to %s; message deleted",
            item.sample.output_key,
            extra={**ctx, "phase": "done", "duration_s": round(time.monotonic() - item.received_at, 2)},
        )
        return "processed"

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

    def report_failure(self, item: WorkItem, failure: SampleFailedError, engine_log: Path) -> None:
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
            "log_tail": log_tail(engine_log, self.cfg.log_tail_lines),
            "engine": self.cfg.engine,
            "capillary": __version__,
            "worker": self.identity(),
            "time": now_iso(),
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
        change_visibility(self.sqs, self.cfg.queue_url, item.receipt, self.cfg.retry_backoff_s, item.ctx)
