"""`capillary operator-policy`: the IAM policies an operator needs, for one deployment.

One document per playbook (see `capillary.controller.operator_policy`), scoped to the
deployment's names in one account and region. Without --playbook, every document goes into
--out-dir as operator-<playbook>.json (docs/iam/ holds them for deployment `example`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from capillary.commands._common import EXIT_USAGE, CliError, add_aws_arguments, aws_session, deployment_of


def register(subparsers: Any) -> None:
    from capillary.controller.operator_policy import PLAYBOOKS

    parser = subparsers.add_parser(
        "operator-policy",
        help="print the IAM policy an operator needs to run a playbook for a deployment",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_aws_arguments(parser)
    parser.add_argument("--account", help="the 12-digit account id (default: the caller's, from STS)")
    parser.add_argument("--partition", default="aws", choices=["aws", "aws-cn", "aws-us-gov"])
    parser.add_argument("--bucket", help="the samples bucket, when intake_bucket_name renamed it")
    parser.add_argument("--playbook", choices=list(PLAYBOOKS), help="one document, printed on stdout")
    parser.add_argument("--out-dir", type=Path, help="write every document there as operator-<playbook>.json")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from capillary.controller.operator_policy import PolicyError, Scope, policies, problems, render

    names = deployment_of(args)
    assert names is not None
    if not args.playbook and not args.out_dir:
        raise CliError("give --playbook NAME (printed) or --out-dir DIR (every document)", EXIT_USAGE)
    region, account = args.region, args.account
    if not region or not account:
        session = aws_session(args)
        region = region or session.region_name
        account = account or session.client("sts").get_caller_identity()["Account"]
    try:
        scope = Scope(names.deployment, account, region, args.partition, args.bucket or None)
        found = policies(scope)
    except PolicyError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    for name, policy in found.items():
        for problem in problems(policy.document()):
            raise CliError(f"the {name} policy is unfit: {problem}")
    if args.playbook:
        sys.stdout.write(render(found[args.playbook].document()))
        return 0
    out: Path = args.out_dir
    if out.exists() and not out.is_dir():
        raise CliError(f"--out-dir {out}: a file, not a folder", EXIT_USAGE)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"--out-dir {out}: cannot create it ({exc.strerror})", EXIT_USAGE) from None
    for name, policy in found.items():
        path = out / f"operator-{name}.json"
        path.write_text(render(policy.document()))
        print(path)
    return 0
