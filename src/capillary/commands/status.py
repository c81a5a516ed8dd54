"""`capillary status`: queue depth, messages in flight, dead-letter count and this worker's state;
with --deployment, also the S3 events the intake Lambda gave up on (its intake-failures queue)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from capillary.worker.config import ENV_PREFIX, ConfigError, ConfigUnavailableError, load_config


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("status", help="the work queue's counters and this worker's state")
    parser.add_argument(
        "--config", type=Path, default=None, help="TOML file (default /etc/capillary/consumer.toml)"
    )
    parser.add_argument(
        "--deployment",
        help="read the deployment's settings from SSM (/capillary/<name>/config) instead of a file: "
        "for a controller or a laptop, where no consumer.toml exists",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from capillary.contract.naming import DeploymentNameError, deployment_names
    from capillary.contract.queue import QueueAttributeError
    from capillary.controller.status import format_status, queue_depth, queue_status
    from capillary.worker.state import StateFile

    env = dict(os.environ)
    if args.deployment:
        try:
            env[ENV_PREFIX + "SSM_CONFIG"] = deployment_names(args.deployment).ssm_config
        except DeploymentNameError as exc:
            print(f"capillary status: {exc}", file=sys.stderr)
            return 2
    try:
        cfg = load_config(args.config, env=env)
    except ConfigError as exc:
        print(f"capillary status: bad configuration: {exc}", file=sys.stderr)
        return 78
    except ConfigUnavailableError as exc:
        print(f"capillary status: {exc}", file=sys.stderr)
        return 1
    queue: dict[str, Any] | None = None
    error = ""
    sqs: Any = None
    try:
        sqs = boto3.client("sqs", region_name=cfg.region or None)
        queue = queue_status(sqs, cfg.queue_url)
    except (BotoCoreError, ClientError, QueueAttributeError) as exc:
        error = str(exc)
    if queue is not None and args.deployment:
        # Only with --deployment: a controller's credentials read every queue of the deployment,
        # a worker's role only its work queue.
        try:
            queue["intake_failures"] = queue_depth(
                sqs, deployment_names(args.deployment).intake_failures_queue
            )
        except (BotoCoreError, ClientError, QueueAttributeError) as exc:
            queue["intake_failures"] = f"unavailable: {exc}"
    worker = StateFile(cfg.state_file).read()
    if args.json:
        print(json.dumps({"queue": queue, "queue_error": error or None, "worker": worker}, indent=2))
    else:
        print(format_status(queue, worker, error))
    return 0 if queue is not None else 1
