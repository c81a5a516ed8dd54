"""Image bake: local bake wall time, and boot of the baked image to an active consumer.

    python -m bench bake

The bake is Packer's local source (podman) with the roles the test bake provisions
(tests/support/bake.py: data_volume directory-only, pcgr_refdata from a local artifact server
with small artifacts, pcgr_consumer) and the hygiene gate. Boot-to-active is measured from
`podman run` to `systemctl is-active capillary-consumer` answering `active`, against a local AWS
endpoint on the host network; target <= 5 s, the physical floor a few hundred ms.
Set CAPILLARY_BENCH_BAKE=0 to time only the boots of an existing image.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import Figure, median, percentile
from capillary.local.bake import BAKE_ROLES, local_bake
from capillary.local.endpoint import LocalAWS
from tests.support.podman_targets import PODMAN_ENV, boot_worker, podman, write_launch_env

REPO = Path(__file__).resolve().parents[1]
RELEASE = "2.3.2"
IMAGE = f"localhost/capillary-worker:{RELEASE}"
BOOTS = 5
ENV = {
    **PODMAN_ENV,
    "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
    "PATH": f"{REPO / 'packer/bin'}:{REPO / '.venv/bin'}:{os.environ.get('PATH', '')}",
    "PACKER_NO_COLOR": "1",
}


def _bake(out: Path) -> float:
    with local_bake(out / "inputs", RELEASE) as inputs:
        var_file = inputs.packer_var_file(
            out / "bench.pkrvars.json",
            output_dir=str(out),
            ansible_playbook=str(REPO / ".venv/bin/ansible-playbook"),
        )
        t0 = time.perf_counter()
        proc = subprocess.run(
            [
                "packer",
                "build",
                "-only=worker.docker.local",
                f"-var-file={REPO / 'packer/releases' / f'{RELEASE}.pkrvars.hcl'}",
                f"-var-file={var_file}",
                str(REPO / "packer/worker.pkr.hcl"),
            ],
            cwd=REPO,
            env=ENV,
            check=False,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"packer build failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-6000:]}")
    manifest = json.loads((out / "manifest.json").read_text())
    podman("tag", manifest["builds"][-1]["artifact_id"], IMAGE)
    return elapsed


def _boot_once(env_file: Path, name: str) -> float:
    try:
        return boot_worker(IMAGE, name, env_file, timeout=120)
    finally:
        podman("rm", "-f", "-t", "2", "--ignore", name, check=False)


def run() -> list[Figure]:
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench-bake-") as tmp:
        out = Path(tmp)
        if os.environ.get("CAPILLARY_BENCH_BAKE", "1") != "0":
            bake_s = _bake(out)
            figures.append(
                Figure(
                    "local bake wall time (" + ", ".join(BAKE_ROLES) + ", hygiene)",
                    bake_s,
                    "s",
                    note=f"packer docker source under podman, PCGR {RELEASE}, small reference artifacts",
                )
            )
        aws = LocalAWS().start()
        try:
            queue = aws.client("sqs").create_queue(QueueName="capillary-bench7-work")["QueueUrl"]
            env_file = write_launch_env(out / "launch.env", queue, aws.env)
            boots = [_boot_once(env_file, "img7-bench-boot") for _ in range(BOOTS)]
        finally:
            aws.stop()
    figures.append(
        Figure(
            "boot to consumer active (median)",
            median(boots),
            "s",
            target="<= 5 s",
            samples=len(boots),
            extra={"runs": boots, "p90": percentile(boots, 90)},
        )
    )
    figures.append(Figure("boot to consumer active (max)", max(boots), "s", samples=len(boots)))
    return figures
