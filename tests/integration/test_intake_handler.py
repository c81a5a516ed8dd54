"""The intake handler fed by real S3 → SQS event delivery on the local endpoint.

The bucket notifies an events queue (as a local deployment does); the local runner's
`poll_once` hands each delivered event to `handle_event`, exactly as `capillary intake-local`
does. No event here is hand-written: S3 produced every one of them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from capillary.contract.message import CLAIMS_PREFIX, WorkMessage
from capillary.contract.naming import deployment_names
from capillary.contract.samples import KEY_MAX_BYTES, rejected_key
from capillary.intake.handler import Clients, IntakeConfig, MalformedEventError, handle_event
from capillary.intake.local import poll_once
from capillary.local.endpoint import LocalAWS
from tests.support.samples import make_sample_tarball

pytestmark = pytest.mark.integration

SCHEMA = Path(__file__).resolve().parents[2] / "src/capillary/intake/data/webhook_payload.schema.json"
NAMES = deployment_names("itest")


@dataclass
class Webhook:
    """A real HTTP endpoint on 127.0.0.1 that records what it is sent; `delay_s` makes it slow."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    delay_s: float = 0.0
    status: int = 200


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            hook.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
            if hook.delay_s:
                time.sleep(hook.delay_s)
            try:
                self.send_response(hook.status)
                self.end_headers()
                self.wfile.write(b"{}")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): that is the point of the slow mode

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/api/v1/webhooks/capillary_sample"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Stack:
    aws: LocalAWS
    s3: Any
    sqs: Any
    events_url: str
    work_url: str
    clients: Clients

    def config(self, **overrides: Any) -> IntakeConfig:
        return IntakeConfig(deployment="itest", work_queue_url=self.work_url, **overrides)

    def pump(self, config: IntakeConfig, expect_events: int) -> int:
        """Run the local runner until `expect_events` event messages were handled (bounded)."""
        handled = 0
        deadline = time.monotonic() + 20
        while handled < expect_events and time.monotonic() < deadline:
            done, failed = poll_once(self.events_url, config, self.clients, wait_seconds=1)
            assert failed == 0
            handled += done
        return handled

    def work_messages(self) -> list[WorkMessage]:
        """The work queue's messages, read as the consumer reads them."""
        bodies: list[WorkMessage] = []
        for _ in range(5):
            got = self.sqs.receive_message(QueueUrl=self.work_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            if not got.get("Messages"):
                break
            bodies.extend(WorkMessage.from_body(m["Body"]) for m in got["Messages"])
        return bodies


@pytest.fixture
def stack(aws: LocalAWS) -> Stack:
    s3, sqs = aws.client("s3"), aws.client("sqs")
    s3.create_bucket(Bucket=NAMES.bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    events_url = sqs.create_queue(QueueName=NAMES.events_queue)["QueueUrl"]
    work_url = sqs.create_queue(QueueName=NAMES.work_queue)["QueueUrl"]
    events_arn = sqs.get_queue_attributes(QueueUrl=events_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.put_bucket_notification_configuration(
        Bucket=NAMES.bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": f"{prefix}events",
                    "QueueArn": events_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": f"{prefix}/"}]}},
                }
                for prefix in ("inputs", "outputs")
            ]
        },
    )
    clients = Clients.create()  # the handler's own clients, reaching the endpoint via AWS_ENDPOINT_URL
    return Stack(aws, s3, sqs, events_url, work_url, clients)


