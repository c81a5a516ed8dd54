"""`capillary submit`: validate sample tarballs, then upload each under a fresh key.

Nothing is uploaded unless every tarball given is valid (`--skip-invalid` uploads the valid ones
and lists the others), so a re-run after a fix never uploads a sample twice. The uuid is generated
here (never chosen by hand), the sha256 of the file goes into the object's metadata (`sha256`,
`META_SHA256`: the consumer verifies its download against it), large files go up in parts, and
each key is printed on stdout (one a line) so scripts can capture them. Progress goes to stderr
when it is a terminal, or with --progress; a summary follows the uploads.

The bucket is `--bucket`, or the deployment's (`--deployment`: the bucket recorded in its SSM
configuration, else `capillary-<deployment>-samples`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from capillary.commands._common import (
    EXIT_USAGE,
    CliError,
    add_aws_arguments,
    aws_session,
    deployment_of,
    describe_error,
)
from capillary.contract.message import META_SHA256
from capillary.contract.samples import EXTENSION, KINDS, SampleKey, SampleKeyError
from capillary.contract.tarball import validate_tarball

log = logging.getLogger("capillary.submit")

MIB = 1 << 20
CHUNK = 8 * MIB
UUID_ATTEMPTS = 5
PROG = "capillary submit"
_NO_BUCKET = "s3://{bucket}: no such bucket (run playbooks/intake.yml, or check --deployment)"
_DENIED = "s3://{bucket}: access denied ({code}): these credentials may not write inputs/ there"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="validate sample tarballs and upload them to the deployment's samples bucket",
        description=(
            "Validate, then upload each to s3://BUCKET/inputs/{batch}-{uuid}-{kind}.tar.gz; prints the "
            "keys, one a line. PATH is a tarball or a folder of them (its *.tar.gz, not recursive). "
            "Exit status: 0 all uploaded, 1 a tarball invalid or an upload failed, 2 a usage error."
        ),
    )
    parser.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="sample tarballs (.tar.gz) or folders of them"
    )
    where = parser.add_argument_group("where to")
    where.add_argument("--bucket", help="the samples bucket (default: the deployment's)")
    add_aws_arguments(parser)
    parser.add_argument(
        "--batch",
        help="batch name (default: taken from a contract-named file, e.g. batch1-0a1b2c-somatic.tar.gz)",
    )
    parser.add_argument(
        "--kind", choices=KINDS, help="somatic or normal (default: from the file name, else somatic)"
    )
    parser.add_argument(
        "--multipart-threshold-mb",
        type=int,
        default=64,
        help="files above this size go up in parts of this size (default: %(default)s MiB, minimum 5)",
    )
    parser.add_argument(
        "--skip-invalid", action="store_true", help="upload the valid tarballs even when others are not"
    )
    parser.add_argument(
        "--progress",
        action="store_true",
        help="show upload progress on stderr even when it is not a terminal",
    )
    parser.add_argument("--json", action="store_true", help="print the uploads' details as JSON")
    parser.set_defaults(func=run)


class BucketError(CliError):
    """What fails every upload to the bucket alike: no bucket, no access, no credentials."""


@dataclass
class Planned:
    path: Path
    batch: str
    kind: str
    size: int


def _defaults_from_name(path: Path) -> SampleKey | None:
    try:
        return SampleKey.parse(f"inputs/{path.name}")
    except SampleKeyError:
        return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tarballs(paths: list[Path]) -> list[Path]:
    """The files to submit: each file as given, each folder's *.tar.gz (sorted); no duplicates."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.name.endswith(EXTENSION) and p.is_file())
            if not inside:
                raise CliError(f"{path}: a folder with no *{EXTENSION} in it", EXIT_USAGE)
            found.extend(inside)
        elif path.is_file():
            if not path.name.endswith(EXTENSION):
                hint = " (capillary pack FOLDER makes one)" if path.suffix in (".vcf", ".gz", ".toml") else ""
                raise CliError(f"{path}: a sample tarball ends in {EXTENSION}{hint}", EXIT_USAGE)
            found.append(path)
        elif path.exists():
            raise CliError(f"{path}: not a file or a folder", EXIT_USAGE)
        else:
            raise CliError(f"{path}: no such file or folder", EXIT_USAGE)
    for p in found:
        if not os.access(p, os.R_OK):
            raise CliError(f"{p}: not readable (permission denied)", EXIT_USAGE)
    unique: dict[Path, Path] = {}
    for p in found:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def plan(files: list[Path], batch: str | None, kind: str | None) -> list[Planned]:
    planned = []
    for path in files:
        named = _defaults_from_name(path)
        chosen_batch = batch or (named.batch if named else None)
        chosen_kind = kind or (named.kind if named else "somatic")
        if not chosen_batch:
            raise CliError(
                f"{path.name} is not named {{batch}}-{{uuid}}-{{kind}}.tar.gz: give --batch", EXIT_USAGE
            )
        try:
            SampleKey.new(chosen_batch, chosen_kind)
        except SampleKeyError as exc:
            raise CliError(f"--batch {chosen_batch!r}: {exc.reason}", EXIT_USAGE) from None
        planned.append(Planned(path, chosen_batch, chosen_kind, path.stat().st_size))
    return planned


