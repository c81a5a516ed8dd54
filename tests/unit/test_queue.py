"""The queue contract: SQS's attribute strings read once into counts, and the one worker count."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capillary.contract.queue import (
    ATTRIBUTE_NAMES,
    QueueAttributeError,
    QueueDepth,
    workers_needed,
)

DLQ = "arn:aws:sqs:eu-west-1:123456789012:capillary-demo-work-dlq"


def test_attributes_as_sqs_returns_them_become_counts_and_the_redrive_policy() -> None:
    # GIVEN GetQueueAttributes' answer for a work queue with a dead-letter queue (all strings)
    attributes = {
        "ApproximateNumberOfMessages": "3",
        "ApproximateNumberOfMessagesNotVisible": "2",
        "ApproximateNumberOfMessagesDelayed": "1",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": DLQ, "maxReceiveCount": "4"}),
        "VisibilityTimeout": "300",
    }

    # WHEN it is read
    depth = QueueDepth.from_attributes(attributes)

    # THEN the counts are numbers and the policy names the dead-letter queue and the receive count
    assert depth == QueueDepth(visible=3, in_flight=2, delayed=1, max_receive_count=4, dead_letter_arn=DLQ)
    assert depth.dead_letter_queue_name == "capillary-demo-work-dlq"
    assert depth.as_dict()["in_flight"] == 2


def test_a_queue_without_redrive_policy_has_none() -> None:
    depth = QueueDepth.from_attributes({"ApproximateNumberOfMessages": "0"})
    assert depth == QueueDepth(visible=0, in_flight=0, delayed=0)
    assert depth.max_receive_count is None and depth.dead_letter_queue_name is None


def test_what_is_asked_for_is_what_is_read() -> None:
    assert set(ATTRIBUTE_NAMES) == {
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
        "RedrivePolicy",
    }


@pytest.mark.parametrize(
    ("attributes", "named"),
    [
        (
            {"ApproximateNumberOfMessages": "many"},
            "ApproximateNumberOfMessages: expected a count, got 'many'",
        ),
        ({"ApproximateNumberOfMessagesNotVisible": "-1"}, "ApproximateNumberOfMessagesNotVisible: expected"),
        ({"ApproximateNumberOfMessagesDelayed": "1.5"}, "ApproximateNumberOfMessagesDelayed: expected"),
        ({"RedrivePolicy": "{not json"}, "RedrivePolicy: expected a JSON object"),
        ({"RedrivePolicy": "[1]"}, "RedrivePolicy: expected a JSON object"),
        (
            {"RedrivePolicy": json.dumps({"maxReceiveCount": 3})},
            "deadLetterTargetArn must be an SQS queue ARN",
        ),
        (
            {"RedrivePolicy": json.dumps({"deadLetterTargetArn": DLQ, "maxReceiveCount": "x"})},
            "RedrivePolicy.maxReceiveCount: expected a count",
        ),
    ],
)
def test_an_attribute_that_is_not_what_sqs_documents_is_named(attributes: dict[str, str], named: str) -> None:
    with pytest.raises(QueueAttributeError, match=named.replace(".", r"\.")):
        QueueDepth.from_attributes(attributes)


@pytest.mark.parametrize(
    ("visible", "in_flight", "per_worker", "cap", "expected"),
    [
        (0, 0, 1, 4, 0),  # nothing waiting, nothing wanted
        (1, 0, 1, 4, 1),
        (1, 1, 2, 4, 1),  # in-flight messages count: a worker holds each one
        (10, 0, 2, 3, 3),  # capped
        (10, 0, 2, None, 5),  # down.yml's keep count is not capped
        (3, 0, 2, None, 2),  # rounded up: a half-used worker is still a worker
        (5, 0, 1, 0, 0),  # a cap of 0 launches nothing
    ],
)
def test_workers_needed(
    visible: int, in_flight: int, per_worker: int, cap: int | None, expected: int
) -> None:
    assert workers_needed(visible, in_flight, per_worker, cap) == expected


@given(
    st.integers(0, 10_000),
    st.integers(0, 10_000),
    st.integers(1, 50),
    st.one_of(st.none(), st.integers(0, 100)),
)
def test_workers_needed_is_the_capped_ceiling(
    visible: int, in_flight: int, per_worker: int, cap: int | None
) -> None:
    needed = math.ceil((visible + in_flight) / per_worker)
    assert workers_needed(visible, in_flight, per_worker, cap) == (
        needed if cap is None else min(needed, cap)
    )
    # and enough of them take every message
    got = workers_needed(visible, in_flight, per_worker)
    assert got * per_worker >= visible + in_flight > (got - 1) * per_worker or visible + in_flight == 0


def test_the_depth_gives_the_same_count() -> None:
    depth = QueueDepth(visible=7, in_flight=1, delayed=5)
    assert depth.workers_needed(3, cap=10) == workers_needed(7, 1, 3, 10) == 3


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ((1, 0, 0, None), "samples_per_worker must be an int >= 1, got 0"),
        ((1, 0, True, None), "samples_per_worker must be an int >= 1, got True"),
        ((-1, 0, 1, None), "visible must be a count"),
        ((0, "2", 1, None), "in_flight must be a count"),
        ((1, 0, 1, -1), "cap must be an int >= 0 or None, got -1"),
    ],
)
def test_bad_arguments_are_refused_naming_them(args: tuple[object, ...], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        workers_needed(*args)  # type: ignore[arg-type]
