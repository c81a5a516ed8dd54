"""The work message: what the intake writes is what the consumer reads, and nothing else is."""

from __future__ import annotations

import json
from typing import Any

import pytest

from capillary.contract.message import CLAIMS_PREFIX, WorkMessage, WorkMessageError, claim_key
from capillary.contract.samples import SampleKey, SampleKeyError, parse_output_key

KEY = "inputs/run 7+b-0a1b2c-somatic.tar.gz"
FULL: dict[str, Any] = {
    "bucket": "capillary-demo-samples",
    "key": KEY,
    "batch": "run 7+b",
    "uuid": "0a1b2c",
    "kind": "somatic",
    "size": 123456789,
    "etag": "9b2cf535f27731c974343645a3985328",
    "event_time": "2026-11-21T00:00:00.000Z",
    "sequencer": "0055AED6DCD90281E5",
}


def test_every_field_round_trips() -> None:
    # GIVEN a message as the intake builds it, every field set
    sent = WorkMessage.for_sample(
        SampleKey.parse(KEY),
        bucket=FULL["bucket"],
        size=FULL["size"],
        etag=FULL["etag"],
        event_time=FULL["event_time"],
        sequencer=FULL["sequencer"],
    )
    # WHEN it goes through a body and back
    body = sent.to_body()
    got = WorkMessage.from_body(body)
    # THEN nothing is lost, the wire carries the nine fields in order, and the sample is named
    assert got == sent
    assert list(json.loads(body)) == list(FULL)
    assert json.loads(body) == FULL
    assert got.sample == SampleKey(batch="run 7+b", uuid="0a1b2c", kind="somatic")
    assert got.sample.output_key == "outputs/run 7+b-0a1b2c-somatic-output.tar.gz"


def test_unknown_fields_round_trip_as_null_and_a_bare_key_is_enough() -> None:
    # An upload whose event carried no size, etag or sequencer: null on the wire, None back
    sent = WorkMessage.for_sample(SampleKey.parse(KEY), bucket="b")
    assert json.loads(sent.to_body())["etag"] is None
    assert WorkMessage.from_body(sent.to_body()) == sent
    # A hand-written message with only the key: the rest derives from it or stays unknown
    bare = WorkMessage.from_body(json.dumps({"key": KEY}))
    assert (bare.bucket, bare.batch, bare.uuid, bare.kind) == (None, "run 7+b", "0a1b2c", "somatic")
    assert (bare.size, bare.etag, bare.event_time, bare.sequencer) == (None, None, None, None)


def test_fields_this_version_does_not_know_are_ignored() -> None:
    got = WorkMessage.from_body(json.dumps({**FULL, "priority": "high"}))
    assert got == WorkMessage.from_body(json.dumps(FULL))


def test_attributes_name_the_sample_and_etag() -> None:
    message = WorkMessage.from_body(json.dumps(FULL))
    assert message.attributes() == {
        "sample": {"DataType": "String", "StringValue": "run 7+b-0a1b2c-somatic"},
        "etag": {"DataType": "String", "StringValue": FULL["etag"]},
    }
    no_etag = WorkMessage.from_body(json.dumps({"key": KEY}))
    assert no_etag.attributes()["etag"]["StringValue"] == "unknown"


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ("", "body", "not JSON"),
        ("{'key': 'x'}", "body", "not JSON"),
        ("[1, 2]", "body", "not a JSON object (found an array)"),
        ('"inputs/b-abc123-somatic.tar.gz"', "body", "not a JSON object (found a string)"),
        ("null", "body", "not a JSON object (found null)"),
        ("{}", "key", "missing"),
        (json.dumps({**FULL, "key": None}), "key", "must be a string, got null"),
        (json.dumps({**FULL, "key": 7}), "key", "must be a string or null, got a number"),
        (json.dumps({**FULL, "key": "uploads/b-abc123-somatic.tar.gz"}), "key", "wrong prefix"),
        (json.dumps({**FULL, "key": "inputs/b-abc123-somatic-tar.gz"}), "key", "a hyphen where the dot"),
        (json.dumps({**FULL, "key": "inputs/b-ABC123-somatic.tar.gz"}), "key", "uuid"),
        (json.dumps({**FULL, "bucket": 5}), "bucket", "must be a string or null, got a number"),
        (json.dumps({**FULL, "batch": "other"}), "batch", "does not match the key's batch 'run 7+b'"),
        (json.dumps({**FULL, "batch": ["run 7+b"]}), "batch", "must be a string or null, got an array"),
        (json.dumps({**FULL, "uuid": "ffffff"}), "uuid", "does not match the key's uuid '0a1b2c'"),
        (json.dumps({**FULL, "kind": "normal"}), "kind", "does not match the key's kind 'somatic'"),
        (json.dumps({**FULL, "size": "12"}), "size", "must be a whole number or null, got a string"),
        (json.dumps({**FULL, "size": 1.5}), "size", "must be a whole number or null, got a number"),
        (json.dumps({**FULL, "size": True}), "size", "must be a whole number or null, got a boolean"),
        (json.dumps({**FULL, "size": -1}), "size", "must be 0 or more, got -1"),
        (json.dumps({**FULL, "etag": 123}), "etag", "must be a string or null, got a number"),
        (json.dumps({**FULL, "event_time": {}}), "event_time", "must be a string or null, got an object"),
        (json.dumps({**FULL, "sequencer": False}), "sequencer", "must be a string or null, got a boolean"),
    ],
)
def test_a_malformed_body_is_refused_naming_the_field_and_the_reason(
    body: str, field: str, reason: str
) -> None:
    with pytest.raises(WorkMessageError) as refused:
        WorkMessage.from_body(body)
    assert refused.value.field == field
    assert reason in refused.value.reason
    assert str(refused.value).startswith(f"{field}: ")
    assert isinstance(refused.value, ValueError)


def test_a_message_built_in_code_is_checked_like_a_parsed_one() -> None:
    with pytest.raises(WorkMessageError, match="kind: 'normal' does not match"):
        WorkMessage(bucket="b", key=KEY, batch="run 7+b", uuid="0a1b2c", kind="normal")
    with pytest.raises(WorkMessageError, match="key: 'inputs/x' is not a sample key"):
        WorkMessage(bucket="b", key="inputs/x", batch="x", uuid="0a1b2c", kind="somatic")


def test_claims_sit_under_outputs_and_are_not_outputs() -> None:
    sample = SampleKey.parse(KEY)
    assert claim_key(sample) == f"{CLAIMS_PREFIX}run 7+b-0a1b2c-somatic.json"
    # the intake's output notifications pass them over: a claim is no output or error report
    with pytest.raises(SampleKeyError):
        parse_output_key(claim_key(sample))