def run(args: argparse.Namespace) -> int:
    if args.multipart_threshold_mb < 5:
        raise CliError("--multipart-threshold-mb: S3 parts are at least 5 MiB", EXIT_USAGE)
    if not args.bucket and not args.deployment:
        raise CliError("give --deployment NAME (or --bucket BUCKET): where to upload", EXIT_USAGE)
    planned = plan(tarballs(args.paths), args.batch, args.kind)

    invalid: list[Path] = []
    for item in planned:
        result = validate_tarball(item.path)
        if not result.ok:
            invalid.append(item.path)
            print(f"{PROG}: {item.path}: invalid, {len(result.problems)} problem(s):", file=sys.stderr)
            for problem in result.problems:
                print(f"  - [{problem.code}] {problem}", file=sys.stderr)
    if invalid and not args.skip_invalid:
        what = "it" if len(planned) == 1 else f"none of the {len(planned)}"
        print(f"{PROG}: not uploaded: {len(invalid)} invalid tarball(s), so {what} went up", file=sys.stderr)
        return 1
    todo = [p for p in planned if p.path not in invalid]

    # S3 needs no region; the deployment's configuration in SSM does.
    session = aws_session(args, need_region=not args.bucket)
    s3 = session.client("s3")
    bucket = args.bucket or _deployment_bucket(session, args)
    show = args.progress or sys.stderr.isatty()
    uploaded: list[dict[str, Any]] = []
    failed: list[str] = []
    started = time.monotonic()
    for item in todo:
        try:
            uploaded.append(_upload(s3, bucket, item, args.multipart_threshold_mb * MIB, show))
        except BucketError as exc:
            if not uploaded:
                raise  # nothing went up: the one line says why none can
            failed.append(str(item.path))
            print(f"{PROG}: {item.path}: {exc}", file=sys.stderr)
            break  # every other upload would fail the same way
        except CliError as exc:
            failed.append(str(item.path))
            print(f"{PROG}: {item.path}: {exc}", file=sys.stderr)
    elapsed = time.monotonic() - started
    for details in uploaded:
        log.info("submitted", extra={"key": details["key"], "sample": details["name"], "phase": "submit"})
    if args.json:
        print(json.dumps(uploaded[0] if len(planned) == 1 and uploaded else uploaded, indent=2))
    else:
        for details in uploaded:
            print(details["key"])
    if len(planned) > 1 or failed or invalid:
        total = sum(d["size"] for d in uploaded)
        parts = [
            f"{len(uploaded)} of {len(planned)} uploaded to s3://{bucket} ({_size(total)} in {elapsed:.0f} s)"
        ]
        if invalid:
            parts.append(f"{len(invalid)} invalid")
        if failed:
            parts.append(f"{len(failed)} failed")
        print(f"{PROG}: " + ", ".join(parts), file=sys.stderr)
    return 0 if not failed and not invalid else 1


