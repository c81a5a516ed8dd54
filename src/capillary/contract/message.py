"""The work message and the S3 names around it: what the intake queues and the consumer reads.

One message per upload under `inputs/`, written by the intake handler (`WorkMessage.to_body`) and
read by the consumer (`WorkMessage.from_body`); nothing else builds or parses a body. On the wire
it is a JSON object:

    {"bucket": "…", "key": "inputs/{batch}-{uuid}-{kind}.tar.gz", "batch": "…", "uuid": "…",
     "kind": "somatic", "size": 1234, "etag": "…", "event_time": "…", "sequencer": "…"}

S3 delivers events at least once, so the same (key, etag) may arrive twice: the consumer is
idempotent on it. `key` is the one field a message must have (a hand-written or older message may
carry only `bucket` and `key`); every other field, when present, must have its type, and `batch`,
`uuid` and `kind` must agree with the key. Fields this version does not know are ignored, so a
newer intake never sends an older consumer's messages to the dead-letter queue.

A message the consumer hands back (a drain, a spot notice, a restart) or retries after a failure
is sent again as a fresh message carrying `history`, one entry per earlier attempt, so the
sample's own failures are counted by the consumer and an interruption never spends an attempt:

    "history": [{"outcome": "interrupted", "time": "…", "reason": "SIGTERM", "phase": "engine",
                 "message_id": "…", "worker": "…"}, {"outcome": "failed", …}]

A message without history (every message the intake sends) has no `history` field on the wire,
and a consumer that predates it ignores the field.

Beside it, the object-metadata keys and the claims prefix that the intake, `capillary submit`
and the consumer share.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from capillary.contract.samples import OUTPUT_PREFIX, SampleKey, SampleKeyError

# Where consumers before the conditional output PUT took the right to write one sample's output
# (`{CLAIMS_PREFIX}{name}.json`). Today's consumer writes the output itself with If-None-Match and
# writes no claim, but a bucket may still hold one, or an older worker may write one: the intake's
# output notifications skip them (they are no `-output.tar.gz` or `-error.json`).
CLAIMS_PREFIX = f"{OUTPUT_PREFIX}.claims/"

# Object metadata (`x-amz-meta-*`). On an input: written by `capillary submit` (the file's
# sha256); read by the consumer, which verifies the download against it.
META_SHA256 = "sha256"
# On an output (`outputs/…-output.tar.gz`), all written by the consumer when it uploads:
# the input's etag and sha256 - read back by consumers to tell that an input is already done;
META_INPUT_ETAG = "input-etag"
META_INPUT_SHA256 = "input-sha256"
# the work message it answered and the capillary version that made it - read by people
# auditing an output (nothing in capillary reads them). The output's own sha256 goes under
# META_SHA256 too, for whoever downloads it.
META_MESSAGE_ID = "message-id"
META_CAPILLARY_VERSION = "capillary-version"
# On a run record (`outputs/…-run.json`): the sha256 of the output it describes (the output's
# META_SHA256), read back by consumers to tell that the record there is this output's.
META_OUTPUT_SHA256 = "output-sha256"


# The outcomes an attempt records in a message's history.
FAILED = "failed"
INTERRUPTED = "interrupted"
OUTCOMES = (FAILED, INTERRUPTED)
# A history stays well inside SQS's 256 KiB body: at most this many entries (the oldest
# interruptions go first; failures, which decide the dead-letter queue, are always kept), and
# each reason cut to REASON_MAX characters.
HISTORY_MAX = 32
REASON_MAX = 300


class WorkMessageError(ValueError):
    """A body that is not a work message; names the field and what is wrong with it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def claim_key(sample: SampleKey) -> str:
    """The claim object of one sample's output."""
    return f"{CLAIMS_PREFIX}{sample.name}.json"


@dataclass(frozen=True)
class Attempt:
    """One earlier attempt at a message: how it ended (`outcome`), when, and why."""

    outcome: str
    time: str
    reason: str = ""
    phase: str | None = None
    message_id: str | None = None
    worker: str | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise WorkMessageError("history", f"outcome {self.outcome!r} is not one of {', '.join(OUTCOMES)}")
        if len(self.reason) > REASON_MAX:
            object.__setattr__(self, "reason", self.reason[: REASON_MAX - 1] + "…")

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Any, index: int) -> Attempt:
        field = f"history[{index}]"
        if not isinstance(data, dict):
            raise WorkMessageError(field, f"must be an object, got {_json_type(data)}")
        outcome, time = _string(data, "outcome", field), _string(data, "time", field)
        if outcome is None or time is None:
            raise WorkMessageError(field, "needs an outcome and a time")
        return cls(
            outcome=outcome,
            time=time,
            reason=_string(data, "reason", field) or "",
            phase=_string(data, "phase", field),
            message_id=_string(data, "message_id", field),
            worker=_string(data, "worker", field),
        )


