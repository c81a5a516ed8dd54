"""The consumer against a same-work stream peer, its memory, and boot to its first ReceiveMessage.

- **Per-sample time, consumer / peer**, at 10 MB, 200 MB, 1 GB and 5 GB (CAPILLARY_BENCH_CONSUMER_MB,
  comma-separated MB, changes the sizes). The consumer is `Consumer.handle` of one long-lived
  consumer in this process, minus its engine's run (`run.json`'s `engine_s`): the idempotence
  listing (beside the GET), the GET streamed through sha256 into the safe extractor (which hashes
  each member too), package, conditional PUT of the output, workspace removal; the message's
  deletion overlaps with what follows, as it overlaps with a daemon's next receive. The peer does
  the same work with nothing else: the GET streamed through sha256 into `tarfile` (`r|gz`, 64 KiB
  reads and 1 MiB copies: its fastest settings here), extracted, and a 2.5 KB output PUT. The two
  are interleaved in one run (alternately, REPEAT times each), medians compared; target <= 1.2x.
- **Peak RSS** of `capillary consume --once` (a real subprocess, VmHWM sampled) at each size;
  target <= 100 MB, flat.
- **Boot to first ReceiveMessage** of a worker from the baked image (`localhost/capillary-worker:
  <release>`, CAPILLARY_WORKER_IMAGE names another), booted as the local platform boots one: the
  clock stops when the worker's first ReceiveMessage reaches the endpoint (a forwarder in front
  of it watches), not when systemd calls the unit active (`Type=exec`: that is its execve).

The local AWS endpoint runs in a process of its own. It holds an object in memory while it serves
it, so a size is skipped (and said so) when the machine has not got twice its size free. Tarballs
are a real sample (tests.support.samples) padded with incompressible bytes in an index member
(`.vcf.gz.tbi`, which the tarball contract copies and hashes but does not parse), so the bytes
moved are the stated size. Every figure notes the load it was measured at.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import Endpoint, Figure, load, median

MB = 1024 * 1024
REPEAT = 3
SIZES_MB = (10, 200, 1024, 5120)
BOOTS = 3
IMAGE = os.environ.get("CAPILLARY_WORKER_IMAGE", "localhost/capillary-worker:2.3.2")


def _sizes() -> list[int]:
    raw = os.environ.get("CAPILLARY_BENCH_CONSUMER_MB", "")
    return [int(x) for x in raw.split(",") if x.strip()] if raw else list(SIZES_MB)


def _available_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


def _padded_tarball(work: Path, size_mb: int, batch: str) -> tuple[Path, str]:
    """A valid sample tarball of about `size_mb` MB, written streaming, and its sha256."""
    from tests.support.samples import make_sample_tarball

    small = make_sample_tarball(work / "small", batch=batch, kind="somatic")
    name = small.name.removesuffix(".tar.gz")
    out = work / small.name
    rng = random.Random(size_mb)

    class Padding:
        """`size_mb` MB of incompressible bytes, read once."""

        def __init__(self) -> None:
            self.left = size_mb * MB

        def read(self, n: int = -1) -> bytes:
            n = self.left if n < 0 else min(n, self.left)
            self.left -= n
            return rng.randbytes(n)

    with tarfile.open(small) as src, tarfile.open(out, "w:gz", compresslevel=1) as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        info = tarfile.TarInfo(f"{name}/tumor1.vcf.gz.tbi")
        info.size, info.mode, info.mtime = size_mb * MB, 0o644, 1_700_000_000
        dst.addfile(info, Padding())
    shutil.rmtree(work / "small")
    digest = hashlib.sha256()
    with out.open("rb") as fh:
        while chunk := fh.read(MB):
            digest.update(chunk)
    return out, digest.hexdigest()


class _Bench:
    def __init__(self, root: Path) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig

        self.root = root
        self._consumer: Any = None
        self.s3 = boto3.client("s3")
        self.sqs = boto3.client("sqs")
        self.transfer = TransferConfig(multipart_chunksize=64 * MB, max_concurrency=2)
        self.bucket = "capillary-bench-samples"
        self.s3.create_bucket(
            Bucket=self.bucket,
            CreateBucketConfiguration={"LocationConstraint": os.environ["AWS_DEFAULT_REGION"]},
        )
        self.queue_url = self.sqs.create_queue(
            QueueName="capillary-bench-work", Attributes={"VisibilityTimeout": "300"}
        )["QueueUrl"]

    def upload(self, tarball: Path, sha256: str) -> str:
        from capillary.contract.message import META_SHA256

        key = f"inputs/{tarball.name}"
        extra = {"Metadata": {META_SHA256: sha256}}
        self.s3.upload_file(str(tarball), self.bucket, key, ExtraArgs=extra, Config=self.transfer)
        return key

    def send(self, key: str) -> None:
        """The message the intake queues for `key`: its etag and size included."""
        from capillary.contract.message import WorkMessage
        from capillary.contract.samples import SampleKey

        head = self.s3.head_object(Bucket=self.bucket, Key=key)
        message = WorkMessage.for_sample(
            SampleKey.parse(key), bucket=self.bucket, size=head["ContentLength"], etag=head["ETag"]
        )
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=message.to_body())

    def config(self, name: str) -> Path:
        work = self.root / name
        work.mkdir(parents=True, exist_ok=True)
        path = work / "consumer.toml"
        path.write_text(
            f'queue_url = "{self.queue_url}"\nbucket = "{self.bucket}"\nworkdir = "{work / "work"}"\n'
            f'state_file = "{work / "state.json"}"\npoll_wait_s = 1\nimds_enabled = false\n'
        )
        return path

    def _output_key(self, key: str) -> str:
        return key.replace("inputs/", "outputs/").replace(".tar.gz", "-output.tar.gz")

    def peer(self, key: str) -> float:
        """The same work with nothing else: GET -> sha256 -> tarfile r|gz extract -> 2.5 KB PUT."""
        dest = self.root / "peer"
        dest.mkdir()
        t0 = time.perf_counter()
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        digest = hashlib.sha256()

        class Hashed:
            def read(self, n: int = -1) -> bytes:
                chunk: bytes = body.read(n)
                digest.update(chunk)
                return chunk

        # The fastest tarfile settings for a stream here: 64 KiB reads, 1 MiB copies.
        with tarfile.open(fileobj=Hashed(), mode="r|gz", bufsize=64 * 1024) as tar:  # type: ignore[call-overload]
            tar.copybufsize = MB  # members copied out 1 MiB at a time, as the consumer does
            tar.extractall(dest, filter="data")
        while Hashed().read(MB):
            pass
        digest.hexdigest()
        self.s3.put_object(Bucket=self.bucket, Key="outputs/peer-output.tar.gz", Body=os.urandom(2560))
        elapsed = time.perf_counter() - t0
        shutil.rmtree(dest)
        return elapsed

    def consumer(self, key: str) -> tuple[float, float]:
        """(time without the engine, engine time) of one in-process Consumer.handle, by one
        long-lived consumer, as a worker's daemon handles one sample after another."""
        from capillary.worker.config import load_config
        from capillary.worker.daemon import Consumer

        if self._consumer is None:
            self._consumer = Consumer(load_config(self.config("inproc"), env={}))
            self._consumer.clean_workdir()
        consumer = self._consumer
        self.s3.delete_object(Bucket=self.bucket, Key=self._output_key(key))  # no idempotent shortcut
        self.send(key)
        messages = consumer.receive()
        assert messages, "no message received"
        t0 = time.perf_counter()
        consumer.handle(messages[0])
        elapsed = time.perf_counter() - t0
        run = self._run_json(key)
        engine = float(run["timings_s"]["engine_s"])
        return elapsed - engine, engine

    def _run_json(self, key: str) -> dict[str, Any]:
        body = self.s3.get_object(Bucket=self.bucket, Key=self._output_key(key))["Body"]
        with tarfile.open(fileobj=body, mode="r|gz") as tar:
            for member in tar:
                if member.name.endswith("/run.json"):
                    run: dict[str, Any] = json.loads(tar.extractfile(member).read())  # type: ignore[union-attr]
                    return run
        raise RuntimeError(f"{key}: the output has no run.json")

    def daemon_peak_rss(self, key: str) -> tuple[float, float]:
        """Peak RSS (MB) of `capillary consume --once` and its wall time on `key`."""
        cfg = self.config("daemon")
        self.s3.delete_object(Bucket=self.bucket, Key=self._output_key(key))
        self.send(key)
        exe = Path(sys.executable).parent / "capillary"
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [str(exe), "--log-level", "WARNING", "consume", "--once", "--config", str(cfg)],
            env=os.environ.copy(),
        )
        # VmHWM of the daemon process itself (wait4's ru_maxrss would count pages a fork of this
        # process shares before exec).
        peak_kb = 0
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak_kb = max(peak_kb, int(line.split()[1]))
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"consume --once exited {proc.returncode}")
        return peak_kb / 1024, elapsed


