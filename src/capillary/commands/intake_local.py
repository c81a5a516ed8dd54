"""`capillary intake-local`: feed the real S3 events of a local deployment into the intake handler.

The local AWS endpoint cannot invoke a Lambda, so locally the bucket notifies an SQS events
queue instead; this runner long-polls that queue and passes each S3 event to the same
`capillary.intake.handle_event` the Lambda runs, deleting an event only once it is handled.
A message it cannot handle is logged and left on the queue, whose redrive policy moves it to
the events dead-letter queue; no message stops the runner. With --once, the exit status is 1
when a message was left.

The handler reads its settings from the environment, as the Lambda does:
  CAPILLARY_DEPLOYMENT          the deployment's name (required)
  CAPILLARY_WORK_QUEUE_URL      the work queue (required)
  CAPILLARY_NOTIFY_TOPIC_ARN    the notification topic (optional; also CAPILLARY_WEBHOOK_URL,
                                CAPILLARY_WEBHOOK_KIND, CAPILLARY_WEBHOOK_KEY_PARAMETER, ...)
--deployment fills the first three (and the events queue) from the deployment's names and its
SSM configuration; --env-file reads them from the file intake.yml writes for a local deployment
(.cache/intake/<deployment>-intake.env). Variables already set in the environment win.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from capillary.commands._common import EXIT_USAGE, CliError, add_aws_arguments, aws_session, deployment_of

REQUIRED = ("CAPILLARY_DEPLOYMENT", "CAPILLARY_WORK_QUEUE_URL")
EVENTS_QUEUE_ENV = "CAPILLARY_EVENTS_QUEUE_URL"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "intake-local",
        help="run the intake handler on a local events queue (where Lambda cannot be invoked)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--queue-url",
        help=f"the events queue the bucket notifies (default: ${EVENTS_QUEUE_ENV}, or the deployment's)",
    )
    parser.add_argument(
        "--env-file",
        type=Path,
        help="KEY=VALUE lines to read the handler's settings from (intake.yml writes one)",
    )
    add_aws_arguments(parser)
    parser.add_argument("--once", action="store_true", help="handle what one long poll returns, then exit")
    parser.add_argument(
        "--wait-seconds",
        type=int,
        choices=range(21),
        metavar="0-20",
        default=20,
        help="long-poll wait per receive, 0-20 (default: %(default)s)",
    )
    parser.set_defaults(func=run)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments are skipped."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise CliError(f"--env-file {path}: no such file", EXIT_USAGE) from None
    except OSError as exc:
        raise CliError(f"--env-file {path}: cannot read it ({exc.strerror})", EXIT_USAGE) from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip().isidentifier():
            raise CliError(f"--env-file {path}: line {number} is not KEY=VALUE", EXIT_USAGE)
        values[name.strip()] = value.strip()
    return values


def _from_deployment(args: argparse.Namespace) -> dict[str, str]:
    """The handler's required settings and the events queue, from the deployment's names and SSM."""
    from botocore.exceptions import ClientError

    names = deployment_of(args)
    assert names is not None
    session = aws_session(args)
    sqs, ssm = session.client("sqs"), session.client("ssm")
    config: dict[str, str] = {}
    try:
        for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=names.ssm_config):
            for parameter in page.get("Parameters", []):
                config[parameter["Name"].rsplit("/", 1)[-1]] = parameter["Value"]
    except ClientError as exc:
        raise CliError(f"--deployment {names.deployment}: cannot read {names.ssm_config}: {exc}") from None

    def queue_url(setting: str, name: str) -> str:
        if config.get(setting):
            return config[setting]
        try:
            url: str = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError:
            raise CliError(
                f"--deployment {names.deployment}: no queue {name} "
                "(run playbooks/intake.yml with intake_platform=local)"
            ) from None
        return url

    values = {
        "CAPILLARY_DEPLOYMENT": names.deployment,
        "CAPILLARY_WORK_QUEUE_URL": queue_url("work_queue_url", names.work_queue),
        EVENTS_QUEUE_ENV: queue_url("events_queue_url", names.events_queue),
    }
    if config.get("notify_topic_arn"):
        values["CAPILLARY_NOTIFY_TOPIC_ARN"] = config["notify_topic_arn"]
    return values


def run(args: argparse.Namespace) -> int:
    from capillary.intake.handler import IntakeConfigError
    from capillary.intake.local import main

    found: dict[str, str] = {}
    if args.env_file:
        found.update(read_env_file(args.env_file))
    if args.deployment:
        found.update(_from_deployment(args))
    elif args.profile or args.region:
        aws_session(args, need_region=False)
    for name, value in found.items():
        os.environ.setdefault(name, value)
    queue_url = args.queue_url or os.environ.get(EVENTS_QUEUE_ENV, "")
    if not queue_url:
        raise CliError(
            f"no events queue: give --queue-url, --deployment or --env-file (or set {EVENTS_QUEUE_ENV})",
            EXIT_USAGE,
        )
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        raise CliError(
            f"{' and '.join(missing)} not set: give --deployment or --env-file, or export "
            f"{' and '.join(missing)} (see capillary intake-local --help)",
            EXIT_USAGE,
        )
    try:
        return main(queue_url=queue_url, once=args.once, wait_seconds=args.wait_seconds)
    except IntakeConfigError as exc:
        raise CliError(f"the handler's settings: {exc}", EXIT_USAGE) from None
