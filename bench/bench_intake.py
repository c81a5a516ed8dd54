"""Intake: put → work message visible (local runner path), and handler time per record.

Against the local AWS endpoint: the bucket notifies an events queue (as a local deployment
does), the runner's loop receives each S3 event, `handle_event` queues the work message, and
the clock stops when that message is received from the work queue. Also: the offline
validator's throughput on a realistic sample.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Figure, median, percentile

UPLOADS = 100


def _stack(aws: Any) -> tuple[Any, Any, str, str, str]:
    from capillary.contract.naming import deployment_names

    names = deployment_names("bench")
    s3, sqs = aws.client("s3"), aws.client("sqs")
    s3.create_bucket(Bucket=names.bucket, CreateBucketConfiguration={"LocationConstraint": aws.region})
    events = sqs.create_queue(QueueName=names.events_queue)["QueueUrl"]
    work = sqs.create_queue(QueueName=names.work_queue)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=events, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=names.bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "inputs",
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "inputs/"}]}},
                }
            ]
        },
    )
    sqs.purge_queue(QueueUrl=events)  # the s3:TestEvent
    return s3, sqs, names.bucket, events, work


def run() -> list[Figure]:
    from capillary.contract.message import WorkMessage
    from capillary.contract.samples import SampleKey
    from capillary.contract.tarball import validate_tarball
    from capillary.intake.handler import Clients, IntakeConfig, handle_event
    from capillary.local.endpoint import running
    from tests.support.samples import make_sample_tarball

    figures: list[Figure] = []
    with running() as aws:
        # moto keeps its resources in this process, not in the server: without a reset the bucket
        # of a suite that ran before (bench_consumer's) is still there (BucketAlreadyOwnedByYou)
        aws.reset()
        saved = dict(os.environ)
        os.environ.update(aws.env)
        try:
            s3, sqs, bucket, events, work = _stack(aws)
            clients = Clients.create()
            config = IntakeConfig(deployment="bench", work_queue_url=work)
            latencies: list[float] = []
            handler_s: list[float] = []
            for n in range(UPLOADS):
                key = SampleKey.new(f"bench{n % 7}", "somatic").input_key
                t0 = time.perf_counter()
                s3.put_object(Bucket=bucket, Key=key, Body=b"x" * 1024)
                handled = False
                while not handled:
                    got = sqs.receive_message(QueueUrl=events, MaxNumberOfMessages=10, WaitTimeSeconds=1)
                    for message in got.get("Messages", []):
                        event = json.loads(message["Body"])
                        h0 = time.perf_counter()
                        outcome = handle_event(event, config, clients)
                        handler_s.append((time.perf_counter() - h0) / max(1, len(event.get("Records", []))))
                        sqs.delete_message(QueueUrl=events, ReceiptHandle=message["ReceiptHandle"])
                        handled = handled or key in outcome.queued
                visible = sqs.receive_message(QueueUrl=work, WaitTimeSeconds=5).get("Messages", [])
                assert visible and WorkMessage.from_body(visible[0]["Body"]).key == key
                latencies.append(time.perf_counter() - t0)
                sqs.delete_message(QueueUrl=work, ReceiptHandle=visible[0]["ReceiptHandle"])
        finally:
            os.environ.clear()
            os.environ.update(saved)
            aws.reset()  # and leave nothing to the next suite
    ms = [x * 1000 for x in latencies]
    figures += [
        Figure(
            "put to work message visible, median", median(ms), "ms", samples=len(ms), note="local runner path"
        ),
        Figure("put to work message visible, p95", percentile(ms, 95), "ms", samples=len(ms)),
        Figure("handler time per record, median", median(handler_s) * 1000, "ms", samples=len(handler_s)),
        Figure(
            "handler time per record, p95", percentile(handler_s, 95) * 1000, "ms", samples=len(handler_s)
        ),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        tarball = make_sample_tarball(Path(tmp), n_variants=40000)
        size_mb = tarball.stat().st_size / 1e6
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            assert validate_tarball(tarball).ok
            runs.append(time.perf_counter() - t0)
        figures.append(
            Figure(
                "validate a sample (40k variants)",
                median(runs) * 1000,
                "ms",
                samples=len(runs),
                note=f"{size_mb:.2f} MB tarball; VCF inflated whole, header + first 5000 records parsed",
            )
        )
    return figures
