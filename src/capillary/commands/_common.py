"""What the `capillary` subcommands share: one-line errors and the AWS arguments.

Errors. A command raises `CliError(message, code)` for a bad use it recognises; `capillary.cli.main`
prints it as one line, `capillary <command>: <message>`, and exits with the code. Anything else a
command lets escape (a botocore error, an unreadable file) is turned into one line by
`describe_error` there too: a user never sees a traceback unless they asked for `--log-level debug`.

AWS. Every command that talks to AWS takes `--profile`, `--region` and `--deployment`
(`add_aws_arguments`); `aws_session` turns the first two into a boto3 session (and makes it the
default, so every client the command builds later uses it), `deployment_of` checks the third and
returns the deployment's names (`capillary.contract.naming`).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any, NoReturn

from capillary.contract.naming import DeploymentNameError, DeploymentNames, deployment_names

EXIT_USAGE = 2
EXIT_FAILED = 1

# AWS region names: eu-west-1, us-gov-west-1, ap-southeast-4, cn-north-1 (a local endpoint takes them too).
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z0-9]+)+-\d{1,2}$")
REGION_HINT = "give --region, set AWS_REGION, or set region in the profile"


class CliError(Exception):
    """A bad use or a failed step, said in one line that names the input and the reason."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (the usage itself is one `--help` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def add_aws_arguments(parser: argparse.ArgumentParser, *, deployment_help: str | None = None) -> None:
    group = parser.add_argument_group("AWS")
    group.add_argument(
        "--profile",
        help="a named profile of the AWS config files (default: $AWS_PROFILE, else the default chain)",
    )
    group.add_argument(
        "--region",
        type=_region,
        help="the deployment's region (default: $AWS_REGION / $AWS_DEFAULT_REGION, else the profile's)",
    )
    group.add_argument(
        "--deployment",
        type=_deployment,
        help=deployment_help
        or "the deployment's name: its bucket, queues and parameters are named from it "
        "(capillary-<deployment>-samples, capillary-<deployment>-work, /capillary/<deployment>/...)",
    )


def _region(value: str) -> str:
    if not _REGION.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not an AWS region name (e.g. eu-west-1)")
    return value


def _deployment(value: str) -> str:
    try:
        deployment_names(value)
    except DeploymentNameError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def deployment_of(args: argparse.Namespace, *, required: bool = True) -> DeploymentNames | None:
    """The names of `--deployment`; a CliError when it is required and missing."""
    deployment = getattr(args, "deployment", None)
    if not deployment:
        if required:
            raise CliError(
                "--deployment: required here (the deployment's name, e.g. --deployment prod)", EXIT_USAGE
            )
        return None
    return deployment_names(deployment)


def aws_session(args: argparse.Namespace, *, need_region: bool = True) -> Any:
    """A boto3 session from --profile and --region (else the environment), made the default."""
    import boto3
    from botocore.exceptions import ProfileNotFound

    profile = getattr(args, "profile", None) or None
    region = getattr(args, "region", None) or None
    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
    except ProfileNotFound:
        raise CliError(f"--profile {profile}: no such profile in the AWS config files", EXIT_USAGE) from None
    if need_region and not session.region_name:
        raise CliError(f"no AWS region: {REGION_HINT}", EXIT_USAGE)
    # Clients built later with boto3.client() (the worker's configuration reader, the intake
    # handler's clients) use the same profile and region; so do subprocesses.
    boto3.setup_default_session(profile_name=profile, region_name=session.region_name)
    if profile:
        os.environ["AWS_PROFILE"] = profile
    if session.region_name:
        os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = session.region_name
    return session


def describe_error(exc: BaseException) -> str:
    """One line for an error a command did not handle itself: what failed and why."""
    try:
        import boto3.exceptions
        import botocore.exceptions as bce
    except ImportError:  # pragma: no cover - boto3 is a dependency of the package
        bce = None
    if bce is not None:
        if isinstance(exc, bce.NoRegionError):
            return f"no AWS region: {REGION_HINT}"
        if isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError)):
            return (
                "no AWS credentials: give --profile, or set AWS_PROFILE or "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
            )
        if isinstance(exc, bce.ProfileNotFound):
            return f"{exc} (see --profile)"
        if isinstance(exc, bce.EndpointConnectionError):
            return f"cannot reach the AWS endpoint: {exc}"
        if isinstance(exc, bce.ClientError):
            error = exc.response.get("Error", {})
            operation = getattr(exc, "operation_name", "") or "request"
            return f"{operation} refused: {error.get('Code', '?')}: {error.get('Message', '') or exc}"
        if isinstance(exc, (bce.BotoCoreError, boto3.exceptions.Boto3Error)):
            return _flat(str(exc))
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return f"unexpected {type(exc).__name__}: {_flat(str(exc))} (--log-level debug shows where)"


def _flat(text: str) -> str:
    return " ".join(text.split())


def warn(prog: str, message: str) -> None:
    print(f"{prog}: {message}", file=sys.stderr)
