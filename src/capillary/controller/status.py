"""`capillary status`: a work queue as SQS sees it, beside what this worker's state file says;
for a deployment, its samples, workers and queues as an operator sees them.

The queue's counters and its dead-letter queue's depth (and, given a deployment, its
intake-failures queue's), and the daemon's state file (`capillary.worker.state`). With a
deployment: the samples in flight, recent results and failures (from the bucket's inputs/,
outputs/ and rejected/), and its workers (EC2 instances by tag, or the local podman containers).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from capillary.contract.naming import DeploymentNames
from capillary.contract.queue import ATTRIBUTE_NAMES, VISIBLE, QueueDepth


def queue_status(sqs: Any, queue_url: str) -> dict[str, Any]:
    """Depth, in-flight and dead-letter counts of the work queue."""
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(ATTRIBUTE_NAMES))["Attributes"]
    depth = QueueDepth.from_attributes(attrs)
    out: dict[str, Any] = {
        "queue_url": queue_url,
        "visible": depth.visible,
        "in_flight": depth.in_flight,
        "delayed": depth.delayed,
        "dead_letter": None,
        "max_receive_count": depth.max_receive_count,
    }
    if depth.dead_letter_queue_name:
        dlq_url = sqs.get_queue_url(QueueName=depth.dead_letter_queue_name)["QueueUrl"]
        dlq = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=[VISIBLE])["Attributes"]
        out["dead_letter"] = QueueDepth.from_attributes(dlq).visible
        out["dead_letter_queue_url"] = dlq_url
    return out


_NO_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def queue_depth(sqs: Any, name: str) -> int | None:
    """Messages waiting in the queue `name`; None when there is no such queue."""
    from botocore.exceptions import ClientError

    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _NO_QUEUE:
            return None
        raise
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[VISIBLE])["Attributes"]
    return QueueDepth.from_attributes(attrs).visible


def format_status(queue: dict[str, Any] | None, worker: dict[str, Any] | None, error: str = "") -> str:
    lines = []
    if queue is not None:
        lines.append(f"queue        {queue['queue_url']}")
        lines.append(f"  waiting    {queue['visible']}")
        lines.append(f"  in flight  {queue['in_flight']}")
        dlq = queue["dead_letter"]
        lines.append(f"  dead-letter {'(no redrive policy)' if dlq is None else dlq}")
        if "intake_failures" in queue:
            # S3 events the intake Lambda gave up on (its on-failure destination), when the
            # deployment is known: their objects are in the bucket but were never queued.
            failures = queue["intake_failures"]
            lines.append(f"  intake failures {'(no queue)' if failures is None else failures}")
    else:
        lines.append(f"queue        unavailable: {error}")
    if worker is None:
        lines.append("worker       no state file (the daemon is not running here)")
    else:
        lines.append(
            f"worker       {worker.get('state')} (pid {worker.get('pid')}, updated {worker.get('updated')})"
        )
        if worker.get("sample"):
            lines.append(f"  sample     {worker['sample']} ({worker.get('message_id')})")
        counts = {k: worker.get(k, 0) for k in ("processed", "failed", "handed_back", "skipped")}
        lines.append(
            f"  counts     processed {counts['processed']}, failed {counts['failed']}, "
            f"handed back {counts['handed_back']}, skipped {counts['skipped']}"
        )
    return "\n".join(lines)


# --- A deployment as its operator sees it (`capillary status --deployment`) ----------------------

LIST_CAP = 10_000  # keys read per prefix: a status look, not an audit
_LIVE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]


def _list(s3: Any, bucket: str, prefix: str) -> tuple[list[dict[str, Any]], bool]:
    """Objects under `prefix` (at most LIST_CAP) and whether there were more."""
    found: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found.append(obj)
            if len(found) >= LIST_CAP:
                return found, True
    return found, False


def _when(obj: Mapping[str, Any]) -> str:
    stamp: Any = obj.get("LastModified")
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ") if hasattr(stamp, "strftime") else str(stamp or "")


def _read_json(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read(256 * 1024)
        data = json.loads(body)
        return data if isinstance(data, dict) else {}
    except (BotoCoreError, ClientError, ValueError):
        return {}


def samples(s3: Any, bucket: str, recent: int = 10) -> dict[str, Any]:
    """Samples in flight (an input without output or final error yet), recent results, failures.

    From the bucket alone, newest first: inputs/, outputs/ (outputs and error reports) and
    rejected/ (the intake's rejection reports). An error report that was not the last attempt is
    a sample still in flight (its message comes back); the last recent failures' reports are read
    for their reason.
    """
    from capillary.contract.samples import (
        ERROR_SUFFIX,
        INPUT_PREFIX,
        OUTPUT_PREFIX,
        OUTPUT_SUFFIX,
        REJECTED_PREFIX,
    )

    inputs, more_inputs = _list(s3, bucket, INPUT_PREFIX)
    outputs, more_outputs = _list(s3, bucket, OUTPUT_PREFIX)
    rejected, more_rejected = _list(s3, bucket, REJECTED_PREFIX)
    done: dict[str, dict[str, Any]] = {}
    errors: dict[str, dict[str, Any]] = {}
    for obj in outputs:
        name = obj["Key"][len(OUTPUT_PREFIX) :]
        if "/" in name:
            continue  # outputs/.claims/: a worker uploading right now
        if name.endswith(OUTPUT_SUFFIX):
            done[name[: -len(OUTPUT_SUFFIX)]] = obj
        elif name.endswith(ERROR_SUFFIX):
            errors[name[: -len(ERROR_SUFFIX)]] = obj
    newest = sorted(inputs, key=_when, reverse=True)
    results = sorted(done.items(), key=lambda kv: _when(kv[1]), reverse=True)[:recent]
    failed: list[dict[str, Any]] = []
    retrying: dict[str, dict[str, Any]] = {}
    for name, obj in sorted(errors.items(), key=lambda kv: _when(kv[1]), reverse=True):
        if name in done:
            continue  # a later attempt succeeded
        if len(failed) >= recent and len(retrying) >= recent:
            break
        report = _read_json(s3, bucket, obj["Key"])
        entry = {
            "sample": name,
            "key": obj["Key"],
            "time": _when(obj),
            "phase": report.get("phase", ""),
            "reason": report.get("reason", ""),
            "attempt": report.get("attempt"),
            "max_receive_count": report.get("max_receive_count"),
            "final": bool(report.get("final_attempt", True)),
        }
        if entry["final"]:
            failed.append(entry)
        else:
            retrying[name] = entry
    in_flight = []
    for obj in newest:
        name = obj["Key"][len(INPUT_PREFIX) :].removesuffix(".tar.gz")
        if name in done or (name in errors and name not in retrying):
            continue
        entry = {"sample": name, "key": obj["Key"], "uploaded": _when(obj), "size": obj.get("Size", 0)}
        if name in retrying:
            entry["last_error"] = retrying[name]
        in_flight.append(entry)
    rejections = []
    for obj in sorted(rejected, key=_when, reverse=True)[:recent]:
        report = _read_json(s3, bucket, obj["Key"])
        rejections.append(
            {"key": report.get("key") or obj["Key"], "time": _when(obj), "reason": report.get("reason", "")}
        )
    return {
        "in_flight": in_flight[:recent],
        "in_flight_total": len(in_flight),
        "results": [
            {"sample": n, "key": o["Key"], "time": _when(o), "size": o.get("Size", 0)} for n, o in results
        ],
        "results_total": len(done),
        "failures": failed[:recent],
        "rejections": rejections,
        "rejections_total": len(rejected),
        "truncated": more_inputs or more_outputs or more_rejected,
    }


def ec2_workers(ec2: Any, names: DeploymentNames) -> list[dict[str, Any]]:
    """The deployment's instances that are not terminated, by its tag."""
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": f"tag:{names.tag_deployment}", "Values": [names.deployment]},
            {"Name": "instance-state-name", "Values": _LIVE_STATES},
        ]
    )
    found = []
    for page in pages:
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                launched = instance.get("LaunchTime")
                found.append(
                    {
                        "id": instance["InstanceId"],
                        "type": instance.get("InstanceType", ""),
                        "state": instance["State"]["Name"],
                        "market": instance.get("InstanceLifecycle", "on-demand"),
                        "zone": instance.get("Placement", {}).get("AvailabilityZone", ""),
                        "role": tags.get(names.tag_role, ""),
                        "release": tags.get(names.tag_release, ""),
                        "since": _when({"LastModified": launched}),
                    }
                )
    return sorted(found, key=lambda w: w["since"])


