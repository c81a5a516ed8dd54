"""`capillary status`: a work queue as SQS sees it, beside what this worker's state file says.

The queue's counters and its dead-letter queue's depth (and, given a deployment, its
intake-failures queue's), and the daemon's state file (`capillary.worker.state`).
"""

from __future__ import annotations

from typing import Any

from capillary.contract.queue import ATTRIBUTE_NAMES, VISIBLE, QueueDepth


def queue_status(sqs: Any, queue_url: str) -> dict[str, Any]:
    """Depth, in-flight and dead-letter counts of the work queue."""
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(ATTRIBUTE_NAMES))["Attributes"]
    depth = QueueDepth.from_attributes(attrs)
    out: dict[str, Any] = {
        "queue_url": queue_url,
        "visible": depth.visible,
        "in_flight": depth.in_flight,
        "delayed": depth.delayed,
        "dead_letter": None,
        "max_receive_count": depth.max_receive_count,
    }
    if depth.dead_letter_queue_name:
        dlq_url = sqs.get_queue_url(QueueName=depth.dead_letter_queue_name)["QueueUrl"]
        dlq = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=[VISIBLE])["Attributes"]
        out["dead_letter"] = QueueDepth.from_attributes(dlq).visible
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
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[VISIBLE])["Attributes"]
    return QueueDepth.from_attributes(attrs).visible


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
