"""The intake handler: S3 events in, work messages, rejection reports and notifications out.

Deployed as a Lambda (`handler`), and run locally by `capillary intake-local` on the events queue
the bucket notifies there (the local endpoint cannot invoke a Lambda). Both call `handle_event`.

- Every record of every event is handled on its own; `s3:TestEvent` and keys outside
  `inputs/`/`outputs/` are ignored. A malformed record (null, not an object, no `s3.object.key`,
  a size that is not a byte count...) is logged and counted in `Outcome.malformed`, and the
  others are handled: retrying it could never help. An event that is not an object, or whose
  `Records` is not a list, is refused whole (`MalformedEventError`), so it goes where failed
  events go (Lambda's on-failure destination; locally, the events queue's dead-letter queue).
- A well-named upload becomes one work message (`work_message`) on the work queue; the object
  is never downloaded. S3 delivers at least once, so duplicates are expected: the message carries
  the object's etag and the event's sequencer, and the consumer is idempotent on (key, etag).
- A misnamed upload gets a JSON rejection report under `rejected/` and a notification.
- An optional webhook (StackStorm, AWX, Event-Driven Ansible, or plain JSON) hears about every
  sample. Its key comes from SSM Parameter Store (SecureString), read once per cold start. Calls
  are bounded (timeout, retries); a failing webhook is logged and reported but never loses the
  sample, because the work message is sent first.
- Outputs (`outputs/…-output.tar.gz`, `outputs/…-error.json`) trigger a notification with a
  presigned download link, by webhook, Slack incoming webhook and/or SNS; an output's run record
  (`outputs/…-run.json`) is no result of its own and is not announced.

Configuration comes from environment variables (set by `roles/intake`), parsed once into
`IntakeConfig`. A record whose work message cannot be sent makes the invocation fail after the
other records are handled, so the event is retried (Lambda) or redelivered (local queue).
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote_plus

from capillary.contract.message import WorkMessage
from capillary.contract.samples import (
    INPUT_PREFIX,
    OUTPUT_PREFIX,
    SampleKey,
    SampleKeyError,
    parse_output_key,
    rejected_key,
)
from capillary.contract.vocabulary import shown

log = logging.getLogger("capillary.intake.handler")

PAYLOAD_SCHEMA = "capillary.intake/v1"
WEBHOOK_KINDS = ("stackstorm", "awx", "eda", "json")
# SigV4 presigned URLs live at most 7 days.
MAX_PRESIGN_EXPIRY_S = 7 * 24 * 3600


class IntakeError(RuntimeError):
    """Records that could not be queued; raised after every record was tried, so the event is retried."""


class MalformedEventError(IntakeError):
    """An event that is not an S3 event at all (not an object, `Records` not a list)."""


class MalformedRecordError(ValueError):
    """One event record intake cannot read; `reason` names the field and what is wrong with it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IntakeConfigError(ValueError):
    """A setting that is missing or malformed; names the environment variable."""


