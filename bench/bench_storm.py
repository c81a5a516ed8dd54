"""The storm: 100 samples at once, one `up.yml` per sample, 20 of them at the same time (issue 16).

On the local platform (podman workers booted from the baked image `localhost/capillary-worker:<release>`,
the `summary` engine, the local AWS endpoint): intake.yml, 100 sample tarballs uploaded and turned
into work messages by the intake handler, then 20 concurrent `up.yml` runs (cap 4). A thread counts
the deployment's worker containers every half second until the last one has powered itself off.

Figures: the peak number of workers (target: the cap), the makespan (first trigger to last output),
worker-seconds (containers alive x time, boot and idle tail included), each against the ideal for
the cap: ceil(100 / cap) x the sample time, and cap times that in worker-seconds. The sample time is
the median of what each sample's run.json says its download, extraction, engine and packaging took.

Needs the baked local worker image (`make demo` bakes it; CAPILLARY_BENCH_RELEASE picks the
release, default the catalogue's current one) and podman; it does not bake one.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import json
import math
import os
import statistics
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import Figure
from capillary.contract.naming import deployment_names
from capillary.contract.samples import SampleKey
from capillary.intake.handler import IntakeConfig
from capillary.local.endpoint import LocalAWS
from capillary.local.playbook import run_playbook
from capillary.local.podman import podman
from capillary.local.project import containers_conf
from capillary.local.run import IntakeRunner, WebhookReceiver
from capillary.release.catalogue import load_catalogue

DEPLOYMENT = "storm"
SAMPLES = 100
TRIGGERS = 20
CAP = 4
IDLE_MINUTES = 0.25
TIMEOUT_S = 1800


class WorkerCounter(threading.Thread):
    """Samples the deployment's running worker containers: the peak and the worker-seconds."""

    def __init__(self, prefix: str, period_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.prefix = prefix
        self.period_s = period_s
        self.halt = threading.Event()
        self.peak = 0
        self.worker_seconds = 0.0
        self.last_seen = 0

    def count(self) -> int:
        out = podman("ps", "--format", "{{.Names}}", "--filter", f"name=^{self.prefix}[0-9]+$", check=False)
        return len(out.split())

    def run(self) -> None:
        last = time.monotonic()
        while not self.halt.is_set():
            n = self.count()
            now = time.monotonic()
            self.worker_seconds += self.last_seen * (now - last)
            self.last_seen, last = n, now
            self.peak = max(self.peak, n)
            self.halt.wait(self.period_s)


def _upload_samples(aws: LocalAWS, bucket: str, work: Path) -> list[SampleKey]:
    from tests.support.samples import make_sample_tarball

    s3 = aws.client("s3")
    keys = []
    for i in range(SAMPLES):
        key = SampleKey.new("storm", "somatic")
        tarball = make_sample_tarball(work / f"s{i}", batch="storm", kind="somatic", uuid=key.uuid)
        s3.upload_file(str(tarball), bucket, key.input_key)
        keys.append(key)
    return keys


def _outputs(aws: LocalAWS, bucket: str) -> list[str]:
    pages = aws.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="outputs/")
    return [
        o["Key"] for page in pages for o in page.get("Contents", []) if o["Key"].endswith("-output.tar.gz")
    ]


def _sample_time(aws: LocalAWS, bucket: str, keys: list[str]) -> float:
    """Median seconds a worker spent on one sample, from the outputs' run.json."""
    s3, spent = aws.client("s3"), []
    for key in keys:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(body)) as archive:
            member = next(m for m in archive.getmembers() if m.name.endswith("/run.json"))
            timings = json.loads(archive.extractfile(member).read())["timings_s"]  # type: ignore[union-attr]
        spent.append(sum(v for k, v in timings.items() if k != "upload_s"))
    return statistics.median(spent)


