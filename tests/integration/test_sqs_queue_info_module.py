"""`capillary.pcgr.sqs_queue_info` in a playbook against the local endpoint: a queue's counts, its
redrive policy and the workers they need, read through `capillary.contract.queue`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from capillary.contract.queue import workers_needed
from capillary.local.endpoint import LocalAWS
from capillary.local.playbook import run_module

pytestmark = pytest.mark.integration


def read(playbook: Any, tmp_path: Path, **args: Any) -> dict[str, Any]:
    """One run of the module, in a directory of its own (so its result file is always new)."""
    run_dir = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
    run_dir.mkdir()
    recap, result = run_module(playbook, run_dir, "capillary.pcgr.sqs_queue_info", args, ignore_errors=True)
    assert recap.changed == 1, recap.tail()  # only the copy task changes
    assert result["changed"] is False
    return result


def test_counts_redrive_policy_and_workers_needed(aws: LocalAWS, playbook: Any, tmp_path: Path) -> None:
    # GIVEN a work queue with a dead-letter queue after 3 receives, 5 messages, 2 of them received
    sqs = aws.client("sqs")
    dlq = sqs.create_queue(QueueName="capillary-qi-work-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName="capillary-qi-work",
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})},
    )["QueueUrl"]
    for i in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=300)

    # WHEN the module reads it with two samples per worker, at most 2 workers
    result = read(playbook, tmp_path, name="capillary-qi-work", samples_per_worker=2, max_workers=2)

    # THEN it reports the counts, the redrive policy, and min(ceil(5 / 2), 2) workers
    assert (result["exists"], result["queue_url"]) == (True, url)
    assert (result["visible"], result["in_flight"], result["delayed"]) == (3, 2, 0)
    assert (result["max_receive_count"], result["dead_letter_arn"]) == (3, dlq_arn)
    assert result["workers_needed"] == workers_needed(3, 2, 2, 2) == 2

    # AND uncapped, and without samples_per_worker (counts only), as documented
    assert read(playbook, tmp_path, name="capillary-qi-work", samples_per_worker=2)["workers_needed"] == 3
    assert "workers_needed" not in read(playbook, tmp_path, name="capillary-qi-work")


def test_a_missing_queue_needs_no_workers(aws: LocalAWS, playbook: Any, tmp_path: Path) -> None:
    result = read(playbook, tmp_path, name="capillary-nowhere-work", samples_per_worker=1, max_workers=4)
    assert result["exists"] is False
    assert (result["visible"], result["in_flight"], result["workers_needed"]) == (0, 0, 0)
    assert "max_receive_count" not in result


def test_bad_options_fail_naming_them(aws: LocalAWS, playbook: Any, tmp_path: Path) -> None:
    aws.client("sqs").create_queue(QueueName="capillary-qi-work")
    zero = read(playbook, tmp_path, name="capillary-qi-work", samples_per_worker=0)
    assert zero["failed"] is True
    assert "samples_per_worker must be an int >= 1, got 0" in zero["msg"]
    alone = read(playbook, tmp_path, name="capillary-qi-work", max_workers=3)
    assert alone["failed"] is True
    assert "max_workers" in alone["msg"] and "samples_per_worker" in alone["msg"]
