"""s3_bucket_notifications: the document it writes and the comparison that keeps re-runs quiet."""

from __future__ import annotations

import pytest
from ansible_collections.capillary.pcgr.plugins.modules.s3_bucket_notifications import (
    desired_configuration,
    normalized,
)

QUEUE = "arn:aws:sqs:eu-west-1:123456789012:capillary-demo-events"


def _item(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "inputs",
        "queue_arn": None,
        "lambda_function_arn": None,
        "topic_arn": None,
        "events": ["s3:ObjectCreated:*"],
        "prefix": "",
        "suffix": "",
    }
    return {**base, **kw}


def test_filters_are_lowercase_and_only_sent_when_set() -> None:
    config = desired_configuration(
        [_item(queue_arn=QUEUE, prefix="inputs/"), _item(id="all", queue_arn=QUEUE)]
    )
    first, second = config["QueueConfigurations"]
    assert first["Filter"] == {"Key": {"FilterRules": [{"Name": "prefix", "Value": "inputs/"}]}}
    assert "Filter" not in second


def test_what_the_api_returns_compares_equal_to_what_was_asked() -> None:
    desired = desired_configuration([_item(queue_arn=QUEUE, prefix="inputs/", events=["s3:ObjectCreated:*"])])
    # AWS answers with capitalised rule names and may reorder configurations
    returned = {
        "QueueConfigurations": [
            {
                "Id": "inputs",
                "QueueArn": QUEUE,
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "Prefix", "Value": "inputs/"}]}},
            }
        ]
    }
    assert normalized(returned) == normalized(desired)
    assert normalized({}) != normalized(desired)


def test_exactly_one_target_per_notification() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        desired_configuration([_item(queue_arn=QUEUE, topic_arn="arn:aws:sns:x")])
    with pytest.raises(ValueError, match="exactly one"):
        desired_configuration([_item()])
