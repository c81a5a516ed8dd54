"""A handed-back message carries its history: interruptions are recorded, never counted as failures."""

from __future__ import annotations

import json

import pytest

from capillary.contract.message import (
    FAILED,
    HISTORY_MAX,
    INTERRUPTED,
    REASON_MAX,
    Attempt,
    WorkMessage,
    WorkMessageError,
)
from capillary.contract.samples import SampleKey
from capillary.worker.config import ConsumerConfig
from capillary.worker.item import WorkItem
from capillary.worker.requeue import Requeue, queue_url_of

KEY = "inputs/b1-0a1b2c-somatic.tar.gz"


def message(**kwargs: object) -> WorkMessage:
    return WorkMessage.for_sample(SampleKey.parse(KEY), bucket="b", etag="e", size=10, **kwargs)  # type: ignore[arg-type]


def test_a_message_without_history_has_none_on_the_wire_and_older_bodies_stay_valid() -> None:
    sent = message()
    assert "history" not in json.loads(sent.to_body())
    assert WorkMessage.from_body(sent.to_body()).history == ()
    assert WorkMessage.from_body(json.dumps({"key": KEY, "history": None})).history == ()


def test_history_round_trips_and_counts_failures_apart_from_interruptions() -> None:
    # GIVEN a message interrupted once and failed once
    sent = message().with_attempt(Attempt(INTERRUPTED, "2026-01-01T00:00:00Z", "SIGTERM", "engine"))
    sent = sent.with_attempt(Attempt(FAILED, "2026-01-01T00:01:00Z", "exit 1", "engine", "m-2", "w1"))
    # WHEN it goes through a body and back
    got = WorkMessage.from_body(sent.to_body())
    # THEN the history is intact, last on the wire, and only the failure counts as one
    assert got == sent
    assert list(json.loads(sent.to_body()))[-1] == "history"
    assert (got.failures, got.interruptions) == (1, 1)
    assert got.history[1].worker == "w1"


@pytest.mark.parametrize(
    ("history", "field"),
    [
        ("yes", "history"),
        (["x"], "history[0]"),
        ([{"outcome": "lost", "time": "t"}], "history"),
        ([{"outcome": "failed"}], "history[0]"),
        ([{"outcome": "failed", "time": "t", "reason": 3}], "history[0].reason"),
    ],
)
def test_a_malformed_history_names_the_field(history: object, field: str) -> None:
    with pytest.raises(WorkMessageError) as err:
        WorkMessage.from_body(json.dumps({"key": KEY, "history": history}))
    assert err.value.field == field


def test_history_stays_bounded_keeping_every_failure() -> None:
    # GIVEN two failures and then more interruptions than a history keeps
    msg = message()
    for outcome in [FAILED, FAILED] + [INTERRUPTED] * (HISTORY_MAX + 5):
        msg = msg.with_attempt(Attempt(outcome, "t", "x" * (REASON_MAX + 50)))
    # THEN the oldest interruptions went, the failures stayed, and reasons are cut
    assert len(msg.history) == HISTORY_MAX
    assert msg.failures == 2
    assert all(len(a.reason) == REASON_MAX for a in msg.history)
    assert len(msg.to_body()) < 64 * 1024


def test_the_attempt_counts_every_earlier_one_and_failures_only_the_samples() -> None:
    msg = message().with_attempt(Attempt(INTERRUPTED, "t")).with_attempt(Attempt(FAILED, "t"))
    # A second receive of this message: its first receiver died holding it.
    item = WorkItem("m", "r", receive_count=2, received_at=0.0, bucket="b", message=msg)
    assert item.attempt == 4
    assert item.failures == 1


def test_a_message_sent_again_keeps_fields_this_version_does_not_know() -> None:
    # GIVEN a body from a newer intake, with a field this consumer ignores
    body = json.dumps({**json.loads(message().to_body()), "priority": "high"})
    item = WorkItem(
        "m", "r", receive_count=1, received_at=0.0, bucket="b", message=WorkMessage.from_body(body), body=body
    )
    requeue = Requeue(ConsumerConfig(queue_url="https://sqs.example/1/q"), sqs=None, identity=dict)
    # WHEN it is sent again with an interruption recorded
    again = json.loads(requeue._body(item, Attempt(INTERRUPTED, "t", "SIGTERM")))
    # THEN the unknown field is still there, beside the history
    assert again["priority"] == "high"
    assert again["history"] == [{"outcome": "interrupted", "time": "t", "reason": "SIGTERM"}]


def test_the_dead_letter_queue_of_the_same_account_is_found_beside_the_work_queue() -> None:
    url = queue_url_of(
        "arn:aws:sqs:eu-west-1:123456789012:capillary-demo-work-dlq",
        "https://sqs.eu-west-1.amazonaws.com/123456789012/capillary-demo-work",
        sqs=None,
    )
    assert url == "https://sqs.eu-west-1.amazonaws.com/123456789012/capillary-demo-work-dlq"
