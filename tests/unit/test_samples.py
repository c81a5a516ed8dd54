"""The sample key contract: format/parse round-trips and a named reason for every rejection."""

from __future__ import annotations

from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capillary.contract.samples import (
    KEY_MAX_BYTES,
    SampleKey,
    SampleKeyError,
    parse_output_key,
    rejected_key,
)

batches = st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9._+ -]{0,30}[A-Za-z0-9])?", fullmatch=True)
uuids = st.from_regex(r"[0-9a-f]{6}", fullmatch=True)
kinds = st.sampled_from(["somatic", "normal"])
sample_keys = st.builds(SampleKey, batch=batches, uuid=uuids, kind=kinds)


@given(sample_keys)
def test_format_then_parse_round_trips(key: SampleKey) -> None:
    # GIVEN any valid identity WHEN its input key is formatted and parsed THEN the same identity returns
    assert SampleKey.parse(key.input_key) == key
    assert key.input_key == f"inputs/{key.batch}-{key.uuid}-{key.kind}.tar.gz"


@given(sample_keys)
def test_event_keys_are_decoded_exactly_once(key: SampleKey) -> None:
    # GIVEN the key as S3 encodes it in an event (spaces as '+', '+' as %2B)
    encoded = quote_plus(key.input_key, safe="/")
    # WHEN parsed from the event THEN it is the identity, decoded once
    assert SampleKey.from_event_key(encoded) == key


@given(sample_keys)
def test_output_error_and_run_keys_round_trip(key: SampleKey) -> None:
    assert parse_output_key(key.output_key) == (key, "output")
    assert parse_output_key(key.error_key) == (key, "error")
    assert parse_output_key(key.run_key) == (key, "run")
    assert key.run_key == key.output_key.removesuffix("-output.tar.gz") + "-run.json"
    assert key.output_key.startswith("outputs/") and key.error_key.endswith("-error.json")


@given(st.text(max_size=80))
def test_arbitrary_text_is_parsed_or_rejected_with_a_reason(text: str) -> None:
    # GIVEN any text at all WHEN parsed THEN it is either a key or a SampleKeyError naming a reason
    try:
        key = SampleKey.parse("inputs/" + text)
    except SampleKeyError as exc:
        assert exc.reason and exc.key == "inputs/" + text
    else:
        assert key.input_key == "inputs/" + text


def test_batch_may_contain_hyphens_parsed_from_the_right() -> None:
    key = SampleKey.parse("inputs/run-2024-11-abc123-normal.tar.gz")
    assert (key.batch, key.uuid, key.kind) == ("run-2024-11", "abc123", "normal")
    assert key.name == "run-2024-11-abc123-normal"


def test_plus_and_space_survive_a_single_decode() -> None:
    # GIVEN the object "inputs/a+b c-abc123-somatic.tar.gz", which S3 reports as "a%2Bb+c-…"
    raw = "inputs/a%2Bb+c-abc123-somatic.tar.gz"
    # WHEN decoded THEN '+' from %2B stays a plus and the '+' for a space becomes a space (decoding
    # twice would turn the plus into a second space)
    assert SampleKey.from_event_key(raw).batch == "a+b c"


