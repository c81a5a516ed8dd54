"""pcgr_refdata: a re-run with a 2 GB bundle in place, and download+unpack throughput vs `curl | tar`.

1. The role runs against this host (connection local, everything under a temporary root) with a
   bundle that unpacks to 2 GB; then it re-runs. The re-run must cost the stamp check, not a
   re-hash: the figure is the time of the role's tasks (profile_tasks) and, for contrast, what
   hashing the 2 GB once costs.
2. The fetch tool (download + sha256 + unpack in one pass, no copy on disk) against its peers on
   the same incompressible bundle from the same local HTTP server, interleaved in one run:
   `curl | tar -I pigz` (the same decompressor, no hash: the target is <= 1.2x), the equal-work
   shell pipeline `curl | tee >(sha256sum) | tar -I pigz` (and with `openssl dgst -sha256`), and
   gzip's `curl | tar -xzf`. Wall
   medians and their ratios, the CPU each used, and the load average around the runs.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from bench.common import Figure, median
from capillary.local.artifacts import ArtifactServer, make_test_catalogue, write_vep
from capillary.local.playbook import run_playbook
from capillary.release.catalogue import load_catalogue
from capillary.release.refdata import artifacts_for

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "roles" / "pcgr_refdata" / "files" / "capillary-refdata"
PLAYBOOK = "tests/integration/playbooks/refdata.yml"
TWO_GB = 2 * 1024**3
_TASK_TIME = re.compile(r"^pcgr_refdata : .*?-+ (\d+\.\d+)s$", re.M)


def _zero_bundle(path: Path, bundle: str, assembly: str, size: int) -> None:
    """A bundle whose data file unpacks to `size` bytes of zeros (the .tgz stays a few MB)."""

    class Zeros:
        def __init__(self, n: int) -> None:
            self.left = n

        def read(self, k: int = -1) -> bytes:
            k = self.left if k < 0 else min(k, self.left)
            self.left -= k
            return bytes(k)

    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo(f"data/{assembly}/.PCGR_BUNDLE_VERSION")
        data = f"{bundle}\n".encode()
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo(f"data/{assembly}/big.bin")
        info.size = size
        tar.addfile(info, Zeros(size))  # type: ignore[arg-type]


def _role_seconds(stdout: str) -> float:
    return sum(float(x) for x in _TASK_TIME.findall(stdout))


def rerun_figures(work: Path) -> list[Figure]:
    release = load_catalogue().current
    artifacts = work / "artifacts"
    artifacts.mkdir()
    bundle = release.bundle.assemblies["grch38"].filename
    _zero_bundle(artifacts / bundle, release.bundle.version, "grch38", TWO_GB)
    write_vep(artifacts / release.vep.assemblies["grch38"].filename, release.vep.version, "grch38")
    (work / "bin").mkdir()
    inventory = work / "inventory.json"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "hosts": {
                        "localhost": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": sys.executable,
                        }
                    }
                }
            }
        )
    )
    with ArtifactServer(artifacts) as server:
        catalogue = make_test_catalogue(
            work / "catalogue.yml",
            server.base_url,
            artifacts,
            versions=(release.version,),
            current=release.version,
        )
        extra = {
            "pcgr_test_hosts": "localhost",
            "pcgr_refdata_catalogue": str(catalogue),
            "pcgr_refdata_root": str(work / "srv"),
            "pcgr_refdata_manage_volume": False,
            "_pcgr_refdata_tool": str(work / "bin" / "capillary-refdata"),
            "_pcgr_refdata_fact_dir": str(work / "facts.d"),
            "pcgr_refdata_space_factor": 1.0,
        }
        t0 = time.perf_counter()
        first = run_playbook(PLAYBOOK, inventory=inventory, extra_vars=extra)
        install_s = time.perf_counter() - t0
        first.assert_ok()
        walls, roles = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            again = run_playbook(PLAYBOOK, inventory=inventory, extra_vars=extra)
            walls.append(time.perf_counter() - t0)
            again.assert_idempotent()
            roles.append(_role_seconds(again.stdout))
        served = sum(server.bytes_served.values())
        spec = {
            "root": str(work / "srv"),
            "factor": 1.0,
            "fact": str(work / "facts.d" / "pcgr_refdata.fact"),
            "artifacts": artifacts_for(release, root=str(work / "srv"), base_url=server.base_url),
        }
        checks = []
        for _ in range(5):
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, str(TOOL), "plan", "--spec", json.dumps(spec)],
                check=True,
                capture_output=True,
            )
            checks.append(time.perf_counter() - t0)
    load = os.getloadavg()[0]
    unpacked = work / "srv" / "refdata" / release.bundle.version / "grch38" / "data" / "grch38" / "big.bin"
    t0 = time.perf_counter()
    digest = hashlib.sha256()
    with open(unpacked, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    rehash_s = time.perf_counter() - t0
    return [
        Figure(
            "rerun_stamp_check_2gb_bundle",
            median(checks),
            "s",
            "",
            "the re-run's decision: `capillary-refdata plan` reading the stamps, no hashing",
            samples=5,
        ),
        Figure(
            "rerun_role_tasks_2gb_bundle",
            median(roles),
            "s",
            "< 2 s",
            f"sum of pcgr_refdata task times on a re-run (profile_tasks), connection local; "
            f"load average {load:.1f} on {os.cpu_count()} CPUs",
            samples=3,
            extra={"runs": roles, "loadavg": load},
        ),
        Figure(
            "rerun_playbook_wall_2gb_bundle",
            median(walls),
            "s",
            "",
            "whole ansible-playbook incl. startup and fact gathering",
            samples=3,
            extra={"runs": walls},
        ),
        Figure("rehash_2gb_for_contrast", rehash_s, "s", "", "what one sha256 pass over the 2 GB costs"),
        Figure("first_install_2gb_bundle", install_s, "s", "", f"{served} bytes served (compressed)"),
    ]


# The same-work peers of the fetch tool, run in one session, interleaved, on the same file from the
# same server: `{url}` and `{out}` are filled in. The hashing peers are `curl | tee >(sha256sum) |
# tar` with the hash in a background job on a FIFO instead of a process substitution, so that the
# run ends when the hash does (bash does not wait for a process substitution in a pipeline).
_TEE_HASH = (
    "mkfifo {out}.fifo; {hash} < {out}.fifo > {out}.sha256 & "
    "curl -fsS {url} | tee {out}.fifo | tar -I pigz -xf - -C {out}; wait; rm {out}.fifo"
)
PEERS = {
    # what the issue holds the tool to: the same decompressor, nothing else
    "curl_tar_pigz": "curl -fsS {url} | tar -I pigz -xf - -C {out}",
    # the same work as the tool (download, sha256 of the compressed bytes, pigz unpack) in shell
    "equal_work_pipeline": _TEE_HASH.replace("{hash}", "sha256sum"),
    # the same, hashing with OpenSSL (SHA extensions where the CPU has them) instead of coreutils
    "equal_work_pipeline_openssl": _TEE_HASH.replace("{hash}", "openssl dgst -sha256 -r"),
    # the bench's former baseline: gzip's single-threaded inflate
    "curl_tar_gzip": "curl -fsS {url} | tar -xzf - -C {out}",
}
TOOL_PEER = "capillary_refdata_fetch"
ROUNDS = int(os.environ.get("BENCH_REFDATA_ROUNDS", "5"))
SIZE_MB = int(os.environ.get("BENCH_REFDATA_MB", "512"))


def _timed_run(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system, children) seconds of one command run to completion."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _incompressible_bundle(path: Path, bundle_version: str, size_mb: int) -> None:
    """A bundle of `size_mb` MiB of random bytes: the real bundle and VEP cache are mostly files
    that are already gzipped (VCFs, tabix-indexed TSVs, VEP's .gz cache files), which the outer
    gzip cannot shrink; so the archive is about as large as what it unpacks to."""
    payload = path.with_name("payload.bin")
    with open(payload, "wb") as fh:
        for _ in range(size_mb):
            fh.write(os.urandom(1 << 20))
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo("data/grch38/.PCGR_BUNDLE_VERSION")
        data = f"{bundle_version}\n".encode()
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        tar.add(payload, arcname="data/grch38/payload.bin")
    payload.unlink()


def throughput_figures(work: Path, size_mb: int = SIZE_MB, rounds: int = ROUNDS) -> list[Figure]:
    """The tool against its same-work peers: each round runs every peer once, in a rotated order,
    with the page cache's dirty pages written back between runs (so no run pays for the last
    one's unpacked tree); medians over the rounds, ratios of the medians, and the CPU each used."""
    release = load_catalogue().current
    artifacts = work / "tp"
    artifacts.mkdir()
    name = release.bundle.assemblies["grch38"].filename
    _incompressible_bundle(artifacts / name, release.bundle.version, size_mb)
    size = (artifacts / name).stat().st_size
    want = hashlib.sha256((artifacts / name).read_bytes()).hexdigest()
    names = [TOOL_PEER, *PEERS]
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    load_before = os.getloadavg()
    with ArtifactServer(artifacts) as server:
        url = f"{server.base_url}/{name}"
        for i in range(rounds):
            for peer in names[i % len(names) :] + names[: i % len(names)]:
                out = work / f"run-{i}"
                if peer == TOOL_PEER:
                    spec = artifacts_for(release, root=str(out), base_url=server.base_url)[0]
                    argv = [str(TOOL), "fetch", "--spec", json.dumps({**spec, "sha256": want})]
                else:
                    out.mkdir()
                    argv = ["bash", "-c", "set -o pipefail; " + PEERS[peer].format(url=url, out=out)]
                seconds, used = _timed_run(argv)
                if peer.startswith("equal_work_pipeline"):  # it did hash every byte
                    assert Path(f"{out}.sha256").read_text().split()[0] == want, peer
                    Path(f"{out}.sha256").unlink()
                wall[peer].append(seconds)
                cpu[peer].append(used)
                shutil.rmtree(out)
                os.sync()
    load_after = os.getloadavg()
    load = f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after, on {os.cpu_count()} CPUs"
    mb = size / 1e6
    ours = median(wall[TOOL_PEER])
    figures = []
    for peer in PEERS:
        paired = [a / b for a, b in zip(wall[TOOL_PEER], wall[peer], strict=True)]
        figures.append(
            Figure(
                f"fetch_unpack_ratio_vs_{peer}",
                ours / median(wall[peer]),
                "x",
                "<= 1.2" if peer == "curl_tar_pigz" else "",
                f"wall, median of {rounds} interleaved rounds, {mb:.0f} MB incompressible .tgz from the "
                f"same local server (sendfile); peer `{PEERS[peer].format(url='URL', out='DIR')}`; {load}",
                samples=rounds,
                extra={
                    "ours_s": wall[TOOL_PEER],
                    "peer_s": wall[peer],
                    "paired_ratio_median": median(paired),
                    "cpu_ratio": median(cpu[TOOL_PEER]) / median(cpu[peer]),
                    "loadavg": [load_before[0], load_after[0]],
                },
            )
        )
    for peer in names:
        figures.append(
            Figure(
                f"throughput_{peer}",
                mb / median(wall[peer]),
                "MB/s",
                "",
                f"median of {rounds}; CPU (user+system) {median(cpu[peer]):.2f} s per run; {load}",
                samples=rounds,
                extra={"wall_s": wall[peer], "cpu_s": cpu[peer]},
            )
        )
    return figures


def run() -> list[Figure]:
    work = Path(
        tempfile.mkdtemp(prefix="capillary-bench-refdata-", dir=os.environ.get("BENCH_TMPDIR", "/var/tmp"))
    )
    try:
        return rerun_figures(work) + throughput_figures(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
