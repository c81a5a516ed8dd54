"""A work queue's depth as SQS reports it, and how many workers that depth needs.

SQS answers GetQueueAttributes with strings (`"ApproximateNumberOfMessages": "3"`, the redrive
policy as a JSON document). `QueueDepth.from_attributes` reads them once into numbers, and
`workers_needed` turns them into a worker count. `capillary status` (controller), the collection's
`capillary.pcgr.sqs_queue_info` module (which `up.yml` and `down.yml` size the fleet with) and the
EDA source `rulebooks/sources/sqs_queue_depth.py` all read a queue through this module, so the
three cannot disagree on what "waiting" means or how the count is rounded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

VISIBLE = "ApproximateNumberOfMessages"
IN_FLIGHT = "ApproximateNumberOfMessagesNotVisible"
DELAYED = "ApproximateNumberOfMessagesDelayed"
REDRIVE_POLICY = "RedrivePolicy"

# What to ask GetQueueAttributes for: the counts and the redrive policy, nothing else.
ATTRIBUTE_NAMES = (VISIBLE, IN_FLIGHT, DELAYED, REDRIVE_POLICY)


class QueueAttributeError(ValueError):
    """A queue attribute that is not what SQS documents (a count that is not a number, ...)."""


@dataclass(frozen=True)
class QueueDepth:
    """The counts of one queue; `max_receive_count`/`dead_letter_arn` are None without a redrive policy."""

    visible: int
    in_flight: int
    delayed: int
    max_receive_count: int | None = None
    dead_letter_arn: str | None = None

    @property
    def dead_letter_queue_name(self) -> str | None:
        """The dead-letter queue's name: the last field of its ARN."""
        return self.dead_letter_arn.rsplit(":", 1)[-1] if self.dead_letter_arn else None

    def workers_needed(self, samples_per_worker: int, cap: int | None = None) -> int:
        return workers_needed(self.visible, self.in_flight, samples_per_worker, cap)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_attributes(cls, attributes: Mapping[str, Any]) -> QueueDepth:
        """Read GetQueueAttributes' `Attributes` map; a count SQS did not return is 0."""
        max_receive_count: int | None = None
        dead_letter_arn: str | None = None
        redrive = attributes.get(REDRIVE_POLICY)
        if redrive:
            policy = _redrive_policy(redrive)
            dead_letter_arn = policy.get("deadLetterTargetArn")
            if not isinstance(dead_letter_arn, str) or not dead_letter_arn.startswith("arn:"):
                raise QueueAttributeError(
                    f"{REDRIVE_POLICY}: deadLetterTargetArn must be an SQS queue ARN, got {dead_letter_arn!r}"
                )
            max_receive_count = _count(f"{REDRIVE_POLICY}.maxReceiveCount", policy.get("maxReceiveCount", 0))
        return cls(
            visible=_count(VISIBLE, attributes.get(VISIBLE, 0)),
            in_flight=_count(IN_FLIGHT, attributes.get(IN_FLIGHT, 0)),
            delayed=_count(DELAYED, attributes.get(DELAYED, 0)),
            max_receive_count=max_receive_count,
            dead_letter_arn=dead_letter_arn,
        )


def workers_needed(visible: int, in_flight: int, samples_per_worker: int, cap: int | None = None) -> int:
    """Workers for the messages waiting or being worked on: ceil((visible + in flight) / per worker).

    In-flight messages count: a worker holds each one, and one that is handed back comes round
    again. `cap` (the deployment's maximum) bounds the answer; None leaves it unbounded.
    """
    for name, value in (("visible", visible), ("in_flight", in_flight)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a count (an int >= 0), got {value!r}")
    if (
        isinstance(samples_per_worker, bool)
        or not isinstance(samples_per_worker, int)
        or samples_per_worker < 1
    ):
        raise ValueError(f"samples_per_worker must be an int >= 1, got {samples_per_worker!r}")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
        raise ValueError(f"cap must be an int >= 0 or None, got {cap!r}")
    needed = -(-(visible + in_flight) // samples_per_worker)
    return needed if cap is None else min(needed, cap)


def _count(name: str, value: Any) -> int:
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise QueueAttributeError(f"{name}: expected a count, got {value!r}") from None
    if isinstance(value, bool) or count < 0 or (isinstance(value, float) and value != count):
        raise QueueAttributeError(f"{name}: expected a count, got {value!r}")
    return count


def _redrive_policy(raw: Any) -> dict[str, Any]:
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        policy = json.loads(raw)
    except (TypeError, ValueError):
        raise QueueAttributeError(f"{REDRIVE_POLICY}: expected a JSON object, got {raw!r}") from None
    if not isinstance(policy, dict):
        raise QueueAttributeError(f"{REDRIVE_POLICY}: expected a JSON object, got {raw!r}")
    return policy