def _drain_test_event(stack: Stack) -> None:
    """S3 sends an s3:TestEvent when notifications are configured; the handler ignores it."""
    got = stack.sqs.receive_message(QueueUrl=stack.events_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    for message in got.get("Messages", []):
        event = json.loads(message["Body"])
        assert event.get("Event") == "s3:TestEvent"
        outcome = handle_event(event, stack.config(), stack.clients)
        assert outcome.as_dict() == {k: [] for k in outcome.as_dict()}
        stack.sqs.delete_message(QueueUrl=stack.events_url, ReceiptHandle=message["ReceiptHandle"])


def test_a_valid_upload_becomes_one_work_message(stack: Stack, tmp_path: Path) -> None:
    _drain_test_event(stack)
    # GIVEN a valid sample uploaded under inputs/
    tarball = make_sample_tarball(tmp_path, batch="run-7")
    key = f"inputs/{tarball.name}"
    put = stack.s3.put_object(Bucket=NAMES.bucket, Key=key, Body=tarball.read_bytes())
    # WHEN the local runner handles the event S3 delivered
    assert stack.pump(stack.config(), 1) == 1
    # THEN exactly one work message names the sample, with the object's etag and the sequencer
    [message] = stack.work_messages()
    assert message.key == key and message.bucket == NAMES.bucket
    assert (message.batch, message.kind) == ("run-7", "somatic")
    assert message.uuid == tarball.name.split("-")[-2]
    assert message.etag is not None and message.etag.strip('"') == put["ETag"].strip('"')
    assert message.size == tarball.stat().st_size
    # (the local endpoint's records carry no sequencer; AWS's do, and it is passed through)
    assert message.event_time


def test_every_record_is_handled_and_keys_decoded_once(stack: Stack) -> None:
    _drain_test_event(stack)
    # GIVEN three uploads, one with a space and a '+' in its batch
    keys = [
        "inputs/plain-aaaaaa-somatic.tar.gz",
        "inputs/with space+plus-bbbbbb-normal.tar.gz",
        "inputs/b-cccccc-somatic.tar.gz",
    ]
    for key in keys:
        stack.s3.put_object(Bucket=NAMES.bucket, Key=key, Body=b"not inspected by intake")
    # WHEN the events are delivered (moto sends one record per event) and collected into one
    # multi-record event, as S3 may batch them
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while len(records) < 3 and time.monotonic() < deadline:
        got = stack.sqs.receive_message(QueueUrl=stack.events_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in got.get("Messages", []):
            records.extend(json.loads(message["Body"]).get("Records", []))
    assert len(records) == 3
    raw_keys = [r["s3"]["object"]["key"] for r in records]
    assert any("%2B" in k or "+" in k for k in raw_keys)  # S3 URL-encoded the key
    outcome = handle_event({"Records": records}, stack.config(), stack.clients)
    # THEN every record became a work message, with the decoded key
    assert sorted(outcome.queued) == sorted(keys)
    assert sorted(m.key for m in stack.work_messages()) == sorted(keys)
    batches = {k.split("/")[1].rsplit("-", 2)[0] for k in keys}
    assert batches == {"plain", "with space+plus", "b"}


def test_the_url_encoded_key_round_trips_to_the_object(stack: Stack) -> None:
    _drain_test_event(stack)
    key = "inputs/a b+c-dddddd-somatic.tar.gz"
    stack.s3.put_object(Bucket=NAMES.bucket, Key=key, Body=b"x")
    stack.pump(stack.config(), 1)
    [message] = stack.work_messages()
    # THEN the work message's key names the real object (decoded exactly once)
    assert message.key == key and message.batch == "a b+c"
    assert stack.s3.head_object(Bucket=NAMES.bucket, Key=message.key)["ContentLength"] == 1


def test_a_duplicate_event_carries_the_same_identity(stack: Stack) -> None:
    _drain_test_event(stack)
    key = "inputs/dup-eeeeee-normal.tar.gz"
    stack.s3.put_object(Bucket=NAMES.bucket, Key=key, Body=b"x")
    got = stack.sqs.receive_message(QueueUrl=stack.events_url, WaitTimeSeconds=5)
    event = json.loads(got["Messages"][0]["Body"])
    # WHEN S3 delivers the same event twice
    handle_event(event, stack.config(), stack.clients)
    handle_event(event, stack.config(), stack.clients)
    # THEN both messages carry the same (key, etag, sequencer): the consumer's idempotence key
    first, second = stack.work_messages()
    assert first == second
    assert first.key == key and first.etag


def test_keys_outside_inputs_and_outputs_are_ignored(stack: Stack) -> None:
    _drain_test_event(stack)
    event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "eventTime": "2026-01-01T00:00:00Z",
                "s3": {"bucket": {"name": NAMES.bucket}, "object": {"key": "scratch/x.tar.gz", "size": 1}},
            }
        ]
    }
    outcome = handle_event(event, stack.config(), stack.clients)
    assert outcome.ignored == ["scratch/x.tar.gz"] and stack.work_messages() == []


def test_a_misnamed_upload_gets_a_rejection_report_and_a_notification(stack: Stack, webhook: Webhook) -> None:
    _drain_test_event(stack)
    # GIVEN the common typo: a hyphen where the dot belongs
    key = "inputs/batch1-abc123-somatic-tar.gz"
    stack.s3.put_object(Bucket=NAMES.bucket, Key=key, Body=b"x")
    config = stack.config(webhook_url=webhook.url, webhook_kind="stackstorm")
    # WHEN handled
    stack.pump(config, 1)
    # THEN no work is queued, a JSON report explains why, and the webhook heard about it
    assert stack.work_messages() == []
    stored = stack.s3.get_object(Bucket=NAMES.bucket, Key="rejected/batch1-abc123-somatic-tar.gz.json")
    report = json.loads(stored["Body"].read())
    assert report["key"] == key
    assert "a hyphen where the dot belongs" in report["reason"]
    [call] = webhook.requests
    assert call["path"] == "/api/v1/webhooks/capillary_sample"
    assert call["body"]["event"] == "sample.rejected" and call["body"]["report_key"].startswith("rejected/")
    _assert_schema(call["body"])