def _size_figures(bench: _Bench, root: Path, size: int) -> list[Figure]:
    work = root / f"gen{size}"
    tarball, sha = _padded_tarball(work, size, f"bench{size}")
    key = bench.upload(tarball, sha)
    actual_mb = tarball.stat().st_size / MB
    shutil.rmtree(work)
    peer: list[float] = []
    consumer: list[float] = []
    engine: list[float] = []
    loads = []
    for i in range(REPEAT):
        loads.append(load()[0])
        # Alternate who goes first, so neither always meets a warm (or cold) cache.
        order = ("peer", "consumer") if i % 2 == 0 else ("consumer", "peer")
        for who in order:
            if who == "peer":
                peer.append(bench.peer(key))
            else:
                overhead, engine_s = bench.consumer(key)
                consumer.append(overhead)
                engine.append(engine_s)
    rss, wall = bench.daemon_peak_rss(key)
    bench.s3.delete_object(Bucket=bench.bucket, Key=key)
    at = f"load {min(loads):.1f}-{max(loads):.1f} (1 min) on {os.cpu_count()} cores"
    label = f"{size} MB" if size < 1024 else f"{size / 1024:g} GB"
    return [
        Figure(
            name=f"consumer_vs_stream_peer_{label.replace(' ', '').lower()}",
            value=median(consumer) / median(peer),
            unit="x same-work stream peer",
            target="<= 1.2",
            note=(
                f"{actual_mb:.0f} MB tarball: consumer {median(consumer):.2f} s (engine "
                f"{median(engine):.2f} s excluded) vs peer {median(peer):.2f} s "
                f"(GET -> sha256 -> tarfile r|gz -> 2.5 KB PUT); {at}"
            ),
            samples=REPEAT,
            extra={
                "consumer_s": consumer,
                "peer_s": peer,
                "engine_s": engine,
                "load_1min": loads,
                "consumer_s_per_gb": median(consumer) / (actual_mb / 1024),
            },
        ),
        Figure(
            name=f"daemon_peak_rss_{label.replace(' ', '').lower()}",
            value=rss,
            unit="MB",
            target="<= 100",
            note=f"capillary consume --once on the {actual_mb:.0f} MB tarball ({wall:.1f} s wall); {at}",
            extra={"tarball_mb": actual_mb, "wall_s": wall},
        ),
    ]