def _deployment_bucket(session: Any, args: argparse.Namespace) -> str:
    """The bucket recorded in the deployment's SSM configuration; its derived name when none is."""
    from botocore.exceptions import ClientError

    names = deployment_of(args)
    assert names is not None
    parameter = f"{names.ssm_config}/bucket"
    try:
        found = session.client("ssm").get_parameter(Name=parameter)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ParameterNotFound":
            return names.bucket
        raise CliError(
            f"--deployment {names.deployment}: cannot read {parameter} ({error.get('Code')}): "
            "give --bucket, or the permission to read it",
            EXIT_USAGE,
        ) from None
    value: str = found["Parameter"]["Value"]
    return value


def _upload(s3: Any, bucket: str, item: Planned, part: int, show: bool) -> dict[str, Any]:
    from boto3.exceptions import S3UploadFailedError
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import BotoCoreError, ClientError

    sha = sha256_of(item.path)
    try:
        key = _fresh_key(s3, bucket, item.batch, item.kind)
        progress = Progress(item.path.name, item.size, sys.stderr) if show else None
        s3.upload_file(
            str(item.path),
            bucket,
            key.input_key,
            ExtraArgs={"Metadata": {META_SHA256: sha}, "ContentType": "application/gzip"},
            Config=TransferConfig(multipart_threshold=part, multipart_chunksize=part),
            Callback=progress,
        )
        if progress:
            progress.done()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket", "404"):
            raise BucketError(_NO_BUCKET.format(bucket=bucket), EXIT_USAGE) from None
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise BucketError(_DENIED.format(bucket=bucket, code=code), EXIT_USAGE) from None
        raise CliError(f"upload to s3://{bucket} failed: {code}: {exc}") from None
    except S3UploadFailedError as exc:
        text = str(exc)
        if "NoSuchBucket" in text:
            raise BucketError(_NO_BUCKET.format(bucket=bucket), EXIT_USAGE) from None
        if "AccessDenied" in text:
            raise BucketError(_DENIED.format(bucket=bucket, code="AccessDenied"), EXIT_USAGE) from None
        raise CliError(f"upload to s3://{bucket} failed: {' '.join(text.split())}") from None
    except BotoCoreError as exc:
        raise BucketError(f"upload to s3://{bucket} failed: {describe_error(exc)}") from None
    return {
        "path": str(item.path),
        "bucket": bucket,
        "key": key.input_key,
        "name": key.name,
        "batch": key.batch,
        "uuid": key.uuid,
        "kind": key.kind,
        "sha256": sha,
        "size": item.size,
        "output_key": key.output_key,
        "error_key": key.error_key,
    }


def _fresh_key(s3: Any, bucket: str, batch: str, kind: str) -> SampleKey:
    """A new key whose object does not exist yet (6 hex characters can collide within a batch)."""
    from botocore.exceptions import ClientError

    for _ in range(UUID_ATTEMPTS):
        key = SampleKey.new(batch, kind)
        try:
            s3.head_object(Bucket=bucket, Key=key.input_key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return key
            raise
    raise CliError(f"no free uuid for batch {batch!r} after {UUID_ATTEMPTS} attempts")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - the loop returns


class Progress:
    """boto3's transfer callback: bytes so far, shown at most 4 times a second (a terminal) or every 10%."""

    def __init__(self, name: str, size: int, stream: TextIO) -> None:
        self.name, self.size, self.stream = name, max(size, 1), stream
        self.sent = 0
        self.started = time.monotonic()
        self._shown_at = 0.0
        self._shown_tenth = -1
        self._tty = stream.isatty()
        self._lock = threading.Lock()  # parts go up from several threads

    def __call__(self, sent: int) -> None:
        with self._lock:
            self.sent += sent
            now = time.monotonic()
            tenth = self.sent * 10 // self.size
            if self._tty and now - self._shown_at < 0.25 and self.sent < self.size:
                return
            if not self._tty and tenth == self._shown_tenth:
                return
            self._shown_at, self._shown_tenth = now, tenth
            self._show(end="\r" if self._tty else "\n")

    def _show(self, end: str) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.sent / elapsed
        self.stream.write(
            f"  {self.name}  {100 * self.sent // self.size:3d}%  {_size(self.sent)} of {_size(self.size)}"
            f"  {_size(rate)}/s{end}"
        )
        self.stream.flush()

    def done(self) -> None:
        if self._tty:
            self._show(end="\n")
