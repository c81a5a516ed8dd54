"""The image gate on the baked worker image: wall time, and how it scales with the files scanned.

1. A container of `localhost/capillary-worker:<release>` (not booted), its reference trees with
   their manifests; the gate runs with the command line the image_hygiene role renders
   (tests/integration/playbooks/gate_argv.yml, trusting the demo bake's catalogue): median of 3,
   target <= 30 s for the demo image. Beside it, the controller's detect-secrets pass over the
   same filesystem (`capillary image scan`, one `podman export` stream), once.
2. Scaling: the same image with 2,000, 8,000 and 20,000 extra small files (text, gzip text,
   one in ten a tarball of three members) under /srv/bench; the gate's seconds against the files
   it scanned, and the slope in ms per 1,000 files.
3. The reference trees hashed in full (`--reference-hash all`) against the default (genomic
   files only): what hashing every file of the demo's refdata costs.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import Figure, median
from capillary.local.artifacts import build_artifacts, make_test_catalogue
from capillary.local.playbook import run_playbook
from capillary.local.podman import PODMAN_ENV, podman
from capillary.release.catalogue import load_catalogue
from capillary.release.refdata import artifacts_for

REPO = Path(__file__).resolve().parents[1]
RELEASE = "2.3.2"
IMAGE = f"localhost/capillary-worker:{RELEASE}"
GATE = REPO / "roles/image_hygiene/files/hygiene_gate.py"
TOOL = REPO / "roles/pcgr_refdata/files/capillary-refdata"
CONNECTION = "ansible_connection=containers.podman.podman ansible_python_interpreter=/usr/bin/python3"
# Extra files, written inside the container by its own python3 (no copy of thousands of files).
_FILL = """
import gzip, io, os, sys, tarfile
n = int(sys.argv[1]); root = "/srv/bench"
for i in range(n):
    d = os.path.join(root, "d%03d" % (i // 500)); os.makedirs(d, exist_ok=True)
    body = ("line %d of an ordinary file\\n" % i * 40).encode()
    if i % 10 == 9:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            for j in range(3):
                info = tarfile.TarInfo("m%d.txt" % j); info.size = len(body)
                tf.addfile(info, io.BytesIO(body))
        open(os.path.join(d, "f%06d.tar.gz" % i), "wb").write(buf.getvalue())
    elif i % 3 == 0:
        open(os.path.join(d, "f%06d.txt.gz" % i), "wb").write(gzip.compress(body))
    else:
        open(os.path.join(d, "f%06d.txt" % i), "wb").write(body)
"""


def _without(argv: list[str], flag: str) -> list[str]:
    """`argv` without `flag` and its value (given as `--flag value` or `--flag=value`)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        elif not arg.startswith(f"{flag}="):
            out.append(arg)
    return out


def _gate(container: str, argv: list[str]) -> dict[str, object]:
    t0 = time.perf_counter()
    report: dict[str, object] = json.loads(
        podman("exec", "-i", container, *argv, input=GATE.read_text(), timeout=600)
    )
    report["wall"] = time.perf_counter() - t0
    return report


def run() -> list[Figure]:
    image_id = podman("image", "inspect", "--format", "{{.Id}}", IMAGE).strip()
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        work = Path(tmp)
        build_artifacts(work / "artifacts", load_catalogue().release(RELEASE), ("grch38",))
        catalogue = make_test_catalogue(
            work / "catalogue.yml",
            "http://127.0.0.1:9",
            work / "artifacts",
            versions=(RELEASE,),
            current=RELEASE,
        )
        name = f"bench-gate-{uuid.uuid4().hex[:8]}"
        podman("run", "-d", "--name", name, image_id, "sleep", "infinity")
        try:
            spec = {
                "links": False,
                "artifacts": artifacts_for(
                    load_catalogue(catalogue).release(RELEASE), root="/srv/capillary", assemblies=("grch38",)
                ),
            }
            podman(
                "exec",
                "-i",
                name,
                "python3",
                "-",
                "finalize",
                "--spec",
                json.dumps(spec),
                input=TOOL.read_text(),
            )
            (work / "inventory.ini").write_text(f"{name} {CONNECTION}\n")
            run_playbook(
                "tests/integration/playbooks/gate_argv.yml",
                inventory=work / "inventory.ini",
                extra_vars={
                    "gate_argv_out": str(work / "argv.json"),
                    "image_hygiene_gate_reference_catalogue": str(catalogue),
                },
                env=PODMAN_ENV,
            ).assert_ok()
            argv: list[str] = json.loads((work / "argv.json").read_text())

            runs = [_gate(name, argv) for _ in range(3)]
            assert all(r["clean"] for r in runs), runs[0]
            base = runs[0]
            t0 = time.perf_counter()
            scan = json.loads(
                subprocess.run(
                    [str(REPO / ".venv/bin/python"), "-m", "capillary", "image", "scan", "--container", name],
                    capture_output=True,
                    text=True,
                    check=True,
                    env=PODMAN_ENV,
                ).stdout
            )
            secrets_wall = time.perf_counter() - t0
            full = _gate(name, [*_without(argv, "--reference-hash"), "--reference-hash", "all"])

            points: list[tuple[int, float]] = [(int(str(base["scanned_files"])), float(str(base["seconds"])))]
            added = 0
            for total in (2000, 8000, 20000):
                podman("exec", name, "python3", "-c", _FILL, str(total - added), timeout=600)
                added = total
                r = _gate(name, argv)
                points.append((int(str(r["scanned_files"])), float(str(r["seconds"]))))
        finally:
            podman("rm", "-f", "-t", "0", name, check=False)

    (n0, s0), (n1, s1) = points[0], points[-1]
    slope_ms = (s1 - s0) / max(1, n1 - n0) * 1000 * 1000
    seconds = median([float(str(r["seconds"])) for r in runs])
    wall = median([float(str(r["wall"])) for r in runs])
    return [
        Figure(
            "gate_seconds_baked_image",
            seconds,
            "s",
            target="<= 30",
            note=f"{base['scanned_files']} files, {base['archives']} archives opened, "
            f"{base['sniffed_bytes']} bytes sniffed; wall incl. podman exec {wall:.2f} s",
            samples=len(runs),
            extra={"scanned_files": base["scanned_files"], "archives": base["archives"]},
        ),
        Figure(
            "detect_secrets_seconds_baked_image",
            secrets_wall,
            "s",
            note=f"controller, podman export stream: {scan['files']} files, {scan['text_files']} text files, "
            f"{len(scan['allowed'])} allowed matches",
        ),
        Figure(
            "gate_seconds_reference_hash_all",
            float(str(full["seconds"])),
            "s",
            note=f"every reference file hashed ({full['hashed_bytes']} bytes) "
            f"vs genomic only ({base['hashed_bytes']} bytes)",
        ),
        Figure(
            "gate_ms_per_1000_files",
            slope_ms,
            "ms",
            note="scaling: " + ", ".join(f"{n} files {s:.2f} s" for n, s in points),
            extra={"points": points},
        ),
    ]
