"""The intake handler's configuration and webhook request shapes (pure logic)."""

from __future__ import annotations

import json

import pytest

from capillary.contract.samples import SampleKey
from capillary.intake.handler import (
    IntakeConfig,
    IntakeConfigError,
    Record,
    _webhook_request,
    webhook_payload,
)

ENV = {"CAPILLARY_DEPLOYMENT": "demo", "CAPILLARY_WORK_QUEUE_URL": "https://sqs.example/1/q"}


def test_config_from_the_role_environment() -> None:
    config = IntakeConfig.from_env(
        {
            **ENV,
            "CAPILLARY_WEBHOOK_KIND": "awx",
            "CAPILLARY_WEBHOOK_TIMEOUT_S": "1.5",
            "CAPILLARY_PRESIGN_EXPIRY_S": "600",
        }
    )
    assert (config.webhook_kind, config.webhook_timeout_s, config.presign_expiry_s) == ("awx", 1.5, 600)
    assert config.webhook_retries == 2


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CAPILLARY_WORK_QUEUE_URL": "x"}, "CAPILLARY_DEPLOYMENT: not set"),
        ({"CAPILLARY_DEPLOYMENT": "d"}, "CAPILLARY_WORK_QUEUE_URL: not set"),
        ({**ENV, "CAPILLARY_WEBHOOK_KIND": "jenkins"}, "CAPILLARY_WEBHOOK_KIND"),
        ({**ENV, "CAPILLARY_WEBHOOK_TIMEOUT_S": "soon"}, "expected a number"),
        ({**ENV, "CAPILLARY_PRESIGN_EXPIRY_S": "9999999"}, "CAPILLARY_PRESIGN_EXPIRY_S: must be between"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(IntakeConfigError, match=message):
        IntakeConfig.from_env(env)


def _record() -> Record:
    return Record(
        "ObjectCreated:Put",
        "b",
        "inputs/x-abc123-somatic.tar.gz",
        "inputs/x-abc123-somatic.tar.gz",
        1,
        "e",
        "s",
        "t",
    )


@pytest.mark.parametrize(
    ("kind", "header", "value"),
    [
        ("stackstorm", "St2-api-key", "k"),
        ("awx", "Authorization", "Bearer k"),
        ("eda", "Authorization", "Bearer k"),
    ],
)
def test_webhook_kinds_authenticate_their_way(kind: str, header: str, value: str) -> None:
    config = IntakeConfig(
        deployment="demo", work_queue_url="q", webhook_url="https://hook.example/x", webhook_kind=kind
    )
    payload = webhook_payload(
        "sample.received", config, _record(), sample=SampleKey("x", "abc123", "somatic")
    )
    request = _webhook_request(config, "k", payload)
    assert request.get_header(header) == value
    body = json.loads(request.data)  # type: ignore[arg-type]
    assert (body["extra_vars"]["capillary"] if kind == "awx" else body) == payload


def test_only_http_urls_are_called() -> None:
    config = IntakeConfig(deployment="demo", work_queue_url="q", webhook_url="file:///etc/passwd")
    with pytest.raises(ValueError, match="http"):
        _webhook_request(config, "", {})
