"""The local intake runner: S3 events from an SQS events queue into the intake handler.

In AWS the bucket invokes the intake Lambda. The local AWS endpoint cannot invoke a Lambda, so a
local deployment points the bucket's notifications at an events queue and this loop feeds each
real S3 event (as S3 delivered it) to `capillary.intake.handle_event`. An event message is
deleted only after it was handled. Any other message (a body that is not JSON or not an object,
an event the handler refuses or cannot finish) is logged and left alone: it comes back after its
visibility timeout, and the events queue's redrive policy (roles/intake) moves it to the events
dead-letter queue after a few receives. No message can stop the runner.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from types import FrameType
from typing import Any

from capillary.contract.vocabulary import shown
from capillary.intake.handler import Clients, IntakeConfig, MalformedEventError, handle_event

log = logging.getLogger("capillary.intake.local")


def _event(message: dict[str, Any]) -> dict[str, Any]:
    """The S3 event a message carries; `MalformedEventError` when it carries none."""
    body = message.get("Body")
    if not isinstance(body, str):
        raise MalformedEventError("the message has no body")
    try:
        event = json.loads(body)
    except (ValueError, RecursionError):
        raise MalformedEventError("the message body is not JSON") from None
    if not isinstance(event, dict):
        raise MalformedEventError("the message body is not a JSON object")
    return event


def poll_once(
    queue_url: str, config: IntakeConfig, clients: Clients, wait_seconds: int = 20
) -> tuple[int, int]:
    """One long poll: handle what arrives; return (handled, failed) event message counts."""
    response = clients.sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=wait_seconds,
        AttributeNames=["ApproximateReceiveCount"],
    )
    handled = failed = 0
    for message in response.get("Messages", []):
        ctx = {
            "message_id": message.get("MessageId"),
            "receive_count": message.get("Attributes", {}).get("ApproximateReceiveCount"),
            "phase": "intake",
        }
        try:
            outcome = handle_event(_event(message), config, clients)
        except Exception as exc:  # any message: a poison one is left for the redrive policy
            failed += 1
            reason = str(exc)[:300]
            log.error(
                "event not handled, left for redelivery (then the events dead-letter queue): %s: %s",
                type(exc).__name__,
                shown(reason),
                extra={**ctx, "reason": reason},
            )
            continue
        if outcome.malformed:
            log.warning(
                "event handled with %d malformed record(s) skipped",
                len(outcome.malformed),
                extra={**ctx, "malformed": outcome.malformed},
            )
        clients.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        handled += 1
    return handled, failed


def main(queue_url: str, once: bool = False, wait_seconds: int = 20) -> int:
    config = IntakeConfig.from_env()
    clients = Clients.create()
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, _stop)
    log.info("intake-local polling", extra={"queue": queue_url, "phase": "start"})
    failures = 0
    try:
        while not stop.is_set():
            _, failed = poll_once(queue_url, config, clients, max(0, min(wait_seconds, 20)))
            failures += failed
            if once:
                break
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 1 if once and failures else 0