def test_webhook_gets_the_key_from_ssm_and_the_sample_identity(stack: Stack, webhook: Webhook) -> None:
    _drain_test_event(stack)
    stack.aws.client("ssm").put_parameter(
        Name=f"{NAMES.ssm_secrets}/webhook_key", Value="st2-key-123", Type="SecureString"
    )
    config = stack.config(
        webhook_url=webhook.url,
        webhook_kind="stackstorm",
        webhook_key_parameter=f"{NAMES.ssm_secrets}/webhook_key",
    )
    stack.s3.put_object(Bucket=NAMES.bucket, Key="inputs/hook-ffffff-somatic.tar.gz", Body=b"x")
    stack.pump(config, 1)
    [call] = webhook.requests
    assert call["headers"]["St2-Api-Key"] == "st2-key-123"
    identity = {"name": "hook-ffffff-somatic", "batch": "hook", "uuid": "ffffff", "kind": "somatic"}
    assert call["body"]["sample"] == identity
    _assert_schema(call["body"])


def test_a_webhook_that_times_out_never_loses_the_sample(stack: Stack, webhook: Webhook) -> None:
    _drain_test_event(stack)
    # GIVEN a webhook that answers after 2 s, and a 0.3 s timeout with one retry
    webhook.delay_s = 2.0
    config = stack.config(webhook_url=webhook.url, webhook_timeout_s=0.3, webhook_retries=1)
    stack.s3.put_object(Bucket=NAMES.bucket, Key="inputs/slow-abcdef-normal.tar.gz", Body=b"x")
    # WHEN handled
    started = time.monotonic()
    got = stack.sqs.receive_message(QueueUrl=stack.events_url, WaitTimeSeconds=5)
    outcome = handle_event(json.loads(got["Messages"][0]["Body"]), config, stack.clients)
    elapsed = time.monotonic() - started
    # THEN the work message is queued anyway, the failure is reported, and the wait was bounded
    assert outcome.queued == ["inputs/slow-abcdef-normal.tar.gz"]
    assert outcome.webhook_failures == ["inputs/slow-abcdef-normal.tar.gz"]
    assert len(webhook.requests) == 2  # the first try and one retry, no more
    assert elapsed < 5
    assert [m.key for m in stack.work_messages()] == ["inputs/slow-abcdef-normal.tar.gz"]