@dataclass(frozen=True)
class IntakeConfig:
    deployment: str
    work_queue_url: str
    notify_topic_arn: str = ""
    webhook_url: str = ""
    webhook_kind: str = "json"
    webhook_key_parameter: str = ""
    webhook_timeout_s: float = 3.0
    webhook_retries: int = 2
    slack_webhook_parameter: str = ""
    presign_expiry_s: int = 24 * 3600
    notify_outputs: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IntakeConfig:
        env = os.environ if env is None else env

        def number(name: str, default: float, low: float, high: float) -> float:
            raw = env.get(name, "")
            if raw == "":
                return default
            try:
                value = float(raw)
            except ValueError:
                raise IntakeConfigError(f"{name}: expected a number, got {raw!r}") from None
            if not low <= value <= high:
                raise IntakeConfigError(f"{name}: must be between {low:g} and {high:g}, got {raw}")
            return value

        deployment = env.get("CAPILLARY_DEPLOYMENT", "")
        queue = env.get("CAPILLARY_WORK_QUEUE_URL", "")
        if not deployment:
            raise IntakeConfigError("CAPILLARY_DEPLOYMENT: not set")
        if not queue:
            raise IntakeConfigError("CAPILLARY_WORK_QUEUE_URL: not set")
        kind = env.get("CAPILLARY_WEBHOOK_KIND", "json") or "json"
        if kind not in WEBHOOK_KINDS:
            raise IntakeConfigError(
                f"CAPILLARY_WEBHOOK_KIND: one of {', '.join(WEBHOOK_KINDS)}, got {kind!r}"
            )
        return cls(
            deployment=deployment,
            work_queue_url=queue,
            notify_topic_arn=env.get("CAPILLARY_NOTIFY_TOPIC_ARN", ""),
            webhook_url=env.get("CAPILLARY_WEBHOOK_URL", ""),
            webhook_kind=kind,
            webhook_key_parameter=env.get("CAPILLARY_WEBHOOK_KEY_PARAMETER", ""),
            webhook_timeout_s=number("CAPILLARY_WEBHOOK_TIMEOUT_S", 3.0, 0.1, 30),
            webhook_retries=int(number("CAPILLARY_WEBHOOK_RETRIES", 2, 0, 5)),
            slack_webhook_parameter=env.get("CAPILLARY_SLACK_WEBHOOK_PARAMETER", ""),
            presign_expiry_s=int(number("CAPILLARY_PRESIGN_EXPIRY_S", 24 * 3600, 60, MAX_PRESIGN_EXPIRY_S)),
            notify_outputs=env.get("CAPILLARY_NOTIFY_OUTPUTS", "true").lower() not in ("0", "false", "no"),
        )


@dataclass
class Clients:
    """The AWS clients and secrets of one process (one Lambda execution environment)."""

    s3: Any
    sqs: Any
    ssm: Any
    sns: Any
    _secrets: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls) -> Clients:
        import boto3
        from botocore.config import Config

        # Bounded: an intake call must finish well inside the Lambda timeout.
        config = Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"})
        # SigV4 presigned links: the only kind every region accepts, with an explicit expiry.
        s3_config = config.merge(Config(signature_version="s3v4"))
        return cls(
            s3=boto3.client("s3", config=s3_config),
            sqs=boto3.client("sqs", config=config),
            ssm=boto3.client("ssm", config=config),
            sns=boto3.client("sns", config=config),
        )

    def secret(self, parameter: str) -> str:
        """A SecureString parameter's value, fetched once and kept for the process's life."""
        if parameter not in self._secrets:
            response = self.ssm.get_parameter(Name=parameter, WithDecryption=True)
            self._secrets[parameter] = str(response["Parameter"]["Value"])
        return self._secrets[parameter]


@dataclass
class Record:
    """The parts of one S3 event record intake uses (`key` decoded exactly once)."""

    event_name: str
    bucket: str
    raw_key: str
    key: str
    size: int | None
    etag: str | None
    sequencer: str | None
    event_time: str

    @classmethod
    def from_s3(cls, record: object) -> Record:
        """Read one S3 event record; `MalformedRecordError` names the first field that is wrong."""
        if not isinstance(record, Mapping):
            raise MalformedRecordError(f"is {_kind(record)}, not an object")
        s3 = _field(record, "s3", Mapping, "s3")
        obj = _field(s3, "object", Mapping, "s3.object")
        bucket = _field(s3, "bucket", Mapping, "s3.bucket")
        bucket_name = _field(bucket, "name", str, "s3.bucket.name")
        raw_key = _field(obj, "key", str, "s3.object.key")
        if not raw_key or not bucket_name:
            raise MalformedRecordError("s3.object.key and s3.bucket.name must not be empty")
        size = obj.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise MalformedRecordError(f"s3.object.size must be a byte count (found {_kind(size)})")
        etag = obj.get("eTag", obj.get("etag"))
        sequencer = obj.get("sequencer")
        for name, value in (("s3.object.eTag", etag), ("s3.object.sequencer", sequencer)):
            if value is not None and not isinstance(value, str):
                raise MalformedRecordError(f"{name} must be a string (found {_kind(value)})")
        return cls(
            event_name=_field(record, "eventName", str, "eventName", default=""),
            bucket=bucket_name,
            raw_key=raw_key,
            key=unquote_plus(raw_key),
            size=size,
            etag=etag or None,
            sequencer=sequencer,
            event_time=_field(record, "eventTime", str, "eventTime", default=""),
        )


