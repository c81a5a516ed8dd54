"""The whole flow on one machine: `make demo` (python -m capillary.local.run).

A local AWS endpoint (moto, with a recorded spot price series), `playbooks/intake.yml` on it, the
local bake of the worker image (`playbooks/bake.yml`, cached per release and commit; the
reference data comes from a local artifact server, as in the bake tests), the example
samples submitted with `capillary submit`, workers from `playbooks/up.yml` on the local platform
(podman containers booted from the baked image), a line per sample as it moves, the outputs
downloaded to ./out/, the notifications a local webhook received, the bad sample's report and
dead-letter message, the workers powering themselves off, and `playbooks/down.yml`.

The intake handler runs in this process, fed by the real S3 -> SQS event delivery of the local
endpoint (which cannot invoke a Lambda): the same `capillary.intake.handle_event` as in AWS.

Nothing is left behind unless --keep: no container, no process, no port.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from capillary.contract.layout import STATE_FILE
from capillary.contract.naming import deployment_names
from capillary.contract.samples import SampleKey
from capillary.intake.handler import Clients, IntakeConfig
from capillary.intake.local import poll_once
from capillary.local.bake import (
    build_key,
    local_bake,
    local_image,
    record_smoke_tested,
    smoke_tested,
    source_commit,
)
from capillary.local.endpoint import LocalAWS, load_spot_series
from capillary.local.playbook import REPO, Recap, run_playbook
from capillary.local.podman import podman
from capillary.local.project import containers_conf
from capillary.release.catalogue import load_catalogue

EXAMPLES = REPO / "examples"
SPOT_SERIES = REPO / "tests" / "data" / "spot" / "eu-west-1.json"
CONTAINERS_CONF = str(containers_conf())
GOOD_EXAMPLES = ("COLO829-somatic", "HG002-normal")
BAD_EXAMPLE = "broken-somatic"


# --------------------------------------------------------------------------- the pieces


class WebhookReceiver:
    """A local HTTP endpoint standing in for StackStorm/AWX/EDA: records every JSON it is sent."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                with contextlib.suppress(ValueError):
                    received.append(json.loads(body))
                self.send_response(202)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/capillary"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class IntakeRunner:
    """`capillary intake-local` in a thread: the bucket's events queue into the intake handler."""

    def __init__(self, events_queue_url: str, config: IntakeConfig) -> None:
        self.events_queue_url = events_queue_url
        self.config = config
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        clients = Clients.create()
        while not self._stop.is_set():
            poll_once(self.events_queue_url, self.config, clients, wait_seconds=1)

    def start(self) -> IntakeRunner:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def pack_example(example: Path, dest: Path, *, bgzip: bool = True) -> Path:
    """A sample tarball from an example folder: VCFs compressed (bgzip, or plain gzip to make a
    broken sample, as a broken pipeline would), the TOML as it is."""
    dest.mkdir(parents=True, exist_ok=True)
    tarball = dest / f"{example.name}.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        for member in sorted(example.iterdir()):
            if member.suffix == ".vcf":
                if bgzip:
                    data = subprocess.run(
                        ["bgzip", "-c", str(member)], capture_output=True, check=True
                    ).stdout
                else:
                    data = gzip.compress(member.read_bytes(), mtime=0)
                name = f"{example.name}/{member.name}.gz"
            else:
                data = member.read_bytes()
                name = f"{example.name}/{member.name}"
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            archive.addfile(info, io.BytesIO(data))
    return tarball


# --------------------------------------------------------------------------- the run


@dataclass
class Sample:
    name: str
    key: str
    expect: str  # "output" or "dead-letter"
    state: str = "queued"
    worker: str = ""


@dataclass
class Options:
    deployment: str = "demo"
    release: str = "current"
    max_workers: int = 2
    idle_minutes: float = 0.25
    max_receive_count: int = 2
    timeout_s: float = 900
    out_dir: Path = REPO / "out"
    keep: bool = False
    progress: bool = True
    reuse_image: bool = True