@dataclass(frozen=True)
class WorkMessage:
    """One upload to process. `None` marks what the sender did not know (or an older message
    did not carry); an empty `bucket` means the consumer's configured bucket."""

    bucket: str | None
    key: str
    batch: str
    uuid: str
    kind: str
    size: int | None = None
    etag: str | None = None
    event_time: str | None = None
    sequencer: str | None = None
    # Earlier attempts, oldest first (empty for a message the intake sent).
    history: tuple[Attempt, ...] = ()

    def __post_init__(self) -> None:
        try:
            sample = SampleKey.parse(self.key)
        except SampleKeyError as exc:
            raise WorkMessageError("key", f"{self.key!r} is not a sample key: {exc.reason}") from None
        for name in ("batch", "uuid", "kind"):
            if getattr(self, name) != getattr(sample, name):
                raise WorkMessageError(
                    name, f"{getattr(self, name)!r} does not match the key's {name} {getattr(sample, name)!r}"
                )
        if self.size is not None and self.size < 0:
            raise WorkMessageError("size", f"must be 0 or more, got {self.size}")

    @classmethod
    def for_sample(
        cls,
        sample: SampleKey,
        *,
        bucket: str | None,
        size: int | None = None,
        etag: str | None = None,
        event_time: str | None = None,
        sequencer: str | None = None,
    ) -> WorkMessage:
        return cls(
            bucket=bucket,
            key=sample.input_key,
            batch=sample.batch,
            uuid=sample.uuid,
            kind=sample.kind,
            size=size,
            etag=etag,
            event_time=event_time,
            sequencer=sequencer,
        )

    @property
    def sample(self) -> SampleKey:
        return SampleKey(batch=self.batch, uuid=self.uuid, kind=self.kind)

    @property
    def failures(self) -> int:
        """Earlier attempts that failed (interruptions are not the sample's failures)."""
        return sum(1 for a in self.history if a.outcome == FAILED)

    @property
    def interruptions(self) -> int:
        return sum(1 for a in self.history if a.outcome == INTERRUPTED)

    def with_attempt(self, attempt: Attempt) -> WorkMessage:
        """This message with `attempt` added to its history (kept within HISTORY_MAX entries)."""
        history = [*self.history, attempt]
        while len(history) > HISTORY_MAX:
            oldest = next((i for i, a in enumerate(history) if a.outcome == INTERRUPTED), 0)
            del history[oldest]
        return dataclasses.replace(self, history=tuple(history))

    def to_body(self) -> str:
        """The JSON body of the SQS message, every field in order (`null` where unknown); `history`
        last, and only when there is one."""
        body: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "history"
        }
        if self.history:
            body["history"] = [a.as_dict() for a in self.history]
        return json.dumps(body)

    def attributes(self) -> dict[str, dict[str, str]]:
        """SQS message attributes, for reading a queue without parsing bodies."""
        return {
            "sample": {"DataType": "String", "StringValue": self.sample.name},
            "etag": {"DataType": "String", "StringValue": self.etag or "unknown"},
        }

    @classmethod
    def from_body(cls, body: str) -> WorkMessage:
        """Parse an SQS message body; WorkMessageError names the field and the reason."""
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise WorkMessageError("body", f"not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise WorkMessageError("body", f"not a JSON object (found {_json_type(data)})")
        if "key" not in data:
            raise WorkMessageError("key", "missing")
        key = _string(data, "key")
        if key is None:
            raise WorkMessageError("key", "must be a string, got null")
        try:
            sample = SampleKey.parse(key)
        except SampleKeyError as exc:
            raise WorkMessageError("key", f"{key!r} is not a sample key: {exc.reason}") from None
        return cls(
            bucket=_string(data, "bucket"),
            key=key,
            batch=_string(data, "batch") or sample.batch,
            uuid=_string(data, "uuid") or sample.uuid,
            kind=_string(data, "kind") or sample.kind,
            size=_integer(data, "size"),
            etag=_string(data, "etag"),
            event_time=_string(data, "event_time"),
            sequencer=_string(data, "sequencer"),
            history=_history(data),
        )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _string(data: dict[str, Any], name: str, within: str = "") -> str | None:
    value = data.get(name)
    if value is None or isinstance(value, str):
        return value
    field = f"{within}.{name}" if within else name
    raise WorkMessageError(field, f"must be a string or null, got {_json_type(value)}")


def _history(data: dict[str, Any]) -> tuple[Attempt, ...]:
    value = data.get("history")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise WorkMessageError("history", f"must be an array or null, got {_json_type(value)}")
    return tuple(Attempt.from_dict(entry, i) for i, entry in enumerate(value))


def _integer(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise WorkMessageError(name, f"must be a whole number or null, got {_json_type(value)}")
    return value
