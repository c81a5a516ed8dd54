"""pcgr_refdata: a re-run with a 2 GB bundle in place, and download+unpack throughput vs `curl | tar`.

1. The role runs against this host (connection local, everything under a temporary root) with a
   bundle that unpacks to 2 GB; then it re-runs. The re-run must cost the stamp check, not a
   re-hash: the figure is the time of the role's tasks (profile_tasks) and, for contrast, what
   hashing the 2 GB once costs.
2. The fetch tool (download + sha256 + unpack in one pass) against `curl -s URL | tar -xzf -` of
   the same incompressible bundle from the same local HTTP server; median of 3, as a ratio.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
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
        tar.addfile(info, __import__("io").BytesIO(data))
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


def _curl_tar(url: str, tar_args: str, out: Path) -> float:
    """Seconds for `curl URL | tar <tar_args> - -C out`, the baseline the fetch tool is held to."""
    out.mkdir()
    t0 = time.perf_counter()
    subprocess.run(["sh", "-c", f"curl -fsS {url} | tar {tar_args} - -C {out}"], check=True)
    seconds = time.perf_counter() - t0
    shutil.rmtree(out)
    return seconds


def throughput_figures(work: Path, size_mb: int = 256) -> list[Figure]:
    release = load_catalogue().current
    artifacts = work / "tp"
    artifacts.mkdir()
    name = release.bundle.assemblies["grch38"].filename
    payload = artifacts / "payload.bin"
    with open(payload, "wb") as fh:
        for _ in range(size_mb):
            fh.write(os.urandom(1 << 20))
    with tarfile.open(artifacts / name, "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo("data/grch38/.PCGR_BUNDLE_VERSION")
        data = f"{release.bundle.version}\n".encode()
        info.size = len(data)
        tar.addfile(info, __import__("io").BytesIO(data))
        tar.add(payload, arcname="data/grch38/payload.bin")
    payload.unlink()
    size = (artifacts / name).stat().st_size
    ours, curl, curl_pigz = [], [], []
    with ArtifactServer(artifacts) as server:
        for i in range(3):
            dest = work / f"run{i}"
            spec = artifacts_for(release, root=str(dest), base_url=server.base_url)[0]
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, str(TOOL), "fetch", "--spec", json.dumps(spec)],
                check=True,
                capture_output=True,
            )
            ours.append(time.perf_counter() - t0)
            shutil.rmtree(dest)
            url = f"{server.base_url}/{name}"
            curl.append(_curl_tar(url, "-xzf", work / f"curl{i}"))
            if shutil.which("pigz"):  # the same decompressor the tool picks, for a like-for-like figure
                curl_pigz.append(_curl_tar(url, "-I pigz -xf", work / f"curl{i}"))
    ratio = median(ours) / median(curl)
    mb = size / 1e6
    figures = [
        Figure(
            "fetch_unpack_ratio_vs_curl_tar",
            ratio,
            "x",
            "<= 1.2",
            f"{mb:.0f} MB incompressible .tgz from the same local server (sendfile); ours also hashes "
            f"and keeps a resumable part file, and unpacks with {'pigz' if curl_pigz else 'gzip'}",
            samples=3,
            extra={"ours_s": ours, "curl_tar_s": curl, "loadavg": os.getloadavg()[0]},
        ),
        Figure(
            "fetch_unpack_throughput", mb / median(ours), "MB/s", "", "download + sha256 + unpack", samples=3
        ),
        Figure("curl_tar_throughput", mb / median(curl), "MB/s", "", "curl -s | tar -xzf -", samples=3),
    ]
    if curl_pigz:
        figures.append(
            Figure(
                "fetch_unpack_ratio_vs_curl_tar_pigz",
                median(ours) / median(curl_pigz),
                "x",
                "",
                "like for like: the same pipeline with tar -I pigz; what hashing and the part file cost",
                samples=3,
                extra={"curl_tar_pigz_s": curl_pigz},
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
