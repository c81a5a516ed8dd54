"""lambda_event_invoke_config: the document it writes and the comparison that keeps re-runs quiet.

The module against a real endpoint (create, update, no-op, absent, check mode) is
tests/integration/test_lambda_event_invoke_config_module.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from ansible_collections.capillary.pcgr.plugins.modules.lambda_event_invoke_config import (
    as_result,
    check_params,
    desired_config,
    effective,
)

QUEUE = "arn:aws:sqs:eu-west-1:123456789012:capillary-demo-intake-failures"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:capillary-demo-notify"


def _params(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "function_name": "capillary-demo-intake",
        "state": "present",
        "maximum_retry_attempts": None,
        "maximum_event_age_in_seconds": None,
        "on_failure": None,
        "on_success": None,
    }
    return {**base, **kw}


def test_only_the_settings_given_are_sent() -> None:
    assert desired_config(_params()) == {}
    assert desired_config(_params(maximum_retry_attempts=0, on_failure=QUEUE)) == {
        "MaximumRetryAttempts": 0,
        "DestinationConfig": {"OnFailure": {"Destination": QUEUE}},
    }
    # an empty string is no destination, as an option left out is
    assert "DestinationConfig" not in desired_config(_params(on_failure="", on_success=""))


def test_what_lambda_reports_compares_equal_to_what_was_asked() -> None:
    # GIVEN a configuration asked for with one destination and no age
    desired = desired_config(_params(maximum_retry_attempts=1, on_failure=QUEUE))
    # WHEN Lambda answers with its metadata and an empty OnSuccess
    reported = {
        "FunctionArn": "arn:aws:lambda:eu-west-1:123456789012:function:capillary-demo-intake",
        "LastModified": dt.datetime(2026, 11, 21, tzinfo=dt.UTC),
        "MaximumRetryAttempts": 1,
        "DestinationConfig": {"OnFailure": {"Destination": QUEUE}, "OnSuccess": {}},
    }
    # THEN the two compare equal, and any real difference does not
    assert effective(reported) == effective(desired)
    assert effective({**reported, "MaximumRetryAttempts": 2}) != effective(desired)
    assert effective({**reported, "DestinationConfig": {"OnFailure": {"Destination": TOPIC}}}) != effective(
        desired
    )


def test_a_setting_left_out_means_lambdas_default() -> None:
    # Lambda retries twice and keeps an event 6 hours unless told otherwise
    assert effective(None) == effective({"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 21600})
    assert effective({}) == {
        "maximum_retry_attempts": 2,
        "maximum_event_age_in_seconds": 21600,
        "on_failure": None,
        "on_success": None,
    }
    # 0 retries is a setting, not a missing one
    assert effective({"MaximumRetryAttempts": 0})["maximum_retry_attempts"] == 0


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"maximum_event_age_in_seconds": 59}, "maximum_event_age_in_seconds must be between 60 and 21600"),
        ({"maximum_event_age_in_seconds": 21601}, "maximum_event_age_in_seconds"),
        ({"on_failure": "capillary-demo-intake-failures"}, "on_failure must be the ARN"),
        ({"on_success": "https://sqs.example/q"}, "on_success must be the ARN"),
    ],
)
def test_unusable_options_are_named(params: dict[str, Any], named: str) -> None:
    problem = check_params(_params(**params))
    assert problem is not None and named in problem


def test_usable_options_pass() -> None:
    assert check_params(_params(maximum_event_age_in_seconds=60, on_failure=QUEUE, on_success=TOPIC)) is None
    assert check_params(_params(maximum_event_age_in_seconds=21600)) is None


def test_the_result_is_snake_case_with_an_iso_timestamp() -> None:
    result = as_result(
        {
            "ResponseMetadata": {"HTTPStatusCode": 200},
            "LastModified": dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC),
            "MaximumRetryAttempts": 1,
            "DestinationConfig": {"OnFailure": {"Destination": QUEUE}},
        }
    )
    assert result == {
        "last_modified": "2026-11-21T09:00:00+00:00",
        "maximum_retry_attempts": 1,
        "destination_config": {"on_failure": {"destination": QUEUE}},
    }
    assert as_result(None) == {}
