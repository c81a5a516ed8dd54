"""The bake smoke test's controller side: queue one synthetic sample, then wait for its output.

Run by playbooks/bake.yml with the controller's Python (boto3, the capillary package):

    python packer/scripts/smoke_sample.py send --bucket B --queue-url Q --workdir D
    python packer/scripts/smoke_sample.py wait --bucket B --key inputs/... --timeout 300

`send` builds a synthetic sample with the project's sample builder (tests/support/samples.py:
bgzipped VCFs of random SNVs on real contig names, never patient data), uploads it under
`inputs/` and sends its work message to the smoke queue (not the work queue). `wait` polls for
the output tarball or the error report and prints JSON; it exits 1 on an error report or timeout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def send(args: argparse.Namespace) -> dict[str, Any]:
    import boto3

    sys.path.insert(0, str(REPO))
    from tests.support.samples import make_sample_tarball, sample_key_of

    workdir = Path(args.workdir)
    tarball = make_sample_tarball(workdir, batch=args.batch, kind="somatic")
    sample = sample_key_of(tarball)
    s3 = boto3.client("s3")
    s3.upload_file(str(tarball), args.bucket, sample.input_key)
    head = s3.head_object(Bucket=args.bucket, Key=sample.input_key)
    tarball.unlink()
    message = {
        "bucket": args.bucket,
        "key": sample.input_key,
        "batch": sample.batch,
        "uuid": sample.uuid,
        "kind": sample.kind,
        "size": head["ContentLength"],
        "etag": head["ETag"].strip('"'),
        "event_time": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "sequencer": f"{time.time_ns():X}",
    }
    boto3.client("sqs").send_message(QueueUrl=args.queue_url, MessageBody=json.dumps(message))
    return {"key": sample.input_key, "output_key": sample.output_key, "error_key": sample.error_key}


def wait(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3")
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        for key, ok in ((args.output_key, True), (args.error_key, False)):
            try:
                head = s3.head_object(Bucket=args.bucket, Key=key)
            except ClientError:
                continue
            return (0 if ok else 1), {"found": key, "ok": ok, "size": head["ContentLength"]}
        time.sleep(1)
    return 1, {"found": None, "ok": False, "reason": f"no output after {args.timeout} s"}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    p_send = sub.add_parser("send")
    p_send.add_argument("--bucket", required=True)
    p_send.add_argument("--queue-url", required=True)
    p_send.add_argument("--workdir", required=True)
    p_send.add_argument("--batch", default="smoke")
    p_wait = sub.add_parser("wait")
    p_wait.add_argument("--bucket", required=True)
    p_wait.add_argument("--output-key", required=True)
    p_wait.add_argument("--error-key", required=True)
    p_wait.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args(argv)
    if args.action == "send":
        print(json.dumps(send(args)))
        return 0
    status, result = wait(args)
    print(json.dumps(result))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