@dataclass
class Result:
    samples: list[Sample] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    downloads: dict[str, Path] = field(default_factory=dict)
    error_reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    workers_launched: list[str] = field(default_factory=list)
    workers_left: list[str] = field(default_factory=list)
    status_output: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    image_reused: bool = False  # the release's image was this build's and smoke-tested: no bake.yml


class LocalRun:
    def __init__(self, options: Options) -> None:
        self.o = options
        self.names = deployment_names(options.deployment)
        self.result = Result()
        self.release = load_catalogue().release(options.release).version
        self._say_enabled = options.progress

    def say(self, text: str) -> None:
        if self._say_enabled:
            print(text, flush=True)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.say(f"\n== {name}")
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.result.timings[name] = round(time.monotonic() - t0, 1)
            self.say(f"   ({self.result.timings[name]:.1f} s)")

    def playbook(self, playbook: str, extra_vars: dict[str, Any], timeout: float = 2400) -> Recap:
        recap = run_playbook(playbook, env=self.env, extra_vars=extra_vars, timeout=timeout)
        if recap.rc != 0 or recap.failed:
            raise RuntimeError(f"{playbook} failed:\n{recap.tail(60)}")
        return recap

    def workers(self) -> list[str]:
        prefix = self.names.local_worker_prefix
        out = podman("ps", "--format", "{{.Names}}", "--filter", f"name=^{prefix}")
        return sorted(n for n in out.split() if n[len(self.names.local_worker_prefix) :].isdigit())

    # ------------------------------------------------------------------ phases

    def run(self) -> Result:
        t_all = time.monotonic()
        with contextlib.ExitStack() as stack:
            with self.phase("local AWS endpoint"):
                self.aws = LocalAWS().start()
                stack.callback(self.aws.stop)
                # moto keeps its resources in this process, not in the server: a fresh endpoint
                # has none only after a reset (a bench runs several flows in one process)
                self.aws.reset()
                stack.callback(self.aws.reset)
                self.aws.seed_spot_prices(load_spot_series(SPOT_SERIES))
                self.env = {**self.aws.env, "CONTAINERS_CONF": CONTAINERS_CONF}
                os.environ.update(self.env)  # boto3 in this process: the intake runner, the checks
                self.webhook = WebhookReceiver().start()
                stack.callback(self.webhook.stop)
                self.say(f"   endpoint {self.aws.endpoint_url}, webhook receiver {self.webhook.url}")
            stack.callback(self._teardown)

            with self.phase("intake.yml: bucket, queues, IAM, parameters, notifications"):
                self.playbook(
                    "playbooks/intake.yml",
                    {
                        "capillary_deployment": self.o.deployment,
                        "intake_platform": "local",
                        "intake_webhook_url": self.webhook.url,
                        "intake_webhook_kind": "json",
                        "intake_max_receive_count": self.o.max_receive_count,
                        "intake_engine_timeout_s": 300,
                        "intake_visibility_margin_s": 60,
                    },
                )
                sqs = self.aws.client("sqs")
                self.work_url = sqs.get_queue_url(QueueName=self.names.work_queue)["QueueUrl"]
                self.dlq_url = sqs.get_queue_url(QueueName=self.names.dead_letter_queue)["QueueUrl"]
                events_url = sqs.get_queue_url(QueueName=self.names.events_queue)["QueueUrl"]
                config = IntakeConfig(
                    deployment=self.o.deployment,
                    work_queue_url=self.work_url,
                    webhook_url=self.webhook.url,
                    webhook_timeout_s=2.0,
                    presign_expiry_s=3600,
                )
                runner = IntakeRunner(events_url, config).start()
                stack.callback(runner.stop)

            with self.phase(
                f"the worker image for PCGR {self.release} (bake.yml unless this commit's exists)"
            ):
                self._image()

            with self.phase("capillary submit: the example samples"):
                self._submit()

            with self.phase("up.yml: workers sized from the queue"):
                recap = self.playbook(
                    "playbooks/up.yml",
                    {
                        "capillary_deployment": self.o.deployment,
                        "capillary_platform": "local",
                        "capillary_release": self.release,
                        "capillary_workers": "from_queue",
                        "capillary_max_workers": self.o.max_workers,
                        "capillary_event": "demo-submit",
                        "capillary_local_worker_env": {
                            "CAPILLARY_IDLE_MINUTES": str(self.o.idle_minutes),
                            "CAPILLARY_RETRY_BACKOFF_S": "3",
                            "CAPILLARY_POLL_WAIT_S": "5",
                        },
                    },
                )
                self.result.workers_launched = self.workers()
                launched = ", ".join(self.result.workers_launched) or "none"
                self.say(f"   launched {launched} ({recap.changed} changes)")

            with self.phase("processing (queued -> running -> uploaded | failed -> dead-lettered)"):
                self._watch()

            with self.phase("workers power themselves off when the queue stays empty"):
                self._wait_for_poweroff()

            with self.phase("down.yml"):
                self.playbook(
                    "playbooks/down.yml",
                    {"capillary_deployment": self.o.deployment, "capillary_platform": "local"},
                )

            with self.phase("results"):
                self._collect()
        self.result.timings["total"] = round(time.monotonic() - t_all, 1)
        return self.result

    def _image(self) -> None:
        """The release's worker image, baked by bake.yml (Packer, smoke test, record) unless the
        image tagged for the release carries this build's key and passed the smoke test here
        before: then it is only recorded in the deployment's parameters, as bake.yml would.

        The same provisioning as the bake tests (`capillary.local.bake`): the reference data from
        a local artifact server, so the two share one cached image per commit."""
        image = self.names.worker_image(self.release)
        with (
            tempfile.TemporaryDirectory(prefix="capillary-bake-") as bake_dir,
            local_bake(Path(bake_dir), self.release) as inputs,
        ):
            commit = source_commit()
            key = build_key(commit, inputs.provision_extra_vars, inputs.packer_vars)
            found = local_image(image)
            if self.o.reuse_image and found and found.build_key == key and smoke_tested(found):
                self._record_image(found.id, commit)
                self.result.image_reused = True
                self.say(
                    f"   {image} is this build's (key {key}) and passed its smoke test: bake.yml skipped"
                )
            else:
                self.playbook(
                    "playbooks/bake.yml",
                    {
                        "capillary_deployment": self.o.deployment,
                        "capillary_platform": "local",
                        "capillary_release": self.release,
                        "capillary_bake_reuse": self.o.reuse_image,
                        "capillary_bake_provision_extra_vars": inputs.provision_extra_vars,
                        "capillary_bake_packer_vars": inputs.packer_vars,
                        "capillary_bake_smoke_env": self.aws.env,
                    },
                )
                baked = local_image(image)
                if baked is None or baked.build_key != key:
                    raise RuntimeError(f"bake.yml left {image} with build key {baked}, not {key}")
                record_smoke_tested(baked)  # bake.yml ran its smoke test on it and then tagged it
        self.say(f"   image {image} recorded in {self.names.ssm_images}")

    def _record_image(self, image_id: str, commit: str) -> None:
        """What bake.yml's record step writes: the release's image parameter, and `current` when
        the release is the catalogue's current one."""
        ssm = self.aws.client("ssm")
        ssm.put_parameter(
            Name=self.names.image_parameter(self.release),
            Value=image_id,
            Type="String",
            Description=f"Capillary worker image, PCGR {self.release}, commit {commit}",
        )
        if load_catalogue().current.version == self.release:
            ssm.put_parameter(
                Name=self.names.image_parameter("current"),
                Value=image_id,
                Type="String",
                Description=f"Capillary worker image of the current PCGR release ({self.release})",
            )

    def _submit(self) -> None:
        """The good samples through `capillary submit`, and the bad one checked with `capillary
        validate` and uploaded anyway; the three commands run side by side (each is a Python
        start-up and a boto3 import, most of its time), their output shown in order."""
        build = self.o.out_dir / ".build"
        env = {**os.environ, **self.env}
        submits = {}
        for name in GOOD_EXAMPLES:
            tarball = pack_example(EXAMPLES / name, build)
            kind = "normal" if name.endswith("-normal") else "somatic"
            submits[name] = (tarball, subprocess.Popen(
                [sys.executable, "-m", "capillary", "submit", str(tarball), "--bucket", self.names.bucket,
                 "--batch", "demo", "--kind", kind, "--json"],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            ))  # fmt: skip
        # The bad sample: what a broken pipeline uploads without `capillary submit`. Show that
        # validation would have refused it, then put it in the bucket anyway.
        bad = pack_example(EXAMPLES / BAD_EXAMPLE, build, bgzip=False)
        validate = subprocess.Popen(
            [sys.executable, "-m", "capillary", "validate", str(bad)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (tarball, proc) in submits.items():
            out, err = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"capillary submit {tarball} failed: {err.strip()}")
            key = json.loads(out)["key"]
            self.result.samples.append(Sample(name, key, "output"))
            self.say(f"   submitted {name:<18} -> s3://{self.names.bucket}/{key}")
        out, _ = validate.communicate()
        first_problem = next((line for line in out.splitlines() if "vcf" in line.lower()), "")
        self.say(f"   {BAD_EXAMPLE}: capillary validate refuses it ({first_problem.strip()})")
        key = SampleKey.new("demo", "somatic").input_key
        self.aws.client("s3").upload_file(str(bad), self.names.bucket, key)
        self.result.samples.append(Sample(BAD_EXAMPLE, key, "dead-letter"))
        self.say(f"   uploaded {BAD_EXAMPLE} anyway, as a broken pipeline would -> {key}")
        # Intake turns each upload into a work message: wait until all are queued.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self._queue_depth() < len(self.result.samples):
            time.sleep(0.2)
        self.say(f"   work queue holds {self._queue_depth()} messages")

    def _queue_depth(self) -> int:
        attrs = self.aws.client("sqs").get_queue_attributes(
            QueueUrl=self.work_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def _dead_letters(self) -> list[dict[str, Any]]:
        """The dead-letter queue's work messages, peeked (received with a zero visibility timeout)."""
        messages = (
            self.aws.client("sqs")
            .receive_message(
                QueueUrl=self.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0
            )
            .get("Messages", [])
        )
        bodies = []
        for message in messages:
            with contextlib.suppress(ValueError):
                bodies.append(json.loads(message["Body"]))
        return bodies

    def _status(self) -> str:
        """`capillary status` for the deployment, as a person would run it from another terminal."""
        proc = subprocess.run(
            [sys.executable, "-m", "capillary", "status", "--deployment", self.o.deployment],
            env={**os.environ, **self.env}, capture_output=True, text=True, check=False,
        )  # fmt: skip
        return proc.stdout if proc.returncode == 0 else f"capillary status failed: {proc.stderr.strip()}"

    def _watch(self) -> None:
        self.result.status_output = self._status()
        endpoint = f"AWS_ENDPOINT_URL={self.aws.endpoint_url}"
        self.say(f"   $ {endpoint} capillary status --deployment {self.o.deployment}")
        for line in self.result.status_output.splitlines():
            self.say(f"     {line}")
        s3 = self.aws.client("s3")
        deadline = time.monotonic() + self.o.timeout_s
        while time.monotonic() < deadline:
            running = self._running_keys()
            dead = {body.get("key") for body in self._dead_letters()}
            for sample in self.result.samples:
                sk = SampleKey.parse(sample.key)
                state = sample.state
                if self._exists(s3, sk.output_key):
                    state = "uploaded"
                elif sample.key in dead:
                    state = "dead-lettered"
                elif sample.key in running:
                    state = "running"
                    sample.worker = running[sample.key]
                elif self._exists(s3, sk.error_key):
                    state = "failed (will retry)"
                if state != sample.state:
                    sample.state = state
                    where = f" on {sample.worker}" if state == "running" and sample.worker else ""
                    self.say(f"   {time.strftime('%H:%M:%S')}  {sample.name:<18} {state}{where}")
            if all(s.state in ("uploaded", "dead-lettered") for s in self.result.samples):
                workers = self.workers()
                self.say(f"   every sample settled; workers still up: {', '.join(workers) or 'none'}")
                return
            time.sleep(1)
        raise TimeoutError(
            "samples did not settle in time: " + ", ".join(f"{s.name}={s.state}" for s in self.result.samples)
        )

    def _running_keys(self) -> dict[str, str]:
        running: dict[str, str] = {}
        for worker in self.workers():
            raw = podman("exec", worker, "cat", STATE_FILE, check=False)
            with contextlib.suppress(ValueError):
                state = json.loads(raw or "{}")
                if state.get("state") == "working" and state.get("key"):
                    running[state["key"]] = worker
        return running

    def _exists(self, s3: Any, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            s3.head_object(Bucket=self.names.bucket, Key=key)
        except ClientError:
            return False
        return True

    def _wait_for_poweroff(self) -> None:
        deadline = time.monotonic() + self.o.idle_minutes * 60 + 120
        while time.monotonic() < deadline:
            left = self.workers()
            if not left:
                self.say("   every worker powered itself off")
                return
            time.sleep(2)
        self.result.workers_left = self.workers()
        still_up = ", ".join(self.result.workers_left)
        self.say(f"   still up after the idle time: {still_up} (down.yml removes them)")

    def _collect(self) -> None:
        s3 = self.aws.client("s3")
        self.o.out_dir.mkdir(parents=True, exist_ok=True)
        for sample in self.result.samples:
            sk = SampleKey.parse(sample.key)
            if sample.state == "uploaded":
                target = self.o.out_dir / Path(sk.output_key).name
                s3.download_file(self.names.bucket, sk.output_key, str(target))
                self.result.downloads[sample.name] = target
                with tarfile.open(target) as archive:
                    members = archive.getnames()
                reports = [m for m in members if m.endswith((".html", ".tsv"))]
                shown = target.relative_to(REPO) if target.is_relative_to(REPO) else target
                self.say(f"   {sample.name:<18} {shown}")
                for member in reports + [m for m in members if m.endswith("run.json")]:
                    self.say(f"       {member}")
            if self._exists(s3, sk.error_key):
                body = s3.get_object(Bucket=self.names.bucket, Key=sk.error_key)["Body"].read()
                report = json.loads(body)
                self.result.error_reports[sample.name] = report
                (self.o.out_dir / Path(sk.error_key).name).write_bytes(body)
        self.result.notifications = list(self.webhook.received)
        self.result.dead_letters = self._dead_letters()
        self.say(f"\n   the webhook receiver got {len(self.result.notifications)} notifications:")
        for note in self.result.notifications:
            link = note.get("download_url") or ""
            link_shown = link[:60] + "..." if len(link) > 60 else link
            self.say(f"     {note.get('event', '?'):<16} {note.get('key', '')}  {link_shown}")
        for name, report in self.result.error_reports.items():
            self.say(f"\n   error report of {name} (outputs/…-error.json):")
            for field_name in ("reason", "phase", "attempt", "final_attempt", "dead_letter_queue"):
                if field_name in report:
                    self.say(f"     {field_name}: {report[field_name]}")
        self.say(f"   dead-letter queue: {[m.get('key') for m in self.result.dead_letters]}")

    def _teardown(self) -> None:
        if self.o.keep:
            self.say("\n(--keep: the endpoint stopped with this process; worker containers left as they are)")
            return
        for worker in self.workers():
            podman("rm", "-f", "--time", "2", worker, check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the whole Capillary flow on this machine.")
    parser.add_argument("--deployment", default="demo")
    parser.add_argument("--release", default="current", help="catalogue release (default: current)")
    parser.add_argument("--max-workers", type=int, default=2)
    parser.add_argument("--idle-minutes", type=float, default=0.25)
    parser.add_argument("--out", type=Path, default=REPO / "out")
    parser.add_argument("--keep", action="store_true", help="leave the worker containers as they are")
    parser.add_argument("--rebake", action="store_true", help="bake even if an image of this commit exists")
    args = parser.parse_args(argv)
    run = LocalRun(
        Options(
            deployment=args.deployment,
            release=args.release,
            max_workers=args.max_workers,
            idle_minutes=args.idle_minutes,
            out_dir=args.out,
            keep=args.keep,
            reuse_image=not args.rebake,
        )
    )
    result = run.run()
    print("\n== timings (s)")
    for name, seconds in result.timings.items():
        print(f"   {seconds:7.1f}  {name}")
    ok = all(s.state == ("uploaded" if s.expect == "output" else "dead-lettered") for s in result.samples)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