def test_percent_in_batch_is_rejected_after_a_single_decode() -> None:
    with pytest.raises(SampleKeyError, match="batch 'a%2Bb'"):
        SampleKey.from_event_key(quote("inputs/a%2Bb-abc123-somatic.tar.gz"))


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("inputs/b1-abc123-somatic-tar.gz", "a hyphen where the dot belongs"),
        ("inputs/b1-abc123-somatic.tgz", "extension must be .tar.gz (found '.tgz'"),
        ("inputs/b1-abc123-somatic.tar", "an uncompressed tar"),
        ("inputs/b1-abc123-somatic.zip", "extension must be .tar.gz (found '.zip')"),
        ("inputs/b1-abc123-somatic", "extension must be .tar.gz"),
        ("inputs/b1-abc123-somatic.tar.gz.tar.gz", "the extension twice"),
        ("inputs/b1-somatic.tar.gz", "missing uuid"),
        ("inputs/b1-abc12-somatic.tar.gz", "missing or malformed uuid"),
        ("inputs/b1-ABC123-somatic.tar.gz", "missing or malformed uuid"),
        ("inputs/b1-abcxyz-somatic.tar.gz", "missing or malformed uuid"),
        ("inputs/b1-abc123-tumor.tar.gz", "unknown kind 'tumor'"),
        ("inputs/b1-abc123-Somatic.tar.gz", "kinds are lowercase"),
        ("uploads/b1-abc123-somatic.tar.gz", "wrong prefix"),
        ("b1-abc123-somatic.tar.gz", "wrong prefix"),
        ("inputs/abc123-somatic.tar.gz", "missing batch"),
        ("inputs/-abc123-somatic.tar.gz", "missing batch"),
        ("inputs/.tar.gz", "missing name"),
        ("inputs/sub/b1-abc123-somatic.tar.gz", "directly under 'inputs/'"),
        ("inputs/b1_-abc123-somatic.tar.gz", "must start and end with a letter or digit"),
        ("inputs/b1;rm-abc123-somatic.tar.gz", "may hold only letters"),
        ("", "empty key"),
    ],
)
def test_each_rejection_names_its_reason(key: str, reason: str) -> None:
    # GIVEN a misnamed upload WHEN parsed THEN the error carries the key and names the broken rule
    with pytest.raises(SampleKeyError) as caught:
        SampleKey.parse(key)
    assert reason in caught.value.reason
    assert caught.value.key == key
    assert reason in str(caught.value)


def test_new_generates_a_six_hex_uuid_and_validates_inputs() -> None:
    key = SampleKey.new("batch-7", "normal")
    assert len(key.uuid) == 6 and int(key.uuid, 16) >= 0
    assert SampleKey.parse(key.input_key) == key
    with pytest.raises(SampleKeyError, match="unknown kind"):
        SampleKey.new("batch-7", "tumour")
    with pytest.raises(SampleKeyError, match="batch"):
        SampleKey.new("", "somatic")


def test_rejected_key_sits_outside_inputs_and_outputs() -> None:
    assert rejected_key("inputs/b1-abc123-somatic-tar.gz") == "rejected/b1-abc123-somatic-tar.gz.json"
    assert rejected_key("inputs/sub/x.tgz") == "rejected/sub/x.tgz.json"
    assert rejected_key("inputs/") == "rejected/_empty_.json"


def test_the_report_of_the_longest_key_s3_takes_is_a_key_s3_takes() -> None:
    # GIVEN an input key of 1,024 bytes (S3's limit), ending in multi-byte characters
    key = "inputs/" + "b" * 1011 + "é" * 3
    assert len(key.encode()) == KEY_MAX_BYTES
    # WHEN its rejection report is named THEN the name fits too, and says which key it is for
    report = rejected_key(key)
    assert len(report.encode()) == KEY_MAX_BYTES
    assert report.startswith("rejected/bbbb") and report.endswith(".json")
    assert report == rejected_key(key) and report != rejected_key(key[:-1] + "è")


@given(st.text(max_size=1500))
def test_every_report_key_fits_and_distinct_keys_keep_distinct_reports(rest: str) -> None:
    key = f"inputs/{rest}"
    report = rejected_key(key)
    assert report.startswith("rejected/") and report.endswith(".json")
    assert len(report.encode("utf-8")) <= KEY_MAX_BYTES
    longer = rejected_key(key + "x" * 1100)
    assert longer != report and len(longer.encode("utf-8")) <= KEY_MAX_BYTES


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("inputs/b1-abc123-somatic-output.tar.gz", "wrong prefix"),
        ("outputs/b1-abc123-somatic.tar.gz", "'-output.tar.gz', '-error.json' or '-run.json'"),
        ("outputs/b1-abc123-tumor-output.tar.gz", "unknown kind"),
    ],
)
def test_output_key_rejections(key: str, reason: str) -> None:
    with pytest.raises(SampleKeyError, match=reason.replace(".", r"\.").replace("(", r"\(")):
        parse_output_key(key)
