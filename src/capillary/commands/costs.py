"""`capillary costs`: what a deployment's samples cost, per sample and in total, from the run
records its workers write beside each output (`outputs/…-run.json`). Every figure is the
estimate the record states (its method is in the record and in `capillary.contract.cost`), in
US dollars; a sample without a spot price (on-demand, or a failed lookup) has no compute share
and is counted as such."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from capillary.commands._common import CliError, add_aws_arguments, aws_session, deployment_of
from capillary.contract.times import as_utc


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "costs",
        help="what a deployment's samples cost, per sample and in total (from their run records)",
        description=__doc__,
    )
    add_aws_arguments(parser, deployment_help="the deployment whose bucket holds the run records (required)")
    parser.add_argument(
        "--since",
        type=_since,
        default=None,
        help="only samples finished at or after this ISO 8601 date or time (UTC unless it says)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def _since(value: str) -> dt.datetime:
    try:
        return as_utc(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO 8601 date or time (e.g. 2026-12-01 or 2026-12-01T09:00:00Z)"
        ) from None


def run(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from capillary.contract.cost import cost_row, cost_totals

    names = deployment_of(args)
    assert names is not None
    session = aws_session(args)
    s3 = session.client("s3")
    try:
        records, unreadable = _records(s3, names.bucket)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket", "404"):
            raise CliError(
                f"--deployment {names.deployment}: bucket {names.bucket} does not exist in "
                f"{session.region_name} (is the deployment up? check --region)"
            ) from None
        raise CliError(f"--deployment {names.deployment}: cannot list {names.bucket}: {exc}") from None
    except BotoCoreError as exc:
        raise CliError(f"--deployment {names.deployment}: cannot reach S3: {exc}") from None
    rows = [cost_row(r) for r in records]
    if args.since is not None:
        rows = [r for r in rows if _finished_since(r, args.since)]
    rows.sort(key=lambda r: str(r["finished"]))
    report = {
        "deployment": names.deployment,
        "bucket": names.bucket,
        "since": None if args.since is None else args.since.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "samples": rows,
        "total": cost_totals(rows),
        "unreadable_records": unreadable,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_costs(report))
    return 0


def _finished_since(row: dict[str, Any], since: dt.datetime) -> bool:
    try:
        return as_utc(row["finished"]) >= since
    except ValueError:
        return False  # no finishing time: not known to be after `since`


def _records(s3: Any, bucket: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Every run record under outputs/, and the keys of those that are not a JSON object."""
    from capillary.contract.samples import OUTPUT_PREFIX, SampleKeyError, parse_output_key

    records: list[dict[str, Any]] = []
    unreadable: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=OUTPUT_PREFIX):
        for obj in page.get("Contents", []):
            try:
                _, what = parse_output_key(obj["Key"])
            except SampleKeyError:
                continue
            if what != "run":
                continue
            try:
                data = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
            except ValueError:
                data = None
            if isinstance(data, dict):
                records.append(data)
            else:
                unreadable.append(obj["Key"])
    return records, unreadable


def _usd(value: Any) -> str:
    return "-" if value is None else f"{value:.6f}"


def format_costs(report: dict[str, Any]) -> str:
    """The table: one line per sample, then the totals and what they are."""
    header = ("sample", "finished", "engine", "instance", "USD/h", "wall s", "compute", "storage", "total")
    lines = [
        [
            r["sample"],
            r["finished"],
            r["engine"],
            f"{r['instance_type'] or '-'} {r['purchase_option'] or ''}".strip(),
            "-" if r["price_usd_per_hour"] is None else f"{r['price_usd_per_hour']:.4f}",
            "-" if r["wall_s"] is None else f"{r['wall_s']:.1f}",
            _usd(r["compute_usd"]),
            _usd(r["storage_usd"]),
            _usd(r["total_usd"]),
        ]
        for r in report["samples"]
    ]
    total = report["total"]
    footer = [
        "total",
        "",
        "",
        f"{total['samples']} samples",
        "",
        "",
        _usd(total["compute_usd"]),
        _usd(total["storage_usd"]),
        _usd(total["total_usd"]),
    ]
    table = [list(header), *lines, footer]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    out = [
        "  ".join(
            str(c).ljust(w) if i < 4 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in table
    ]
    out.insert(1, "  ".join("-" * w for w in widths))
    out.insert(len(out) - 1, "  ".join("-" * w for w in widths))
    since = f" since {report['since']}" if report["since"] else ""
    out.insert(
        0, f"deployment {report['deployment']} (bucket {report['bucket']}){since}: estimated costs in USD"
    )
    notes = [
        "compute = spot price at launch x wall time / samples sharing the instance; "
        "storage = one month of S3 Standard for input + output (each record states its method)"
    ]
    if total["samples_without_price"]:
        notes.append(
            f"{total['samples_without_price']} sample(s) without a spot price (on-demand, or the lookup "
            "failed: see price_reason in their records) count storage only"
        )
    if report["unreadable_records"]:
        notes.append(f"{len(report['unreadable_records'])} record(s) not readable as JSON were left out")
    return "\n".join(out + notes)