def run() -> list[Figure]:
    release = load_catalogue().release(os.environ.get("CAPILLARY_BENCH_RELEASE", "current")).version
    names = deployment_names(DEPLOYMENT)
    image = names.worker_image(release)
    os.environ["CONTAINERS_CONF"] = str(containers_conf())
    if not podman("images", "--quiet", image, check=False).strip():
        raise RuntimeError(f"the storm needs the baked local worker image {image} (make demo bakes it)")
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="capillary-storm-") as tmp:
        aws = LocalAWS().start()
        stack.callback(aws.stop)
        env = {**aws.env, "CONTAINERS_CONF": os.environ["CONTAINERS_CONF"]}
        os.environ.update(aws.env)
        webhook = WebhookReceiver().start()
        stack.callback(webhook.stop)
        run_dir = Path(tmp) / "run"
        stack.callback(lambda: [podman("rm", "-f", "-t", "0", n, check=False) for n in _containers(names)])
        run_playbook(
            "playbooks/intake.yml",
            env=env,
            extra_vars={
                "capillary_deployment": DEPLOYMENT,
                "intake_platform": "local",
                "intake_webhook_url": webhook.url,
                "intake_webhook_kind": "json",
                "intake_engine_timeout_s": 300,
                "intake_visibility_margin_s": 60,
            },
        ).assert_ok()
        sqs = aws.client("sqs")
        work_url = sqs.get_queue_url(QueueName=names.work_queue)["QueueUrl"]
        events_url = sqs.get_queue_url(QueueName=names.events_queue)["QueueUrl"]
        intake = IntakeRunner(
            events_url,
            IntakeConfig(
                deployment=DEPLOYMENT,
                work_queue_url=work_url,
                webhook_url=webhook.url,
                webhook_timeout_s=2.0,
                presign_expiry_s=3600,
            ),
        ).start()
        stack.callback(intake.stop)
        _upload_samples(aws, names.bucket, Path(tmp) / "samples")
        deadline = time.monotonic() + 300
        while _depth(aws, work_url) < SAMPLES:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {_depth(aws, work_url)} of {SAMPLES} samples were queued")
            time.sleep(1)

        counter = WorkerCounter(names.local_worker_prefix)
        counter.start()
        up_vars = {
            "capillary_deployment": DEPLOYMENT,
            "capillary_platform": "local",
            "capillary_release": release,
            "capillary_max_workers": CAP,
            "capillary_local_run_dir": str(run_dir),
            "capillary_local_worker_env": {
                "CAPILLARY_ENGINE": "summary",
                "CAPILLARY_IDLE_MINUTES": str(IDLE_MINUTES),
                "CAPILLARY_POLL_WAIT_S": "5",
            },
        }
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(TRIGGERS) as pool:
            recaps = list(
                pool.map(
                    lambda i: run_playbook(
                        "playbooks/up.yml", env=env, extra_vars={**up_vars, "capillary_event": f"storm-{i}"}
                    ),
                    range(TRIGGERS),
                )
            )
        triggers_s = time.monotonic() - t0
        failed = [r.tail(20) for r in recaps if r.rc != 0]
        if failed:
            raise RuntimeError("up.yml failed:\n" + failed[0])
        while len(outputs := _outputs(aws, names.bucket)) < SAMPLES:
            if time.monotonic() - t0 > TIMEOUT_S:
                raise RuntimeError(f"{len(outputs)} of {SAMPLES} outputs after {TIMEOUT_S} s")
            time.sleep(1)
        makespan = time.monotonic() - t0
        while counter.count() and time.monotonic() - t0 < TIMEOUT_S:
            time.sleep(1)  # the workers power themselves off when the queue stays empty
        counter.halt.set()
        counter.join(timeout=10)
        run_playbook(
            "playbooks/down.yml",
            env=env,
            extra_vars={
                "capillary_deployment": DEPLOYMENT,
                "capillary_platform": "local",
                "capillary_local_run_dir": str(run_dir),
            },
        ).assert_ok()
        sample_s = _sample_time(aws, names.bucket, outputs)

    ideal_makespan = math.ceil(SAMPLES / CAP) * sample_s
    ideal_worker_s = CAP * ideal_makespan
    note = f"{SAMPLES} samples, {TRIGGERS} concurrent up.yml, cap {CAP}, summary engine, local platform"
    return [
        Figure("peak workers", counter.peak, "workers", f"== {CAP}", note),
        Figure("20 concurrent up.yml runs, wall time", triggers_s, "s"),
        Figure("makespan (first trigger to last output)", makespan, "s", f"ideal {ideal_makespan:.0f} s"),
        Figure(
            "makespan / ideal", makespan / ideal_makespan, "ratio", note="ideal: ceil(100/cap) x sample time"
        ),
        Figure(
            "worker-seconds",
            counter.worker_seconds,
            "s",
            f"ideal {ideal_worker_s:.0f} s",
            "boot and idle tail included",
        ),
        Figure("worker-seconds / ideal", counter.worker_seconds / ideal_worker_s, "ratio"),
        Figure("sample time (median, run.json)", sample_s, "s"),
    ]


def _depth(aws: LocalAWS, url: str) -> int:
    attrs = aws.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def _containers(names: Any) -> list[str]:
    out = podman(
        "ps",
        "-a",
        "--format",
        "{{.Names}}",
        "--filter",
        f"name=^{names.local_worker_prefix}[0-9]+$",
        check=False,
    )
    return out.split()
