"""The input of one work message: downloaded, verified and unpacked in one pass.

The message names the upload (its etag and size), so no round trip precedes the download: the
output's record (already done?) is asked for while a GET conditional on the etag goes out, and
the GET is read once,
front to back: every byte goes through the hash on its way into the safe extractor
(`capillary.contract.tarball.safe_extract_stream`), which unpacks into the workspace as the bytes
arrive. No tarball is ever written to disk and nothing is read twice. At the end of the stream
the digest is checked - sha256 against the `sha256` metadata `capillary submit` writes, else MD5
against a single-part ETag (a multipart upload without that metadata is logged as unverified) -
and on a mismatch everything unpacked is removed before anything trusts it. The size is checked
against `max_tarball_bytes` before a byte arrives.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from capillary.contract.message import META_SHA256
from capillary.contract.tarball import ExtractedSample, TarballError, safe_extract_stream
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
    """The input, unpacked and verified: the sample and what the upload was."""

    sample: ExtractedSample
    etag: str
    sha256: str
    size: int
    verified: str


class HashingBody:
    """A GET's body read once: each byte through sha256 (and MD5 when an ETag is to be checked)
    on its way to the reader, in CHUNK-sized network reads whatever size the reader asks for.

    A drain stops it (HandBackError). The error it raised, if any, is kept in `error`, so the
    caller can tell a network failure from a tarball the extractor refused.
    """

    def __init__(self, body: Any, stop: threading.Event, *, want_md5: bool) -> None:
        self.body = body
        self.stop = stop
        self.sha = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False) if want_md5 else None
        self.size = 0
        self.error: BaseException | None = None
        self._buf = memoryview(b"")
        self._eof = False

    def _fill(self) -> None:
        if self.stop.is_set():
            self.error = HandBackError()
            raise self.error
        try:
            chunk = self.body.read(CHUNK)
        except Exception as exc:
            self.error = exc
            raise
        if not chunk:
            self._eof = True
            return
        self.sha.update(chunk)
        if self.md5 is not None:
            self.md5.update(chunk)
        self.size += len(chunk)
        self._buf = memoryview(chunk)

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            parts = [bytes(self._buf)]
            self._buf = memoryview(b"")
            while not self._eof:
                self._fill()
                parts.append(bytes(self._buf))
                self._buf = memoryview(b"")
            return b"".join(parts)
        if not self._buf and not self._eof:
            self._fill()
        if len(self._buf) >= size:
            out, self._buf = self._buf[:size], self._buf[size:]
            return bytes(out)
        parts = [bytes(self._buf)]
        wanted = size - len(self._buf)
        self._buf = memoryview(b"")
        while wanted > 0 and not self._eof:
            self._fill()
            take, self._buf = self._buf[:wanted], self._buf[wanted:]
            parts.append(bytes(take))
            wanted -= len(take)
        return b"".join(parts)

    def drain(self) -> None:
        """Read what the extractor left (the archive's padding) through the hash, to the end."""
        self._buf = memoryview(b"")
        while not self._eof:
            self._fill()
            self._buf = memoryview(b"")


class InputFetcher:
    """Downloads, verifies and unpacks the input a work item names."""

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
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="output-listing")

    def fetch(self, item: WorkItem, ws: Path) -> Fetched | None:
        """The input unpacked into `ws/input` and verified, or None when its output exists
        (message deleted)."""
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
        self.outputs.ensure_record(item)
        self.outputs.delete(item)
        log.info(
            "output for this input already exists: deleted the message",
            extra={**item.ctx, "phase": "idempotence"},
        )

    def _fetch(self, item: WorkItem, ws: Path, etag: str, size: int | None) -> Fetched | None:
        check_drain(self.stop)
        self._check_size(size)
        self.on_phase(item, "fetch")
        t0 = time.monotonic()
        # The output's record of its input keys idempotence: (key, etag), or the same bytes. It is
        # asked for while the GET goes out, so the check costs no round trip of its own; when the
        # output is there (a duplicate), the GET is closed unread.
        listing = self._pool.submit(self.outputs.recorded_input, item)
        try:
            obj = self._get(item, etag)
        finally:
            wait([listing])  # it may have failed too; either way it is over before we go on
        body = obj["Body"]
        try:
            recorded = listing.result()
            expected_sha = str(obj.get("Metadata", {}).get(META_SHA256, "")).lower()
            if is_output_of(recorded, etag, expected_sha):
                self._already_done(item)
                return None
            length = int(obj.get("ContentLength", 0))
            self._check_size(length)
            stream = HashingBody(body, self.stop, want_md5=not expected_sha and "-" not in etag)
            sample, verified = self._unpack(item, stream, ws / "input", length, etag, expected_sha)
        finally:
            body.close()
        item.timings["fetch_s"] = time.monotonic() - t0
        return Fetched(
            sample=sample, etag=etag, sha256=stream.sha.hexdigest(), size=stream.size, verified=verified
        )

    def _get(self, item: WorkItem, etag: str) -> dict[str, Any]:
        try:
            obj: dict[str, Any] = self.s3.get_object(Bucket=item.bucket, Key=item.key, IfMatch=etag)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise self._deleted(item) from exc
            if code in ("PreconditionFailed", "412"):
                raise _InputChangedError() from exc
            raise
        return obj

    def _unpack(
        self, item: WorkItem, stream: HashingBody, dest: Path, length: int, etag: str, expected_sha: str
    ) -> tuple[ExtractedSample, str]:
        """Extract while the bytes arrive; the digest is checked at the end of the stream, and a
        mismatch removes everything extracted before anything uses it."""
        try:
            sample = safe_extract_stream(stream, dest, length)
        except TarballError as exc:
            if stream.error is not None:
                # The network (or a drain) broke the stream, not the tarball.
                raise stream.error from None
            # Refused for good only if these are the bytes that were uploaded: a download
            # damaged on its way is the network's fault, and a retry mends it.
            stream.drain()
            self._verify(item, etag, expected_sha, stream)
            raise SampleFailedError("extract", f"the tarball was refused: {exc}", retryable=False) from exc
        try:
            stream.drain()
            verified = self._verify(item, etag, expected_sha, stream)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        return sample, verified

    def _verify(self, item: WorkItem, etag: str, expected_sha: str, stream: HashingBody) -> str:
        """How the download was verified (for run.json); SampleFailedError when it does not match."""
        sha = stream.sha.hexdigest()
        if expected_sha:
            if sha != expected_sha:
                raise SampleFailedError(
                    "verify", f"sha256 mismatch: metadata says {expected_sha}, downloaded {sha}"
                )
            return "sha256 metadata"
        if stream.md5 is not None:
            md5 = stream.md5.hexdigest()
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