def local_workers(prefix: str) -> list[dict[str, Any]]:
    """The deployment's local worker containers (podman), by their name prefix."""
    import shutil
    import subprocess

    podman = shutil.which("podman")
    if podman is None:
        raise RuntimeError("podman is not on PATH")
    proc = subprocess.run(
        [podman, "ps", "--all", "--format", "json", "--filter", f"name=^{prefix}[0-9]+$"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"podman ps failed: {proc.stderr.strip()[-200:]}")
    rows = json.loads(proc.stdout or "[]")
    return sorted(
        (
            {
                "id": (row.get("Names") or [""])[0],
                "type": "container",
                "state": row.get("State", ""),
                "market": "local",
                "zone": "",
                "role": "worker",
                "release": str(row.get("Image", "")).rsplit(":", 1)[-1],
                "since": str(row.get("CreatedAt", row.get("Created", ""))),
            }
            for row in rows
        ),
        key=lambda w: w["id"],
    )


def format_deployment_status(report: Mapping[str, Any]) -> str:
    """`capillary status --deployment` as text: the work queue, workers, samples."""
    lines = [f"deployment   {report['deployment']} ({report['platform']}, {report['region']})"]
    lines.append(f"bucket       s3://{report['bucket']}")
    queue_lines = format_status(report["queue"], None, report.get("queue_error") or "").splitlines()
    lines += [line for line in queue_lines if not line.startswith("worker ")]
    workers = report["workers"]
    if isinstance(workers, str):
        lines.append(f"workers      unavailable: {workers}")
    else:
        lines.append(f"workers      {len(workers)}")
        for w in workers:
            extra = f"  release {w['release']}" if w["release"] else ""
            role = f"  ({w['role']})" if w["role"] not in ("", "worker") else ""
            lines.append(
                f"  {w['id']}  {w['type']}  {w['state']}  {w['market']}{extra}  since {w['since']}{role}"
            )
    found = report["samples"]
    if isinstance(found, str):
        lines.append(f"samples      unavailable: {found}")
        return "\n".join(lines)
    lines.append(f"in flight    {found['in_flight_total']}")
    for s in found["in_flight"]:
        last = s.get("last_error")
        retry = f"  attempt {last['attempt']} failed: {last['reason']}" if last else ""
        lines.append(f"  {s['sample']}  uploaded {s['uploaded']}{retry}")
    lines.append(f"results      {found['results_total']}")
    for r in found["results"]:
        lines.append(f"  {r['sample']}  {r['time']}  {r['key']}")
    lines.append(f"failures     {len(found['failures'])}")
    for f in found["failures"]:
        attempts = f" after {f['attempt']} attempt(s)" if f.get("attempt") else ""
        lines.append(f"  {f['sample']}  {f['time']}  {f['phase']}: {f['reason']}{attempts}  {f['key']}")
    if found["rejections_total"]:
        lines.append(f"rejected     {found['rejections_total']}")
        for r in found["rejections"]:
            lines.append(f"  {r['key']}  {r['time']}  {r['reason']}")
    if found["truncated"]:
        lines.append(f"(more than {LIST_CAP} objects under a prefix: counts are of the first {LIST_CAP})")
    return "\n".join(lines)
