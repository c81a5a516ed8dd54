"""One sample's pipeline, from the message to the uploaded output: fetch (`fetch`: download,
verify and safe extraction in one pass), the engine for the sample's kind (`config.engine_for`:
CPSR for a normal sample where the deployment says so) as a subprocess in its own process group, an
output tarball holding only this run's output directory and `run.json` (the provenance and cost
record, `provenance`, uploaded again beside the output as `outputs/…-run.json`), and the upload
(`outputs`, which retries it while the engine's output waits). A drain is checked between the
steps; once the engine has finished, its output is uploaded even during a drain (one try).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import signal
import tarfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from capillary import __version__
from capillary.contract.cost import sample_cost
from capillary.contract.tarball import ExtractedSample
from capillary.worker.config import ConsumerConfig, engine_for
from capillary.worker.engines import Engine, EngineInputError, EngineSetupError, ProcessOutcome, run_process
from capillary.worker.fetch import CHUNK, Fetched, InputFetcher
from capillary.worker.item import (
    ENGINE_LOG,
    HandBackError,
    SampleFailedError,
    Settled,
    WorkItem,
    check_drain,
    now_iso,
)
from capillary.worker.outputs import Outputs
from capillary.worker.provenance import Provenance, entity, image_facts
from capillary.worker.visibility import Heartbeat

# The daemon's logger: every line the worker logs carries the same `logger` name.
log = logging.getLogger("capillary.worker.daemon")

# An engine that ends on a signal or an error while the daemon is being stopped was most likely
# stopped with it (KillMode=control-group, or a shell passing the signal on): give the daemon's
# own signal this long to land before the run is judged a failure.
DRAIN_SIGNAL_GRACE_S = 1.0


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _regular_files_only(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Only directories and regular files go into an output: no links out of the workspace."""
    if not (info.isfile() or info.isdir()):
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class SamplePipeline:
    """Runs one work item through fetch, extract, engine, package and upload."""

    def __init__(
        self,
        cfg: ConsumerConfig,
        s3: Any,
        engines: Mapping[str, Engine],
        outputs: Outputs,
        stop: threading.Event,
        identity: Callable[[], dict[str, str]],
        on_phase: Callable[[WorkItem, str], None],
        provenance: Provenance,
    ) -> None:
        self.cfg = cfg
        # Every engine the configuration gives some kind of sample, by name.
        self.engines = engines
        self.outputs = outputs
        self.fetcher = InputFetcher(cfg, s3, outputs, stop, on_phase)
        self.stop = stop
        self.identity = identity
        self.on_phase = on_phase
        self.provenance = provenance
        self._versions: dict[str, dict[str, str]] = {}

    def engine_for(self, item: WorkItem) -> Engine:
        """The engine for this sample's kind, as the configuration names it."""
        return self.engines[engine_for(self.cfg, item.sample.kind)]

    def versions(self, engine: Engine) -> dict[str, str]:
        """An engine's versions (run.json), asked once: the image does not change under a daemon."""
        if engine.name not in self._versions:
            self._versions[engine.name] = engine.versions()
        return self._versions[engine.name]

    def run(self, item: WorkItem, ws: Path, heartbeat: Heartbeat) -> Settled:
        """Everything for one message in workspace `ws`, up to and including the upload."""
        fetched = self.fetcher.fetch(item, ws)
        if fetched is None:
            return "skipped"
        check_drain(self.stop)
        outdir = self.run_engine(item, fetched.sample, ws, heartbeat)
        # One output per sample, even with two workers racing; then the message is deleted.
        self.on_phase(item, "upload")
        package = self.package(item, fetched, fetched.sample.sha256, outdir, ws / "output.tar.gz")
        record = (outdir / "run.json").read_bytes()
        return self.outputs.upload(item, package, sha256_file(package), fetched.etag, fetched.sha256, record)

    # -- engine, package -------------------------------------------------------------------------

    def run_engine(self, item: WorkItem, sample: ExtractedSample, ws: Path, heartbeat: Heartbeat) -> Path:
        """The engine, in its own process group; returns its output directory."""
        ctx = item.ctx
        outdir = ws / "out" / item.sample.name
        outdir.mkdir(parents=True)
        engine = self.engine_for(item)
        try:
            cmd = engine.command(sample, item.sample.name, outdir)
        except EngineInputError as exc:
            raise SampleFailedError("options", f"the sample cannot be run: {exc}", retryable=False) from exc
        except EngineSetupError as exc:
            raise SampleFailedError("engine-setup", str(exc)) from exc
        item.command = [str(a) for a in cmd.argv]
        log.info("engine %s starting", engine.name, extra={**ctx, "phase": "engine", "engine": engine.name})
        self.on_phase(item, "engine")
        outcome = run_process(
            cmd, ws / ENGINE_LOG, self.cfg.engine_timeout_s, (self.stop, heartbeat.exhausted)
        )
        item.timings["engine_s"] = outcome.duration_s
        self._engine_outcome(outcome)
        log.info(
            "engine finished in %.1f s",
            outcome.duration_s,
            extra={**ctx, "phase": "engine", "duration_s": round(outcome.duration_s, 2)},
        )
        return outdir

    def _engine_outcome(self, outcome: ProcessOutcome) -> None:
        if outcome.stopped and self.stop.is_set():
            raise HandBackError()
        ended_badly = outcome.returncode != 0 and not (outcome.stopped or outcome.timed_out)
        if ended_badly and self.stop.wait(DRAIN_SIGNAL_GRACE_S):
            # Killed by the stop signal meant for the daemon, before the daemon saw it: a drain,
            # not the sample's failure.
            raise HandBackError()
        if outcome.stopped:
            raise SampleFailedError(
                "engine",
                "the run reached SQS's 12-hour visibility limit; "
                "stopped so the message returns with this report",
            )
        if outcome.timed_out:
            raise SampleFailedError(
                "engine", f"the engine ran longer than engine_timeout_s ({self.cfg.engine_timeout_s} s)"
            )
        if outcome.returncode is not None and outcome.returncode < 0:
            raise SampleFailedError("engine", f"the engine was killed by {_signal_name(-outcome.returncode)}")
        if outcome.returncode != 0:
            raise SampleFailedError("engine", f"the engine exited with status {outcome.returncode}")

    def package(
        self, item: WorkItem, fetched: Fetched, members: dict[str, str], outdir: Path, dest: Path
    ) -> Path:
        """The output tarball: this run's output directory and run.json, nothing else."""
        t0 = time.monotonic()
        run_info = self.run_json(item, fetched, members, outdir)
        (outdir / "run.json").write_text(json.dumps(run_info, indent=2, sort_keys=True) + "\n")
        with tarfile.open(dest, "w:gz", compresslevel=6) as tar:
            tar.add(outdir, arcname=item.sample.name, filter=_regular_files_only)
        item.timings["package_s"] = time.monotonic() - t0
        return dest

    def run_json(
        self, item: WorkItem, fetched: Fetched, members: dict[str, str], outdir: Path
    ) -> dict[str, Any]:
        """The run record: what ran on what, from which input to which files, when, and its cost."""
        files = [p for p in sorted(outdir.rglob("*")) if p.is_file() and not p.is_symlink()]
        outputs = {p.relative_to(outdir).as_posix(): sha256_file(p) for p in files}
        engine = self.engine_for(item)
        identity = self.identity()
        release, release_reason = self.provenance.release(engine.name)
        price, price_reason = self.provenance.price()
        finished = now_iso()
        wall_s = time.monotonic() - item.received_at
        started = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=wall_s)).strftime("%Y-%m-%dT%H:%M:%SZ")
        input_iri = f"s3://{item.bucket}/{item.key}"
        output_iri = f"s3://{item.bucket}/{item.sample.output_key}"
        return {
            "capillary": __version__,
            "versions": self.versions(engine),
            "worker": identity,
            "message_id": item.message_id,
            "attempt": item.attempt,
            "history": [a.as_dict() for a in item.message.history],
            "sample": item.sample.name,
            "input": {
                "bucket": item.bucket,
                "key": item.key,
                "etag": fetched.etag,
                "size": fetched.size,
                "sha256": fetched.sha256,
                "verified": fetched.verified,
            },
            "input_members_sha256": members,
            "outputs_sha256": outputs,
            "output": {
                "bucket": item.bucket,
                "key": item.sample.output_key,
                "record_key": item.sample.run_key,
            },
            "command": item.command,
            "image": image_facts(self.cfg, engine.name, identity, release),
            "release": release,
            "release_reason": release_reason,
            "price": price,
            "price_reason": price_reason,
            "cost": sample_cost(
                None if price is None else float(price["usd_per_hour"]),
                wall_s,
                fetched.size,
                sum(p.stat().st_size for p in files),
            ),
            "timings_s": {k: round(v, 3) for k, v in item.timings.items()},
            # the daemon's records about this sample (capillary.worker.samplelog: never a VCF line)
            "log": item.log_lines(),
            "started": started,
            "finished": finished,
            "provenance": self.provenance.prov(
                run_id=f"urn:capillary:run:{item.message_id}:{item.attempt}",
                started=started,
                ended=finished,
                used=[entity(input_iri, fetched.sha256, "the sample tarball")]
                + [entity(f"{input_iri}#{name}", sha, name) for name, sha in sorted(members.items())],
                generated=[entity(output_iri, label="the output tarball (run.json inside it)")]
                + [
                    entity(f"{output_iri}#{item.sample.name}/{name}", sha, name)
                    for name, sha in outputs.items()
                ],
                engine=engine.name,
                release=release,
            ),
        }
