"""The input of one work message, downloaded into the workspace and verified.

The message names the upload (its etag and size), so no round trip precedes the download: the
output's record is checked (already done?), then a GET conditional on the etag streams the bytes
to disk, hashing them as they arrive - sha256 against the `sha256` metadata `capillary submit`
writes, else MD5 against a single-part ETag; a multipart upload without that metadata is logged
as unverified. The size is checked against `max_tarball_bytes` before a byte arrives.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from capillary.contract.message import META_SHA256
from capillary.worker.config import ConsumerConfig
from capillary.worker.item import HandBackError, SampleFailedError, WorkItem, check_drain
from capillary.worker.outputs import Outputs, is_output_of

# The daemon's logger: every line the worker logs carries the same `logger` name.
log = logging.getLogger("capillary.worker.daemon")

CHUNK = 1024 * 1024


class _InputChangedError(Exception):
    """The input's etag is no longer the one asked for (the GET's precondition failed)."""


@dataclass(frozen=True)
class Fetched:
    """The downloaded input: where it is and what it was."""

    tarball: Path
    etag: str
    sha256: str
    size: int
    verified: str


class InputFetcher:
    """Downloads and verifies the input a work item names."""

    def __init__(
        self,
        cfg: ConsumerConfig,
        s3: Any,
        outputs: Outputs,
        stop: threading.Event,
        on_phase: Callable[[WorkItem, str], None],
    ) -> None:
        self.cfg = cfg
        self.s3 = s3
        self.outputs = outputs
        self.stop = stop
        self.on_phase = on_phase

    def fetch(self, item: WorkItem, ws: Path) -> Fetched | None:
        """The input downloaded and verified, or None when its output exists (message deleted)."""
        etag = (item.message.etag or "").strip('"')
        if etag:
            try:
                return self._fetch(item, ws, etag, item.message.size)
            except _InputChangedError:
                # A newer upload replaced the one this message names (and has its own message):
                # carry on with the object as it is now, like a message without an etag.
                log.info(
                    "input replaced since the message was sent: fetching the current upload",
                    extra={**item.ctx, "phase": "download"},
                )
        # No etag in the message (hand-written, or from before the intake sent one): ask S3 what
        # the input is now, with the HEAD every message cost before the message's own were read.
        etag, size = self._head_input(item)
        try:
            return self._fetch(item, ws, etag, size)
        except _InputChangedError:
            raise SampleFailedError(
                "download", "input changed while being fetched; the new upload has its own message"
            ) from None

    def _deleted(self, item: WorkItem) -> SampleFailedError:
        return SampleFailedError(
            "download", f"input s3://{item.bucket}/{item.key} no longer exists (deleted before download)"
        )

    def _head_input(self, item: WorkItem) -> tuple[str, int]:
        try:
            head = self.s3.head_object(Bucket=item.bucket, Key=item.key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code", "") in ("404", "NoSuchKey", "NotFound"):
                raise self._deleted(item) from exc
            raise
        return str(head["ETag"]).strip('"'), int(head.get("ContentLength", 0))

    def _check_size(self, size: int | None) -> None:
        if size is not None and size > self.cfg.max_tarball_bytes:
            raise SampleFailedError(
                "download", f"input is {size} bytes; max_tarball_bytes is {self.cfg.max_tarball_bytes}"
            )

    def _already_done(self, item: WorkItem) -> None:
        self.outputs.delete(item)
        log.info(
            "output for this input already exists: deleted the message",
            extra={**item.ctx, "phase": "idempotence"},
        )

    def _fetch(self, item: WorkItem, ws: Path, etag: str, size: int | None) -> Fetched | None:
        # The output's record of its input keys idempotence: (key, etag), or the same bytes.
        recorded = self.outputs.recorded_input(item)
        if is_output_of(recorded, etag):
            self._already_done(item)
            return None
        check_drain(self.stop)
        self.on_phase(item, "download")
        t0 = time.monotonic()
        self._check_size(size)
        try:
            obj = self.s3.get_object(Bucket=item.bucket, Key=item.key, IfMatch=etag)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise self._deleted(item) from exc
            if code in ("PreconditionFailed", "412"):
                raise _InputChangedError() from exc
            raise
        body = obj["Body"]
        try:
            expected_sha = str(obj.get("Metadata", {}).get(META_SHA256, "")).lower()
            if expected_sha and is_output_of(recorded, etag, expected_sha):
                self._already_done(item)
                return None
            self._check_size(int(obj.get("ContentLength", 0)))
            tarball = ws / "input.tar.gz"
            sha, md5, received = self._stream(body, tarball, want_md5=not expected_sha)
        finally:
            body.close()
        item.timings["download_s"] = time.monotonic() - t0
        verified = self._verify(item, etag, expected_sha, sha, md5)
        return Fetched(tarball=tarball, etag=etag, sha256=sha, size=received, verified=verified)

    def _stream(self, body: Any, dest: Path, *, want_md5: bool) -> tuple[str, str | None, int]:
        """Write the body to `dest`, hashing as the bytes arrive."""
        sha = hashlib.sha256()
        md5 = hashlib.md5(usedforsecurity=False) if want_md5 else None
        size = 0
        with dest.open("wb") as fh:
            for chunk in body.iter_chunks(CHUNK):
                if self.stop.is_set():
                    raise HandBackError()
                fh.write(chunk)
                sha.update(chunk)
                if md5 is not None:
                    md5.update(chunk)
                size += len(chunk)
        return sha.hexdigest(), md5.hexdigest() if md5 is not None else None, size

    def _verify(self, item: WorkItem, etag: str, expected_sha: str, sha: str, md5: str | None) -> str:
        """How the download was verified (for run.json); SampleFailedError when it does not match."""
        if expected_sha:
            if sha != expected_sha:
                raise SampleFailedError(
                    "verify", f"sha256 mismatch: metadata says {expected_sha}, downloaded {sha}"
                )
            return "sha256 metadata"
        if "-" not in etag and md5 is not None:
            if md5 != etag:
                raise SampleFailedError(
                    "verify", f"MD5 mismatch with the single-part ETag {etag}: downloaded {md5}"
                )
            return "etag md5"
        log.warning(
            "input has no sha256 metadata and a multipart ETag: not verified",
            extra={**item.ctx, "phase": "verify"},
        )
        return "unverified (multipart upload without sha256 metadata)"
