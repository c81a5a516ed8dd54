"""`capillary submit`: validate a sample tarball, then upload it under a fresh key.

Nothing is uploaded unless the tarball is valid. The uuid is generated here (never chosen by
hand), the sha256 of the file goes into the object's metadata (`sha256`, `META_SHA256`: the
consumer verifies its download against it), large files go up in parts, and the key is printed
on stdout so scripts can capture it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

from capillary.contract.message import META_SHA256
from capillary.contract.samples import EXTENSION, KINDS, SampleKey, SampleKeyError
from capillary.contract.tarball import validate_tarball

log = logging.getLogger("capillary.submit")

MIB = 1 << 20
CHUNK = 8 * MIB
UUID_ATTEMPTS = 5


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="validate a sample tarball and upload it to the samples bucket",
        description=(
            "Validate, then upload to s3://BUCKET/inputs/{batch}-{uuid}-{kind}.tar.gz; prints the key."
        ),
    )
    parser.add_argument("path", type=Path, help="the sample tarball (.tar.gz)")
    parser.add_argument("--bucket", required=True, help="the deployment's samples bucket")
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
    parser.add_argument("--json", action="store_true", help="print the upload's details as JSON")
    parser.set_defaults(func=run)


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


def run(args: argparse.Namespace) -> int:
    path: Path = args.path
    if not path.is_file():
        print(f"capillary submit: {path}: no such file", file=sys.stderr)
        return 2
    if not path.name.endswith(EXTENSION):
        print(f"capillary submit: {path}: a sample tarball ends in {EXTENSION}", file=sys.stderr)
        return 2
    if args.multipart_threshold_mb < 5:
        print("capillary submit: --multipart-threshold-mb: S3 parts are at least 5 MiB", file=sys.stderr)
        return 2
    named = _defaults_from_name(path)
    batch = args.batch or (named.batch if named else None)
    kind = args.kind or (named.kind if named else "somatic")
    if not batch:
        print(
            f"capillary submit: {path.name} is not named {{batch}}-{{uuid}}-{{kind}}.tar.gz: give --batch",
            file=sys.stderr,
        )
        return 2
    try:
        SampleKey.new(batch, kind)
    except SampleKeyError as exc:
        print(f"capillary submit: --batch {batch!r}: {exc.reason}", file=sys.stderr)
        return 2

    result = validate_tarball(path)
    if not result.ok:
        print(f"capillary submit: {path}: not uploaded, {len(result.problems)} problem(s):", file=sys.stderr)
        for problem in result.problems:
            print(f"  - [{problem.code}] {problem}", file=sys.stderr)
        return 1

    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import BotoCoreError, ClientError

    sha = sha256_of(path)
    s3 = boto3.client("s3")
    try:
        key = _fresh_key(s3, args.bucket, batch, kind)
        part = args.multipart_threshold_mb * MIB
        s3.upload_file(
            str(path),
            args.bucket,
            key.input_key,
            ExtraArgs={"Metadata": {META_SHA256: sha}, "ContentType": "application/gzip"},
            Config=TransferConfig(multipart_threshold=part, multipart_chunksize=part),
        )
    except (BotoCoreError, ClientError) as exc:
        print(f"capillary submit: upload to s3://{args.bucket} failed: {exc}", file=sys.stderr)
        return 1
    log.info("submitted", extra={"key": key.input_key, "sample": key.name, "phase": "submit"})
    if args.json:
        details = {
            "bucket": args.bucket,
            "key": key.input_key,
            "batch": key.batch,
            "uuid": key.uuid,
            "kind": key.kind,
            "sha256": sha,
            "size": path.stat().st_size,
            "output_key": key.output_key,
            "error_key": key.error_key,
        }
        print(json.dumps(details, indent=2))
    else:
        print(key.input_key)
    return 0


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
    raise RuntimeError(f"no free uuid for batch {batch!r} after {UUID_ATTEMPTS} attempts")
