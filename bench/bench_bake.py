"""Image bake: local bake wall time, and boot of the baked image to an active consumer.

    python -m bench bake

The bake is Packer's local source (podman) with the consumer and the hygiene gate (the PCGR
roles need artifact servers; their cost is theirs). Boot-to-active is measured from `podman
run` to `systemctl is-active capillary-consumer` answering `active`, against a local AWS
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
from tests.support.localaws import LocalAWS

REPO = Path(__file__).resolve().parents[1]
RELEASE = "2.3.2"
IMAGE = f"localhost/capillary-worker:{RELEASE}"
BOOTS = 5
ENV = {
    **os.environ,
    "CONTAINERS_CONF": str(REPO / "tests/containers/containers.conf"),
    "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
    "PATH": f"{REPO / 'packer/bin'}:{REPO / '.venv/bin'}:{os.environ.get('PATH', '')}",
    "PACKER_NO_COLOR": "1",
}


def _podman(*args: str, check: bool = True) -> str:
    return subprocess.run(
        ["podman", *args], env=ENV, capture_output=True, text=True, check=check, timeout=300
    ).stdout


def _bake(out: Path) -> float:
    extra = {
        "output_dir": str(out),
        "ansible_playbook": str(REPO / ".venv/bin/ansible-playbook"),
        "provision_extra_vars": json.dumps({"capillary_provision_roles": ["pcgr_consumer"]}),
    }
    var_file = out / "bench.pkrvars.json"
    var_file.write_text(json.dumps(extra))
    t0 = time.perf_counter()
    subprocess.run(
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
        check=True,
        capture_output=True,
        timeout=3600,
    )
    elapsed = time.perf_counter() - t0
    manifest = json.loads((out / "manifest.json").read_text())
    _podman("tag", manifest["builds"][-1]["artifact_id"], IMAGE)
    return elapsed


def _boot_once(env_file: Path, name: str) -> float:
    _podman("rm", "-f", "--ignore", name)
    t0 = time.perf_counter()
    _podman(
        "run",
        "-d",
        "--name",
        name,
        "--network=host",
        "--systemd=always",
        "--tmpfs=/tmp",
        f"--volume={env_file}:/etc/capillary/launch.env:ro",
        IMAGE,
    )
    try:
        while time.perf_counter() - t0 < 120:
            state = _podman("exec", name, "systemctl", "is-active", "capillary-consumer", check=False).strip()
            if state == "active":
                return time.perf_counter() - t0
            time.sleep(0.05)
        raise TimeoutError(f"{name}: consumer not active after 120 s")
    finally:
        _podman("rm", "-f", "-t", "2", "--ignore", name, check=False)


def run() -> list[Figure]:
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench-bake-") as tmp:
        out = Path(tmp)
        if os.environ.get("CAPILLARY_BENCH_BAKE", "1") != "0":
            bake_s = _bake(out)
            figures.append(
                Figure(
                    "local bake wall time (consumer + hygiene)",
                    bake_s,
                    "s",
                    note=f"packer docker source under podman, PCGR {RELEASE}",
                )
            )
        aws = LocalAWS().start()
        try:
            queue = aws.client("sqs").create_queue(QueueName="capillary-bench7-work")["QueueUrl"]
            env_file = out / "launch.env"
            lines = [f"CAPILLARY_QUEUE_URL={queue}", "CAPILLARY_IMDS_ENABLED=false"]
            env_file.write_text("\n".join(lines + [f"{k}={v}" for k, v in aws.env.items()]) + "\n")
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
