"""Where an attempt ends in the bucket: the already-done check, the upload, the error report
and the message's deletion.

One output per sample even with workers racing: the output is written with a conditional PUT
(`If-None-Match: *`), so of two workers finishing the same sample one writes and the other finds
the output there, made from the same input, and deletes its message. An output made from an
older upload of the same key is replaced only as the object it is (`If-Match` on its ETag). The
message is deleted only once the output is safe (in the background: the daemon goes on to its
next receive, and waits for it before it exits). An upload that fails is retried with backoff for
`upload_retry_s` while the heartbeat keeps the message: the engine's output waits in the
workspace, and an S3 outage never re-runs the engine. A failure writes `outputs/…-error.json`
(reason, attempt, log tail - never VCF contents); what becomes of the message is `requeue`'s.

The run record (`outputs/…-run.json`, a copy of the output's `run.json`) goes up after its output,
with the same once-only rules, and the message is deleted only once both are in: a reader never
meets a record whose output is missing. A worker that stops between the two leaves an output
without its record for a moment; the message returns, the next attempt finds the output done and
writes the record from the output's own `run.json` (`ensure_record`), so every output gets one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tarfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError

from capillary import __version__
from capillary.contract.message import (
    META_CAPILLARY_VERSION,
    META_INPUT_ETAG,
    META_INPUT_SHA256,
    META_MESSAGE_ID,
    META_OUTPUT_SHA256,
    META_SHA256,
)
from capillary.contract.samples import OUTPUT_PREFIX
from capillary.worker.config import ConsumerConfig, engine_for
from capillary.worker.item import HandBackError, SampleFailedError, Settled, WorkItem, now_iso

# The daemon's logger: every line the worker logs carries the same `logger` name.
log = logging.getLogger("capillary.worker.daemon")

# S3's largest single PUT: a conditional write of a larger output would need a multipart upload.
S3_MAX_PUT_BYTES = 5 * 1024**3
_PRECONDITION_FAILED = ("PreconditionFailed", "412", "ConditionalRequestConflict")
# The errors an upload retries: the endpoint unreachable or failing (never a refused request).
_UPLOAD_ERRORS = (BotoCoreError, ClientError, S3UploadFailedError, OSError)
_T = TypeVar("_T")


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
    """The output side of one worker: its S3 calls after (and before) a run, and the delete."""

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
        # One thread: deletes happen in the order the uploads did.
        self._after = ThreadPoolExecutor(max_workers=1, thread_name_prefix="after-upload")

    def recorded_input(self, item: WorkItem) -> dict[str, str] | None:
        """The metadata of this sample's output (which input made it), or None when there is none.

        One listing of the sample's names under outputs/ answers both questions a run asks of
        the bucket - is there an output (then its metadata is read), is there an earlier
        attempt's report (then it goes once the output is in: `item.stale_report`) - so a first
        run costs one call before its GET, and none after its upload to tidy up."""
        found: set[str] = set()
        wanted = {item.sample.output_key, item.sample.error_key, item.sample.run_key}
        kwargs: dict[str, Any] = {"Bucket": item.bucket, "Prefix": f"{OUTPUT_PREFIX}{item.sample.name}-"}
        while True:
            page = self.s3.list_objects_v2(**kwargs)
            found |= {o["Key"] for o in page.get("Contents", [])} & wanted
            if found == wanted or not page.get("IsTruncated"):
                break
            kwargs["ContinuationToken"] = page["NextContinuationToken"]
        item.stale_report = item.sample.error_key in found
        item.record_found = item.sample.run_key in found
        if item.sample.output_key not in found:
            return None
        head = self._head_output(item)
        return None if head is None else dict(head.get("Metadata", {}))

    def _head_output(self, item: WorkItem, key: str | None = None) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self.s3.head_object(Bucket=item.bucket, Key=key or item.sample.output_key)
        except ClientError:
            return None
        return head

    def upload(
        self, item: WorkItem, package: Path, package_sha256: str, etag: str, sha: str, record: bytes
    ) -> Settled:
        """Upload the output tarball made from the input (`etag`, `sha`), then its run record
        (`record`: the output's run.json), then delete the message.

        Retried with backoff for `upload_retry_s` (once only during a drain); the package is kept
        until it is in S3."""
        ctx = item.ctx
        size = package.stat().st_size
        if size > S3_MAX_PUT_BYTES:
            raise SampleFailedError(
                "package", f"the output is {size} bytes, more than S3's {S3_MAX_PUT_BYTES}-byte single PUT"
            )
        metadata = {
            META_INPUT_ETAG: etag,
            META_INPUT_SHA256: sha,
            META_SHA256: package_sha256,
            META_MESSAGE_ID: item.message_id,
            META_CAPILLARY_VERSION: __version__,
        }
        t0 = time.monotonic()
        deadline = t0 + self.cfg.upload_retry_s
        written = self._retrying(
            item, "output upload", deadline, lambda: self._write_once(item, package, metadata, etag, sha)
        )
        if not written:
            self.ensure_record(item)
            self.delete(item)
            log.info(
                "another worker wrote this output: deleted the message", extra={**ctx, "phase": "upload"}
            )
            return "skipped"
        try:
            self._retrying(
                item, "run record upload", deadline, lambda: self._write_record(item, record, package_sha256)
            )
        except SampleFailedError as exc:
            # The output is safe: not the sample's failure. The message returns, and the attempt
            # that finds the output done writes the record from the output's own run.json.
            log.error("%s; the message returns for it", exc.reason, extra={**ctx, "phase": "upload"})
            raise HandBackError() from exc
        item.timings["upload_s"] = time.monotonic() - t0
        log.info(
            "output uploaded to %s",
            item.sample.output_key,
            extra={**ctx, "phase": "done", "duration_s": round(time.monotonic() - item.received_at, 2)},
        )
        # The sample is done: the bookkeeping after it overlaps with the next receive.
        self._after.submit(self._tidy, item)
        return "processed"

    def _retrying(self, item: WorkItem, what: str, deadline: float, write: Callable[[], _T]) -> _T:
        """`write()`, retried with backoff until `deadline` (one try during a drain)."""
        delay = 1.0
        tries = 0
        while True:
            tries += 1
            try:
                return write()
            except _UPLOAD_ERRORS as exc:
                if self.stop.is_set() or time.monotonic() + delay > deadline:
                    raise SampleFailedError(
                        "upload", f"{what} failed after {tries} tries: {_describe(exc)}"
                    ) from exc
                log.warning(
                    "%s failed (try %d), retrying in %.0f s; the output is kept: %s",
                    what,
                    tries,
                    delay,
                    _describe(exc),
                    extra={**item.ctx, "phase": "upload"},
                )
                if self.stop.wait(delay):
                    raise HandBackError() from exc
                delay = min(delay * 2, self.cfg.error_backoff_max_s)

    def _write_record(self, item: WorkItem, record: bytes, package_sha256: str) -> None:
        """Write the run record of the output `package_sha256`, unless that output's is there;
        an older output's record is replaced only as the object it is (`If-Match`)."""
        metadata = {
            META_OUTPUT_SHA256: package_sha256,
            META_MESSAGE_ID: item.message_id,
            META_CAPILLARY_VERSION: __version__,
        }

        def put(condition: dict[str, str]) -> None:
            self.s3.put_object(
                Bucket=item.bucket,
                Key=item.sample.run_key,
                Body=record,
                ContentType="application/json",
                Metadata=metadata,
                **condition,
            )

        # this output's record already there: written by another try, or a repair
        self._write_unless_there(
            item,
            item.sample.run_key,
            put,
            lambda found: found.get(META_OUTPUT_SHA256) == package_sha256,
            "the run record",
        )

    def ensure_record(self, item: WorkItem) -> None:
        """An output found done whose run record is missing (its writer stopped between the two
        PUTs) gets the copy of run.json inside it. Never fails the attempt: the output is safe."""
        if item.record_found:
            return
        member = f"{item.sample.name}/run.json"
        try:
            obj = self.s3.get_object(Bucket=item.bucket, Key=item.sample.output_key)
            package_sha256 = str(obj.get("Metadata", {}).get(META_SHA256, ""))
            record = None
            with contextlib.closing(obj["Body"]), tarfile.open(fileobj=obj["Body"], mode="r|gz") as tar:
                for info in tar:
                    if info.name == member and info.isfile():
                        extracted = tar.extractfile(info)
                        record = extracted.read() if extracted else None
                        break
            if record is None:
                log.warning("the output holds no %s: no run record written", member, extra=item.ctx)
                return
            self._write_record(item, record, package_sha256)
            item.record_found = True
            log.info(
                "the output's run record was missing: written from its run.json",
                extra={**item.ctx, "phase": "upload"},
            )
        except (*_UPLOAD_ERRORS, tarfile.TarError) as exc:
            log.warning("could not write the missing run record: %s", _describe(exc), extra=item.ctx)

    def _tidy(self, item: WorkItem) -> None:
        """After an upload: the earlier attempts' report goes, then the message. Either failing
        is harmless (the output is safe; the message returns and is skipped as done)."""
        if item.stale_report or item.failures:
            # An earlier attempt's report no longer says what happened to the sample.
            with contextlib.suppress(BotoCoreError, ClientError):
                self.s3.delete_object(Bucket=item.bucket, Key=item.sample.error_key)
        self.delete(item)
        log.info("message deleted", extra={**item.ctx, "phase": "done"})

    def settle(self) -> None:
        """Wait for the bookkeeping of every upload so far (before the daemon exits)."""
        wait_for = self._after.submit(lambda: None)
        wait_for.result()

    def _write_once(
        self, item: WorkItem, package: Path, metadata: dict[str, str], etag: str, sha: str
    ) -> bool:
        """Write the output unless this input's output is there already (False)."""
        return self._write_unless_there(
            item,
            item.sample.output_key,
            lambda condition: self._put(item, package, metadata, condition),
            # this input's output: another worker won
            lambda found: is_output_of(found, etag, sha),
            "the output",
        )

    def _write_unless_there(
        self,
        item: WorkItem,
        key: str,
        put: Callable[[dict[str, str]], None],
        is_there: Callable[[Mapping[str, str]], bool],
        what: str,
    ) -> bool:
        """`put(condition)` the object at `key` once: create it (`If-None-Match`); if an object is
        there and `is_there(its metadata)`, write nothing (False); if it is an older one, replace
        exactly that object (`If-Match` its ETag). Three rounds, then the race is an error."""
        condition: dict[str, str] = {"IfNoneMatch": "*"}
        for _ in range(3):
            try:
                put(condition)
                return True
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in _PRECONDITION_FAILED:
                    raise
            head = self._head_output(item, key)
            if head is None:
                condition = {"IfNoneMatch": "*"}  # deleted meanwhile
                continue
            if is_there(head.get("Metadata", {})):
                return False
            condition = {"IfMatch": str(head["ETag"])}
        changing = {"Code": "PreconditionFailed", "Message": f"{what} kept changing while being written"}
        raise ClientError({"Error": changing}, "PutObject")

    def _put(
        self, item: WorkItem, package: Path, metadata: dict[str, str], condition: dict[str, str]
    ) -> None:
        with package.open("rb") as body:
            self.s3.put_object(
                Bucket=item.bucket,
                Key=item.sample.output_key,
                Body=body,
                ContentType="application/gzip",
                Metadata=metadata,
                **condition,
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

    def report_failure(
        self, item: WorkItem, failure: SampleFailedError, engine_log: Path, *, final: bool
    ) -> None:
        """Write the error report of this attempt; `final`: the message goes to the dead-letter
        queue next (the sample cannot succeed on retry, or this was its last allowed failure)."""
        failures = item.failures + 1
        if final and not failure.retryable:
            next_step = "refused for good (retrying cannot help): the message goes to the dead-letter queue"
        elif final:
            next_step = (
                f"this was the last attempt (failure {failures} of {self.cfg.max_receive_count}): "
                "the message goes to the dead-letter queue"
            )
        else:
            next_step = (
                f"the message returns in {self.cfg.retry_backoff_s} s for attempt {item.attempt + 1} "
                f"(failure {failures} of {self.cfg.max_receive_count} allowed)"
            )
        report = {
            "key": item.key,
            "sample": item.sample.name,
            "message_id": item.message_id,
            "phase": failure.phase,
            "reason": failure.reason,
            "retryable": failure.retryable,
            "attempt": item.attempt,
            "failures": failures,
            "max_receive_count": self.cfg.max_receive_count,
            "final_attempt": final,
            "next": next_step,
            "dead_letter_queue": final,
            "history": [a.as_dict() for a in item.message.history],
            "log_tail": log_tail(engine_log, self.cfg.log_tail_lines),
            # the daemon's records about this sample, this attempt (never a VCF line)
            "log": item.log_lines(),
            "engine": engine_for(self.cfg, item.sample.kind),
            "capillary": __version__,
            "worker": self.identity(),
            "time": now_iso(),
        }
        log.error(
            "attempt %d failed: %s%s",
            item.attempt,
            failure.reason,
            " (going to the dead-letter queue)" if final else "",
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


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
