"""The local intake runner: S3 events from an SQS events queue into the intake handler.

In AWS the bucket invokes the intake Lambda. The local AWS endpoint cannot invoke a Lambda, so a
local deployment points the bucket's notifications at an events queue and this loop feeds each
real S3 event (as S3 delivered it) to `capillary.intake.handle_event`. An event message is
deleted only after it was handled; one that fails comes back after its visibility timeout.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from types import FrameType
from typing import Any

from capillary.intake.handler import Clients, IntakeConfig, IntakeError, handle_event

log = logging.getLogger("capillary.intake.local")


def poll_once(
    queue_url: str, config: IntakeConfig, clients: Clients, wait_seconds: int = 20
) -> tuple[int, int]:
    """One long poll: handle what arrives; return (handled, failed) event message counts."""
    response = clients.sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
    )
    handled = failed = 0
    for message in response.get("Messages", []):
        mid = message.get("MessageId")
        try:
            event = json.loads(message["Body"])
            if not isinstance(event, dict):
                raise ValueError("event body is not a JSON object")
            handle_event(event, config, clients)
        except (IntakeError, ValueError) as exc:
            failed += 1
            log.error("event not handled, left for redelivery: %s", exc, extra={"message_id": mid})
            continue
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
