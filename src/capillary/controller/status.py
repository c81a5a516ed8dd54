"""`capillary status`: a work queue as SQS sees it, beside what this worker's state file says.

The queue's counters and its dead-letter queue's depth (and, given a deployment, its
intake-failures queue's), and the daemon's state file (`capillary.worker.state`).
"""

from __future__ import annotations

import json
from typing import Any


def queue_status(sqs: Any, queue_url: str) -> dict[str, Any]:
    """Depth, in-flight and dead-letter counts of the work queue."""
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    out: dict[str, Any] = {
        "queue_url": queue_url,
        "visible": int(attrs.get("ApproximateNumberOfMessages", 0)),
        "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
        "delayed": int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
        "dead_letter": None,
        "max_receive_count": None,
    }
    redrive = attrs.get("RedrivePolicy")
    if redrive:
        policy = json.loads(redrive)
        out["max_receive_count"] = int(policy.get("maxReceiveCount", 0))
        dlq_name = str(policy["deadLetterTargetArn"]).rsplit(":", 1)[-1]
        dlq_url = sqs.get_queue_url(QueueName=dlq_name)["QueueUrl"]
        dlq = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])
        out["dead_letter"] = int(dlq["Attributes"].get("ApproximateNumberOfMessages", 0))
        out["dead_letter_queue_url"] = dlq_url
    return out


_NO_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def queue_depth(sqs: Any, name: str) -> int | None:
    """Messages waiting in the queue `name`; None when there is no such queue."""
    from botocore.exceptions import ClientError

    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _NO_QUEUE:
            return None
        raise
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attrs["Attributes"].get("ApproximateNumberOfMessages", 0))


def format_status(queue: dict[str, Any] | None, worker: dict[str, Any] | None, error: str = "") -> str:
    lines = []
    if queue is not None:
        lines.append(f"queue        {queue['queue_url']}")
        lines.append(f"  waiting    {queue['visible']}")
        lines.append(f"  in flight  {queue['in_flight']}")
        dlq = queue["dead_letter"]
        lines.append(f"  dead-letter {'(no redrive policy)' if dlq is None else dlq}")
        if "intake_failures" in queue:
            # S3 events the intake Lambda gave up on (its on-failure destination), when the
            # deployment is known: their objects are in the bucket but were never queued.
            failures = queue["intake_failures"]
            lines.append(f"  intake failures {'(no queue)' if failures is None else failures}")
    else:
        lines.append(f"queue        unavailable: {error}")
    if worker is None:
        lines.append("worker       no state file (the daemon is not running here)")
    else:
        lines.append(
            f"worker       {worker.get('state')} (pid {worker.get('pid')}, updated {worker.get('updated')})"
        )
        if worker.get("sample"):
            lines.append(f"  sample     {worker['sample']} ({worker.get('message_id')})")
        counts = {k: worker.get(k, 0) for k in ("processed", "failed", "handed_back", "skipped")}
        lines.append(
            f"  counts     processed {counts['processed']}, failed {counts['failed']}, "
            f"handed back {counts['handed_back']}, skipped {counts['skipped']}"
        )
    return "\n".join(lines)