def test_an_output_triggers_a_notification_with_a_presigned_link(stack: Stack, webhook: Webhook) -> None:
    _drain_test_event(stack)
    topic = stack.aws.client("sns").create_topic(Name=NAMES.notify_topic)["TopicArn"]
    watch = stack.sqs.create_queue(QueueName="itest-sns-watch")["QueueUrl"]
    watch_arn = stack.sqs.get_queue_attributes(QueueUrl=watch, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    stack.aws.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=watch_arn)
    config = stack.config(webhook_url=webhook.url, notify_topic_arn=topic, presign_expiry_s=600)
    # WHEN the consumer's output, its run record and an error report land under outputs/, and a
    # marker object too
    stack.s3.put_object(Bucket=NAMES.bucket, Key="outputs/b-123abc-somatic-output.tar.gz", Body=b"report")
    stack.s3.put_object(Bucket=NAMES.bucket, Key="outputs/b-123abc-somatic-run.json", Body=b"{}")
    stack.s3.put_object(Bucket=NAMES.bucket, Key="outputs/b-456def-normal-error.json", Body=b"{}")
    stack.s3.put_object(Bucket=NAMES.bucket, Key=f"{CLAIMS_PREFIX}b-123abc-somatic.json", Body=b"{}")
    stack.pump(config, 4)
    # THEN both outputs are announced with a working presigned link; the run record (its output's
    # announcement said it all) and the marker are not
    events = sorted(call["body"]["event"] for call in webhook.requests)
    assert events == ["sample.completed", "sample.failed"]
    for call in webhook.requests:
        _assert_schema(call["body"])
        assert "X-Amz-Expires=600" in call["body"]["download_url"]
    completed = next(c["body"] for c in webhook.requests if c["body"]["event"] == "sample.completed")
    import urllib.request

    with urllib.request.urlopen(completed["download_url"], timeout=5) as response:
        assert response.read() == b"report"
    # AND SNS carried the same payloads
    sns_messages = stack.sqs.receive_message(QueueUrl=watch, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    published = [json.loads(json.loads(m["Body"])["Message"]) for m in sns_messages.get("Messages", [])]
    assert sorted(p["event"] for p in published) == ["sample.completed", "sample.failed"]


def test_a_failed_enqueue_fails_the_event_so_it_is_redelivered(stack: Stack) -> None:
    _drain_test_event(stack)
    stack.s3.put_object(Bucket=NAMES.bucket, Key="inputs/lost-aaaaaa-somatic.tar.gz", Body=b"x")
    # GIVEN a work queue that does not exist
    broken = IntakeConfig(deployment="itest", work_queue_url=stack.work_url + "-gone")
    # WHEN the runner handles the event THEN it is not deleted from the events queue
    handled, failed = poll_once(stack.events_url, broken, stack.clients, wait_seconds=2)
    assert (handled, failed) == (0, 1)
    attrs = stack.sqs.get_queue_attributes(
        QueueUrl=stack.events_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )
    assert attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"


def _assert_schema(payload: dict[str, Any]) -> None:
    import jsonschema

    jsonschema.validate(payload, json.loads(SCHEMA.read_text()))


def test_the_cli_runner_handles_and_deletes_event_messages(stack: Stack) -> None:
    import os
    import subprocess
    import sys

    # GIVEN an upload whose event waits in the events queue (beside the s3:TestEvent)
    stack.s3.put_object(Bucket=NAMES.bucket, Key="inputs/cli-0c0c0c-normal.tar.gz", Body=b"x")
    env = {**os.environ, "CAPILLARY_DEPLOYMENT": "itest", "CAPILLARY_WORK_QUEUE_URL": stack.work_url}
    # WHEN `capillary intake-local --once` runs
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "capillary",
            "intake-local",
            "--queue-url",
            stack.events_url,
            "--once",
            "--wait-seconds",
            "2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # THEN the sample is queued and the events queue is empty (each event deleted once handled)
    assert result.returncode == 0, result.stderr
    assert [m.key for m in stack.work_messages()] == ["inputs/cli-0c0c0c-normal.tar.gz"]
    attrs = stack.sqs.get_queue_attributes(
        QueueUrl=stack.events_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attrs == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
    assert '"phase": "queue"' in result.stderr  # JSON logs on stderr


# -- malformed records, poison messages, long keys -------------------------------------------------


def _delivered_event(stack: Stack, key: str) -> dict[str, Any]:
    """The event S3 delivers for a new object at `key` (read off the events queue)."""
    stack.s3.put_object(Bucket=NAMES.bucket, Key=key, Body=b"x")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = stack.sqs.receive_message(QueueUrl=stack.events_url, MaxNumberOfMessages=1, WaitTimeSeconds=1)
        for message in got.get("Messages", []):
            stack.sqs.delete_message(QueueUrl=stack.events_url, ReceiptHandle=message["ReceiptHandle"])
            event: dict[str, Any] = json.loads(message["Body"])
            if event.get("Records"):
                return event
    raise AssertionError(f"no event delivered for {key}")


def _good(record: dict[str, Any], **object_fields: Any) -> dict[str, Any]:
    """A copy of a real record with some `s3.object` fields replaced (None removes one)."""
    copy = json.loads(json.dumps(record))
    for name, value in object_fields.items():
        if value is None:
            copy["s3"]["object"].pop(name, None)
        else:
            copy["s3"]["object"][name] = value
    return copy


MALFORMED: dict[str, Any] = {
    "null": None,
    "a string": "ObjectCreated:Put",
    "a list": [1, 2],
    "no s3": {"eventName": "ObjectCreated:Put"},
    "s3 not an object": {"eventName": "ObjectCreated:Put", "s3": "inputs/x"},
    "no object": {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": NAMES.bucket}}},
}


@pytest.mark.parametrize(
    "bad", [*MALFORMED, "no key", "a number as key", "empty key", "size text", "size -1"]
)
def test_a_malformed_record_is_counted_and_the_good_one_after_it_is_queued(stack: Stack, bad: str) -> None:
    _drain_test_event(stack)
    # GIVEN a real event for a good upload, with a malformed record placed before its record
    event = _delivered_event(stack, "inputs/after-abcdef-somatic.tar.gz")
    [good] = event["Records"]
    broken = {
        "no key": _good(good, key=None),
        "a number as key": _good(good, key=12),
        "empty key": _good(good, key=""),
        "size text": _good(good, size="big"),
        "size -1": _good(good, size=-1),
    }.get(bad, MALFORMED.get(bad))
    # WHEN handled
    outcome = handle_event({"Records": [broken, good]}, stack.config(), stack.clients)
    # THEN the bad record is counted with a reason naming the record, and the good one is queued
    assert outcome.queued == ["inputs/after-abcdef-somatic.tar.gz"]
    [reason] = outcome.malformed
    assert reason.startswith("record 0: ")
    assert [m.key for m in stack.work_messages()] == ["inputs/after-abcdef-somatic.tar.gz"]


@pytest.mark.parametrize("event", [None, [], "text", {"Records": "inputs/x"}, {"Records": {"a": 1}}])
def test_an_event_that_is_no_s3_event_is_refused_whole(stack: Stack, event: Any) -> None:
    with pytest.raises(MalformedEventError):
        handle_event(event, stack.config(), stack.clients)


def test_the_runner_survives_any_message_and_leaves_poison_for_the_redrive(stack: Stack) -> None:
    _drain_test_event(stack)
    # GIVEN an events queue that redrives after 2 receives, as roles/intake makes it locally
    dlq_url = stack.sqs.create_queue(QueueName=f"{NAMES.events_queue}-dlq")["QueueUrl"]
    dlq_arn = stack.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    stack.sqs.set_queue_attributes(
        QueueUrl=stack.events_url,
        Attributes={
            "VisibilityTimeout": "1",
            "RedrivePolicy": json.dumps({"maxReceiveCount": "2", "deadLetterTargetArn": dlq_arn}),
        },
    )
    # AND four poison messages beside a real upload's event
    poison = ["not json {", "[1, 2]", '{"Records": 5}', "null"]
    for body in poison:
        stack.sqs.send_message(QueueUrl=stack.events_url, MessageBody=body)
    stack.s3.put_object(Bucket=NAMES.bucket, Key="inputs/fine-0a0a0a-normal.tar.gz", Body=b"x")
    # WHEN the runner polls until the queue is empty
    handled = failed = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, bad = poll_once(stack.events_url, stack.config(), stack.clients, wait_seconds=1)
        handled, failed = handled + done, failed + bad
        attrs = stack.sqs.get_queue_attributes(
            QueueUrl=stack.events_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        if handled and set(attrs.values()) == {"0"}:
            break
    # THEN the upload was queued, each poison message was refused twice, then moved to the DLQ
    assert handled == 1 and [m.key for m in stack.work_messages()] == ["inputs/fine-0a0a0a-normal.tar.gz"]
    assert failed == 2 * len(poison)
    moved = stack.sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    assert sorted(m["Body"] for m in moved["Messages"]) == sorted(poison)


def test_the_cli_runner_survives_a_poison_message(stack: Stack) -> None:
    import os
    import subprocess
    import sys

    # GIVEN a message that is not JSON beside an upload's event
    stack.sqs.send_message(QueueUrl=stack.events_url, MessageBody="not an event {")
    stack.s3.put_object(Bucket=NAMES.bucket, Key="inputs/cli-0d0d0d-normal.tar.gz", Body=b"x")
    env = {**os.environ, "CAPILLARY_DEPLOYMENT": "itest", "CAPILLARY_WORK_QUEUE_URL": stack.work_url}
    # WHEN `capillary intake-local --once` runs
    argv = ["intake-local", "--queue-url", stack.events_url, "--once", "--wait-seconds", "2"]
    result = subprocess.run(
        [sys.executable, "-m", "capillary", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # THEN it exits on its own (1: a message was not handled), having queued the upload
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "MalformedEventError" in result.stderr and "not JSON" in result.stderr
    assert [m.key for m in stack.work_messages()] == ["inputs/cli-0d0d0d-normal.tar.gz"]


def test_a_rejected_1024_byte_key_gets_a_report_s3_can_store(stack: Stack) -> None:
    _drain_test_event(stack)
    # GIVEN an upload under a misnamed key of 1,024 bytes, S3's limit
    key = "inputs/" + "k" * (KEY_MAX_BYTES - len("inputs/"))
    assert len(key.encode()) == KEY_MAX_BYTES
    stack.s3.put_object(Bucket=NAMES.bucket, Key=key, Body=b"x")
    # WHEN handled
    stack.pump(stack.config(), 1)
    # THEN the report is stored under a key within the limit, and names the upload in full
    listed = stack.s3.list_objects_v2(Bucket=NAMES.bucket, Prefix="rejected/")["Contents"]
    [report_key] = [o["Key"] for o in listed]
    assert len(report_key.encode()) <= KEY_MAX_BYTES and report_key == rejected_key(key)
    report = json.loads(stack.s3.get_object(Bucket=NAMES.bucket, Key=report_key)["Body"].read())
    assert report["key"] == key
