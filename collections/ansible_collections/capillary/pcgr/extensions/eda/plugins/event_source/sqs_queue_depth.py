# Copyright: Contributors to the Capillary project
# SPDX-License-Identifier: Apache-2.0
"""Event source `capillary.pcgr.sqs_queue_depth`: the messages waiting in a deployment's work queue.

It reads the queue's attributes every `interval` seconds, through `capillary.contract.queue` (the
one reading of them, shared with `capillary status` and `capillary.pcgr.sqs_queue_info`), and
emits an event while messages are waiting. Unlike `amazon.aws.aws_sqs_queue`, it never
receives a message, so it can watch the work queue without taking samples from the workers.
(`amazon.aws.aws_sqs_queue` also needs aiobotocore, whose botocore pin conflicts with the boto3
the rest of Capillary uses.) It ships in the capillary.pcgr collection and needs the
capillary-pcgr Python package (with boto3) beside ansible-rulebook.

Arguments:
  deployment: the capillary_deployment; the queue name comes from capillary.contract.naming.
  interval: seconds between polls (default 30).
  endpoint_url, region: optional; otherwise the standard AWS_* environment applies.

Event: {"capillary_queue": {"deployment", "queue", "visible", "in_flight"}}

Example:
  sources:
    - capillary.pcgr.sqs_queue_depth:
        deployment: demo
        interval: 30
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from capillary.contract.naming import deployment_names
from capillary.contract.queue import IN_FLIGHT, VISIBLE, QueueAttributeError, QueueDepth

logger = logging.getLogger(__name__)


def _client(args: dict[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    if args.get("endpoint_url"):
        kwargs["endpoint_url"] = args["endpoint_url"]
    if args.get("region"):
        kwargs["region_name"] = args["region"]
    return boto3.client("sqs", **kwargs)


def _depth(client: Any, queue_url: str) -> QueueDepth:
    attrs = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[VISIBLE, IN_FLIGHT])["Attributes"]
    return QueueDepth.from_attributes(attrs)


async def main(queue: asyncio.Queue[Any], args: dict[str, Any]) -> None:
    names = deployment_names(str(args.get("deployment", "")))
    interval = float(args.get("interval", 30))
    if not 0.1 <= interval <= 3600:
        raise ValueError(f"sqs_queue_depth: interval must be between 0.1 and 3600 seconds, got {interval}")
    client = _client(args)
    try:
        queue_url = (await asyncio.to_thread(client.get_queue_url, QueueName=names.work_queue))["QueueUrl"]
    except ClientError as exc:
        raise ValueError(
            f"sqs_queue_depth: work queue {names.work_queue!r} of deployment {names.deployment!r} "
            f"cannot be read: {exc} (run the capillary.pcgr.intake playbook first)"
        ) from exc
    while True:
        try:
            depth = await asyncio.to_thread(_depth, client, queue_url)
        except (BotoCoreError, ClientError, QueueAttributeError) as exc:  # a blip must not stop the watch
            logger.warning("sqs_queue_depth: reading %s failed: %s", names.work_queue, exc)
        else:
            if depth.visible > 0:
                await queue.put(
                    {
                        "capillary_queue": {
                            "deployment": names.deployment,
                            "queue": names.work_queue,
                            "visible": depth.visible,
                            "in_flight": depth.in_flight,
                        }
                    }
                )
        await asyncio.sleep(interval)