class _FirstReceive:
    """A TCP forwarder in front of the endpoint noting when a ReceiveMessage first passes."""

    MARKERS = (b"AmazonSQS.ReceiveMessage", b"Action=ReceiveMessage")

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.seen: float | None = None
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, watch: bool) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if watch and self.seen is None and any(m in data for m in self.MARKERS):
                    self.seen = time.time()
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.close()

    def close(self) -> None:
        self.sock.close()


def _boot_figures(bench: _Bench, endpoint: Endpoint, root: Path) -> list[Figure]:
    from capillary.local.podman import PODMAN_ENV, podman
    from tests.support.podman_targets import boot_worker, write_launch_env

    if subprocess.run(["podman", "image", "exists", IMAGE], env=PODMAN_ENV, check=False).returncode != 0:
        return [Figure("boot_to_first_receive", float("nan"), "s", note=f"skipped: {IMAGE} is not built")]
    polling: list[float] = []
    active: list[float] = []
    loads = []
    for i in range(BOOTS):
        watch = _FirstReceive(endpoint.env["AWS_ENDPOINT_URL"])
        env = {**endpoint.env, "AWS_ENDPOINT_URL_SQS": watch.url, "CAPILLARY_BUCKET": bench.bucket}
        launch = write_launch_env(root / f"boot{i}.env", bench.queue_url, env)
        name = f"capillary-bench-boot-{os.getpid()}-{i}"
        loads.append(load()[0])
        try:
            started = time.time()
            active.append(boot_worker(IMAGE, name, launch, timeout=120))
            deadline = time.monotonic() + 60
            while watch.seen is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if watch.seen is None:
                raise RuntimeError(f"{name}: no ReceiveMessage within 60 s of boot")
            polling.append(watch.seen - started)
        finally:
            podman("rm", "-f", "-t", "0", name, check=False)
            watch.close()
    at = f"load {min(loads):.1f}-{max(loads):.1f} (1 min) on {os.cpu_count()} cores"
    return [
        Figure(
            "boot_to_first_receive",
            median(polling),
            "s",
            note=(
                f"{IMAGE} booted as up_local.yml boots a worker, to its first ReceiveMessage at the "
                f"endpoint (unit active at {median(active):.2f} s); {at}"
            ),
            samples=BOOTS,
            extra={"first_receive_s": polling, "unit_active_s": active, "load_1min": loads},
        )
    ]


def run() -> list[Figure]:
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="capillary-bench-consumer-") as tmp:
        root = Path(tmp)
        with Endpoint(root) as endpoint:
            bench = _Bench(root)
            for size in _sizes():
                # The endpoint holds an object whole while it serves it; the tarball and the two
                # extractions are on disk.
                if _available_mb() < 2 * size + 1024 or shutil.disk_usage(root).free < (3 * size + 1024) * MB:
                    figures.append(
                        Figure(
                            f"consumer_vs_stream_peer_{size}mb",
                            float("nan"),
                            "x same-work stream peer",
                            note=f"skipped: {size} MB needs {2 * size + 1024} MB of free memory",
                        )
                    )
                    continue
                print(f"  consumer vs peer at {size} MB ({load()[0]} load)", flush=True)
                figures += _size_figures(bench, root, size)
            figures += _boot_figures(bench, endpoint, root)
    return figures
