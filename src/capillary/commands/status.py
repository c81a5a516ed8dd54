"""`capillary status`: on a worker, the work queue's counters and this worker's state; with
--deployment, the deployment as an operator sees it: its queues (work, dead-letter, intake
failures), its workers (EC2 instances by tag, or the local podman containers), the samples in
flight, the recent results and failures (from the bucket's inputs/, outputs/ and rejected/)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from capillary.commands._common import EXIT_USAGE, CliError, add_aws_arguments, aws_session, deployment_of
from capillary.worker.config import ConfigError, ConfigUnavailableError, load_config

EXIT_CONFIG = 78


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="a deployment's queues, workers and samples (--deployment), or this worker's state",
        description=__doc__,
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="a worker's TOML file (default /etc/capillary/consumer.toml)",
    )
    add_aws_arguments(
        parser,
        deployment_help="the deployment to look at (its queues, workers and samples), from a controller "
        "or a laptop; without it, this worker's configuration and state",
    )
    parser.add_argument(
        "--recent",
        type=int,
        default=10,
        help="how many recent results and failures to list (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.recent < 1:
        raise CliError(f"--recent {args.recent}: at least 1", EXIT_USAGE)
    if args.deployment:
        if args.config is not None:
            raise CliError(
                "--config and --deployment: give one (a worker's file, or a deployment's name)", EXIT_USAGE
            )
        return _deployment(args)
    return _worker(args)


def _deployment(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from capillary.contract.queue import QueueAttributeError
    from capillary.controller.status import (
        ec2_workers,
        format_deployment_status,
        local_workers,
        queue_depth,
        queue_status,
        samples,
    )

    names = deployment_of(args)
    assert names is not None
    session = aws_session(args)
    sqs, s3, ssm = session.client("sqs"), session.client("s3"), session.client("ssm")
    config: dict[str, str] = {}
    try:
        for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=names.ssm_config):
            for parameter in page.get("Parameters", []):
                config[parameter["Name"].rsplit("/", 1)[-1]] = parameter["Value"]
    except ClientError as exc:
        raise CliError(f"--deployment {names.deployment}: cannot read {names.ssm_config}: {exc}") from None
    if not config.get("work_queue_url"):
        raise CliError(
            f"{names.ssm_config}/work_queue_url does not exist: deployment {names.deployment} is not "
            f"deployed in {session.region_name} (run playbooks/intake.yml, or check --region)"
        )
    bucket = config.get("bucket", names.bucket)
    platform = config.get("platform", "aws")
    report: dict[str, Any] = {
        "deployment": names.deployment,
        "region": session.region_name,
        "platform": platform,
        "bucket": bucket,
        "queue": None,
        "queue_error": None,
    }
    try:
        queue = queue_status(sqs, config["work_queue_url"])
        queue["intake_failures"] = queue_depth(sqs, names.intake_failures_queue)
        report["queue"] = queue
    except (BotoCoreError, ClientError, QueueAttributeError) as exc:
        report["queue_error"] = str(exc)
    try:
        report["workers"] = (
            local_workers(names.local_worker_prefix)
            if platform == "local"
            else ec2_workers(session.client("ec2"), names)
        )
    except (BotoCoreError, ClientError, RuntimeError, OSError, ValueError) as exc:
        report["workers"] = str(exc)
    try:
        report["samples"] = samples(s3, bucket, recent=args.recent)
    except (BotoCoreError, ClientError) as exc:
        report["samples"] = str(exc)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(format_deployment_status(report))
    return 0 if report["queue"] is not None else 1


def _worker(args: argparse.Namespace) -> int:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from capillary.contract.queue import QueueAttributeError
    from capillary.controller.status import format_status, queue_status
    from capillary.worker.state import StateFile

    if args.profile or args.region:
        aws_session(args, need_region=False)
    try:
        cfg = load_config(args.config, env=dict(os.environ))
    except ConfigError as exc:
        raise CliError(f"bad configuration: {exc}", EXIT_CONFIG) from None
    except ConfigUnavailableError as exc:
        raise CliError(f"{exc} (on a controller, give --deployment NAME)") from None
    queue: dict[str, Any] | None = None
    error = ""
    try:
        sqs = boto3.client("sqs", region_name=cfg.region or None)
        queue = queue_status(sqs, cfg.queue_url)
    except (BotoCoreError, ClientError, QueueAttributeError) as exc:
        error = str(exc)
    worker = StateFile(cfg.state_file).read()
    if args.json:
        print(json.dumps({"queue": queue, "queue_error": error or None, "worker": worker}, indent=2))
    else:
        print(format_status(queue, worker, error))
    return 0 if queue is not None else 1
