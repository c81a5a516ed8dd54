"""One received work message while the worker holds it, and the ways an attempt at it ends.

The daemon (`daemon`) turns an SQS message into a `WorkItem`; the sample's pipeline (`pipeline`)
and the output side (`outputs`) work on it. An attempt ends in one of three ways: settled
(`Settled`: processed, or skipped as already done), failed (`SampleFailedError`: an error
report, and the message is sent again after a backoff or, when it cannot succeed, moved to the
dead-letter queue), or handed back (`HandBackError`: a drain, the message is back at once
without spending an attempt). `requeue` does the sending.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from capillary.contract.message import WorkMessage
from capillary.contract.samples import SampleKey
from capillary.worker.samplelog import SampleLog

# The engine's stdout and stderr in the workspace; the error report quotes its tail.
ENGINE_LOG = "engine.log"

# How an attempt that did not fail ended; the daemon counts these in its state file.
Settled = Literal["processed", "skipped"]


class SampleFailedError(Exception):
    """This attempt cannot produce an output; `reason` goes into the error report."""

    def __init__(self, phase: str, reason: str, *, retryable: bool = True) -> None:
        super().__init__(reason)
        self.phase = phase
        self.reason = reason
        self.retryable = retryable


class HandBackError(Exception):
    """A drain interrupted the run: return the message to the queue at once, no report."""


def check_drain(stop: threading.Event) -> None:
    """Between two steps of a run: hand the message back if the daemon is draining."""
    if stop.is_set():
        raise HandBackError()


@dataclass
class WorkItem:
    message_id: str
    receipt: str
    # SQS's ApproximateReceiveCount of this message: above 1 only when an earlier receiver died
    # holding it (handed-back and retried messages are sent again, fresh).
    receive_count: int
    received_at: float
    # The message's bucket, or the consumer's configured one when the message names none.
    bucket: str
    message: WorkMessage
    # The body as received: sent again (with its history grown) when the message is handed back.
    body: str = ""
    # Where the attempt is (fetch, engine, upload): recorded with an interruption.
    phase: str = "receive"
    # An earlier attempt's error report is beside the output's key: removed once the output is in.
    stale_report: bool = False
    # The output's run record is there (`outputs/…-run.json`), as the same listing saw it.
    record_found: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    # What the daemon logged about this sample while it held it (the daemon attaches it): travels
    # in run.json and the error report, since the worker's journal dies with the worker.
    log: SampleLog | None = None
    # The engine's command line as run (run.json's record of it).
    command: list[str] = field(default_factory=list)

    def log_lines(self) -> list[dict[str, Any]]:
        return self.log.lines() if self.log is not None else []

    @property
    def attempt(self) -> int:
        """Which attempt at this sample this is, counting every earlier one (failed, interrupted,
        or lost with a dead worker)."""
        return len(self.message.history) + self.receive_count

    @property
    def failures(self) -> int:
        """The sample's own earlier failures (interruptions do not count)."""
        return self.message.failures

    @property
    def key(self) -> str:
        return self.message.key

    @property
    def sample(self) -> SampleKey:
        return self.message.sample

    @property
    def ctx(self) -> dict[str, Any]:
        """The stable logging keys of everything logged about this item."""
        return {
            "message_id": self.message_id,
            "key": self.key,
            "sample": self.sample.name,
            "attempt": self.attempt,
        }


def now_iso() -> str:
    """The time stamp of run.json, reports, claims and the state file (UTC, seconds)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