def _kind(value: object) -> str:
    """What a value is, for a message that must not quote it (a JSON type name)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, Mapping) else type(value).__name__


def _field(parent: Mapping[str, Any], name: str, kind: type[Any], path: str, default: Any = None) -> Any:
    value = parent.get(name)
    if value is None and default is not None:
        return default
    if value is None:
        raise MalformedRecordError(f"has no {path}")
    if not isinstance(value, kind):
        wanted = "an object" if kind is Mapping else "a string"
        raise MalformedRecordError(f"{path} must be {wanted} (found {_kind(value)})")
    return value


@dataclass
class Outcome:
    queued: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    notified: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    webhook_failures: list[str] = field(default_factory=list)
    # One line per record that could not be read: "record <n>: <why>" (never the record itself).
    malformed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "queued": self.queued,
            "rejected": self.rejected,
            "notified": self.notified,
            "ignored": self.ignored,
            "failed": self.failed,
            "webhook_failures": self.webhook_failures,
            "malformed": self.malformed,
        }


# --------------------------------------------------------------------------------------------
# Messages and payloads: defined here, once


def work_message(record: Record, sample: SampleKey) -> WorkMessage:
    """The work queue message of one upload (`capillary.contract.message`): the consumer is
    idempotent on (key, etag)."""
    return WorkMessage.for_sample(
        sample,
        bucket=record.bucket,
        size=record.size,
        etag=record.etag,
        event_time=record.event_time,
        sequencer=record.sequencer,
    )


def webhook_payload(
    event: str,
    config: IntakeConfig,
    record: Record,
    *,
    sample: SampleKey | None = None,
    reason: str | None = None,
    report_key: str | None = None,
    download_url: str | None = None,
    download_expires_at: str | None = None,
) -> dict[str, Any]:
    """The one payload every notification carries; `data/webhook_payload.schema.json` describes it.

    `event` is `sample.received`, `sample.rejected`, `sample.completed` or `sample.failed`.
    """
    return {
        "schema": PAYLOAD_SCHEMA,
        "event": event,
        "deployment": config.deployment,
        "bucket": record.bucket,
        "key": record.key,
        "sample": (
            {"name": sample.name, "batch": sample.batch, "uuid": sample.uuid, "kind": sample.kind}
            if sample
            else None
        ),
        "size": record.size,
        "etag": record.etag,
        "sequencer": record.sequencer,
        "event_time": record.event_time,
        "reason": reason,
        "report_key": report_key,
        "download_url": download_url,
        "download_expires_at": download_expires_at,
    }


def rejection_report(record: Record, reason: str) -> dict[str, Any]:
    return {
        "key": record.key,
        "reason": reason,
        "bucket": record.bucket,
        "size": record.size,
        "etag": record.etag,
        "event_time": record.event_time,
        "rejected_at": _now(),
        "contract": "inputs/{batch}-{uuid}-{kind}.tar.gz (uuid: 6 hex; kind: somatic or normal)",
    }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------
# Delivery


def _webhook_request(config: IntakeConfig, key: str, payload: dict[str, Any]) -> urllib.request.Request:
    headers = {"Content-Type": "application/json", "User-Agent": "capillary-intake"}
    body: Any = payload
    if config.webhook_kind == "stackstorm":
        if key:
            headers["St2-Api-Key"] = key
    elif config.webhook_kind == "awx":
        # A job template launch: the payload becomes the job's extra_vars.
        body = {"extra_vars": {"capillary": payload}}
        if key:
            headers["Authorization"] = f"Bearer {key}"
    elif key:
        headers["Authorization"] = f"Bearer {key}"
    return json_request(config.webhook_url, body, headers)


def json_request(url: str, body: Any, headers: dict[str, str] | None = None) -> urllib.request.Request:
    """A JSON POST to an http(s) URL (any other scheme is refused before a request exists)."""
    if not url.startswith(("https://", "http://")):
        raise ValueError("notification URLs must be http(s)")
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return urllib.request.Request(url, data=json.dumps(body).encode(), headers=all_headers, method="POST")  # noqa: S310


def post_json(
    request: urllib.request.Request, timeout_s: float, retries: int, what: str, ctx: dict[str, Any]
) -> None:
    """POST with a bounded timeout and bounded retries; raises the last error."""
    last: Exception | None = None
    for attempt in range(1, retries + 2):
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - scheme checked
                response.read(1024)
                return
        except urllib.error.HTTPError as exc:
            last = exc
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                break  # the endpoint refused this request; retrying will not change its mind
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            last = exc
        log.warning("%s attempt %d failed: %s", what, attempt, last, extra={**ctx, "attempt": attempt})
        if attempt <= retries:
            time.sleep(min(0.2 * 2 ** (attempt - 1), 2.0))
    assert last is not None
    raise last


def _notify(
    config: IntakeConfig,
    clients: Clients,
    payload: dict[str, Any],
    outcome: Outcome,
    ctx: dict[str, Any],
) -> None:
    """Every configured channel hears about `payload`; a failing channel is logged, never raised."""
    if config.webhook_url:
        try:
            key = clients.secret(config.webhook_key_parameter) if config.webhook_key_parameter else ""
            request = _webhook_request(config, key, payload)
            post_json(request, config.webhook_timeout_s, config.webhook_retries, "webhook", ctx)
        except Exception as exc:  # a webhook failure must never lose the sample
            outcome.webhook_failures.append(payload["key"])
            log.error(
                "webhook failed: %s (the sample is safe: intake already did its part)",
                type(exc).__name__,
                extra={**ctx, "phase": "webhook", "reason": str(exc)[:300]},
            )
    if config.slack_webhook_parameter and payload["event"] != "sample.received":
        try:
            url = clients.secret(config.slack_webhook_parameter)
            request = json_request(url, {"text": _slack_text(payload)})
            post_json(request, config.webhook_timeout_s, config.webhook_retries, "slack", ctx)
        except Exception as exc:
            outcome.webhook_failures.append(payload["key"])
            log.error("slack notification failed: %s", type(exc).__name__, extra={**ctx, "phase": "notify"})
    if config.notify_topic_arn and payload["event"] != "sample.received":
        try:
            clients.sns.publish(
                TopicArn=config.notify_topic_arn,
                Subject=f"capillary {payload['event']}"[:100],
                Message=json.dumps(payload),
                MessageAttributes={"event": {"DataType": "String", "StringValue": payload["event"]}},
            )
        except Exception as exc:
            log.error("SNS notification failed: %s", exc, extra={**ctx, "phase": "notify"})


def _slack_text(payload: dict[str, Any]) -> str:
    name = (payload.get("sample") or {}).get("name") or payload["key"]
    if payload["event"] == "sample.rejected":
        return f":warning: upload `{payload['key']}` rejected: {payload['reason']}"
    if payload["event"] == "sample.completed":
        return f":white_check_mark: sample `{name}` is done: <{payload['download_url']}|download the report>"
    return f":x: sample `{name}` failed: <{payload['download_url']}|error report>"


# --------------------------------------------------------------------------------------------
# Records


def handle_input(record: Record, config: IntakeConfig, clients: Clients, outcome: Outcome) -> None:
    ctx: dict[str, Any] = {"key": record.key, "phase": "intake"}
    try:
        sample = SampleKey.parse(record.key)
    except SampleKeyError as exc:
        report = rejected_key(record.key)
        clients.s3.put_object(
            Bucket=record.bucket,
            Key=report,
            Body=json.dumps(rejection_report(record, exc.reason), indent=2).encode(),
            ContentType="application/json",
        )
        outcome.rejected.append(record.key)
        log.warning("rejected upload: %s", exc.reason, extra={**ctx, "reason": exc.reason, "phase": "reject"})
        payload = webhook_payload("sample.rejected", config, record, reason=exc.reason, report_key=report)
        _notify(config, clients, payload, outcome, ctx)
        return
    ctx["sample"] = sample.name
    message = work_message(record, sample)
    response = clients.sqs.send_message(
        QueueUrl=config.work_queue_url, MessageBody=message.to_body(), MessageAttributes=message.attributes()
    )
    outcome.queued.append(sample.input_key)
    log.info("queued", extra={**ctx, "message_id": response.get("MessageId"), "phase": "queue"})
    _notify(config, clients, webhook_payload("sample.received", config, record, sample=sample), outcome, ctx)


def handle_output(record: Record, config: IntakeConfig, clients: Clients, outcome: Outcome) -> None:
    try:
        sample, what = parse_output_key(record.key)
    except SampleKeyError:
        outcome.ignored.append(record.key)  # markers and scratch objects under outputs/
        return
    ctx: dict[str, Any] = {"key": record.key, "sample": sample.name, "phase": "notify"}
    if what == "run" or not config.notify_outputs:
        # A run record follows its output, whose own notification already told of the result.
        outcome.ignored.append(record.key)
        return
    url = clients.s3.generate_presigned_url(
        "get_object",
        Params={"Bucket": record.bucket, "Key": record.key},
        ExpiresIn=config.presign_expiry_s,
    )
    expires = (datetime.now(UTC) + timedelta(seconds=config.presign_expiry_s)).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = "sample.completed" if what == "output" else "sample.failed"
    payload = webhook_payload(
        event, config, record, sample=sample, download_url=url, download_expires_at=expires
    )
    _notify(config, clients, payload, outcome, ctx)
    outcome.notified.append(record.key)
    log.info("notified %s", event, extra=ctx)


def is_test_event(event: Mapping[str, Any]) -> bool:
    return event.get("Event") == "s3:TestEvent"


def handle_event(event: object, config: IntakeConfig, clients: Clients) -> Outcome:
    """Handle every record of one S3 event; raise IntakeError if any sample could not be queued.

    A malformed record is skipped (logged, counted in `malformed`); an event that is not an S3
    event at all raises `MalformedEventError`.
    """
    outcome = Outcome()
    if not isinstance(event, Mapping):
        raise MalformedEventError(f"the event is {_kind(event)}, not an object")
    if is_test_event(event):
        log.info("ignored s3:TestEvent", extra={"phase": "intake"})
        return outcome
    records = event.get("Records", [])
    if not isinstance(records, list):
        raise MalformedEventError(f"the event's Records is {_kind(records)}, not a list")
    for index, raw in enumerate(records):
        try:
            record = Record.from_s3(raw)
        except MalformedRecordError as exc:
            outcome.malformed.append(f"record {index}: {exc.reason}")
            log.error(
                "malformed event record skipped: record %d %s",
                index,
                exc.reason,
                extra={"phase": "intake", "record": index, "reason": exc.reason},
            )
            continue
        if not record.event_name.startswith("ObjectCreated:"):
            outcome.ignored.append(record.key)
            continue
        if record.key.endswith("/"):
            outcome.ignored.append(record.key)  # a "folder" placeholder, not an upload
            continue
        try:
            if record.key.startswith(INPUT_PREFIX):
                handle_input(record, config, clients, outcome)
            elif record.key.startswith(OUTPUT_PREFIX):
                handle_output(record, config, clients, outcome)
            else:
                outcome.ignored.append(record.key)
        except Exception as exc:
            outcome.failed.append(record.key)
            log.exception(
                "record failed: %s", type(exc).__name__, extra={"key": record.key, "phase": "intake"}
            )
    if outcome.failed:
        keys = ", ".join(shown(key) for key in outcome.failed[:5]) + (
            ", …" if len(outcome.failed) > 5 else ""
        )
        raise IntakeError(f"{len(outcome.failed)} record(s) not handled: {keys}")
    return outcome


# --------------------------------------------------------------------------------------------
# Lambda entry point: configuration and clients live as long as the execution environment

_STATE: dict[str, Any] = {}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "config" not in _STATE:
        from capillary.logs import configure_logging

        configure_logging(os.environ.get("CAPILLARY_LOG_LEVEL", "INFO"))
        _STATE["config"] = IntakeConfig.from_env()
        _STATE["clients"] = Clients.create()
    return handle_event(event, _STATE["config"], _STATE["clients"]).as_dict()
