"""`capillary image`: an image's own proof, on the controller.

    capillary image scan --container NAME [--allow GLOB] [--sbom-out F] [--image REF]
        detect-secrets over the container's filesystem (one `podman export` stream), and its SBOM;
        the image_hygiene gate runs this for podman targets and merges the findings.
    capillary image record IMAGE --release R [--catalogue C] --out DIR
        a container from IMAGE (never booted), the audit playbook's gate on it (with the scan and
        the SBOM), then DIR/record.json: the gate's report, the secrets scan, the SBOM's digest,
        the catalogue artifacts' checksums against the installed stamps and manifests.
    capillary image verify IMAGE --record FILE|s3://BUCKET/KEY [--catalogue C]
        the same on IMAGE now, compared with what was recorded at bake time: exit 0 when the gate
        is clean and nothing differs, 1 otherwise (each difference printed).

Local images only (podman). An AMI is audited from an instance launched from it, with
playbooks/audit_image.yml and the aws inventory; its record is read the same way.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

ALLOW = ("*/site-packages/botocore/data/*/examples-1.json", "*/site-packages/boto3/examples/*")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("image", help="scan, record and verify a worker image")
    sub = parser.add_subparsers(dest="image_command", metavar="ACTION", required=True)

    scan = sub.add_parser("scan", help="detect-secrets and an SBOM over a container's filesystem")
    scan.add_argument("--container", required=True, help="a podman container (running or not)")
    scan.add_argument("--allow", action="append", default=[], help="path glob whose matches are public data")
    scan.add_argument("--sbom-out", type=Path, help="write the CycloneDX SBOM here")
    scan.add_argument("--image", default="", help="the image's name in the SBOM (default: the container's)")
    scan.set_defaults(func=run_scan)

    for name, helptext in (
        ("record", "gate, scan and SBOM of an image, written as its record"),
        ("verify", "re-run the gate on an image and compare with its record"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("image", help="a local image (name or id)")
        p.add_argument(
            "--release", default="", help="its catalogue release (default: its org.capillary.release label)"
        )
        p.add_argument("--catalogue", default="", help="the catalogue the image was baked from")
        p.add_argument("--repo", type=Path, default=None, help="the Capillary checkout (playbooks/)")
        if name == "record":
            p.add_argument(
                "--out", type=Path, required=True, help="directory for record.json and sbom.cdx.json"
            )
            p.set_defaults(func=run_record)
        else:
            p.add_argument("--record", required=True, help="record.json, a path or s3://bucket/key")
            p.set_defaults(func=run_verify)


def run_scan(args: argparse.Namespace) -> int:
    from capillary.release.image_record import RecordError, build_sbom, exported, scan_filesystem

    try:
        with exported(args.container) as stream:
            scan = scan_filesystem(stream, allow=[*ALLOW, *args.allow])
    except RecordError as exc:
        print(f"capillary image scan: {exc}", file=sys.stderr)
        return 1
    if args.sbom_out:
        sbom = build_sbom(scan, args.image or args.container)
        args.sbom_out.write_text(json.dumps(sbom, indent=1, sort_keys=True) + "\n")
    print(json.dumps(scan.secrets_report()))
    return 0


def _labels(image: str) -> dict[str, str]:
    out = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{json .Labels}} {{.Id}}", image],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"no local image {image}: {out.stderr.strip()}")
    labels_json, _, image_id = out.stdout.strip().rpartition(" ")
    labels: dict[str, str] = json.loads(labels_json) or {}
    labels["id"] = image_id
    return labels


def make_record(image: str, release: str, catalogue: str, repo: Path | None, out: Path) -> dict[str, Any]:
    """Container from `image`, the audit playbook (gate + scan + SBOM) into `out`, the record."""
    from capillary.local.playbook import REPO, run_playbook
    from capillary.release.catalogue import load_catalogue
    from capillary.release.image_record import FilesystemScan, build_record

    labels = _labels(image)
    release = release or labels.get("org.capillary.release", "")
    if not release:
        raise RuntimeError(f"{image}: no --release and no org.capillary.release label")
    out.mkdir(parents=True, exist_ok=True)
    name = f"capillary-image-record-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["podman", "run", "-d", "--name", name, image, "sleep", "infinity"], check=True, capture_output=True
    )
    try:
        inventory = out / "inventory.ini"
        connection = "ansible_connection=containers.podman.podman ansible_python_interpreter=/usr/bin/python3"
        inventory.write_text(f"{name} {connection}\n")
        extra: dict[str, Any] = {
            "image_hygiene_gate_report_file": str(out / "gate-report.json"),
            "image_hygiene_gate_sbom_file": str(out / "sbom.cdx.json"),
            # the image, not the throwaway container: two records of one image write one SBOM
            "image_hygiene_gate_sbom_subject": labels["id"],
            "image_hygiene_fail_on_findings": False,
            "image_hygiene_gate_reference_releases": [release],
        }
        if catalogue:
            extra["image_hygiene_gate_reference_catalogue"] = catalogue
        recap = run_playbook(
            (repo or REPO) / "playbooks/audit_image.yml", inventory=inventory, extra_vars=extra, timeout=900
        )
        if recap.rc != 0:
            raise RuntimeError(f"the audit playbook failed:\n{recap.tail(40)}")
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", name], check=False, capture_output=True)
    gate = json.loads((out / "gate-report.json").read_text())
    sbom = json.loads((out / "sbom.cdx.json").read_text())
    scan = FilesystemScan(
        files=gate["secrets"]["files"],
        text_files=gate["secrets"]["text_files"],
        secrets=gate["secrets"]["findings"],
        allowed=gate["secrets"]["allowed"],
        seconds=gate["secrets"]["seconds"],
    )
    artifacts = load_catalogue(catalogue or None).release(release).artifacts()
    record = build_record(
        image=labels["id"],
        release=release,
        gate=gate,
        scan=scan,
        sbom=sbom,
        artifacts=artifacts,
        labels=labels,
    )
    (out / "record.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return record


def run_record(args: argparse.Namespace) -> int:
    try:
        record = make_record(args.image, args.release, args.catalogue, args.repo, args.out)
    except (RuntimeError, OSError, ValueError, subprocess.CalledProcessError) as exc:
        print(f"capillary image record: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"record": str(args.out / "record.json"), "clean": record["gate"]["clean"]}))
    return 0 if record["gate"]["clean"] and not record["secrets"]["findings"] else 1


def _read_recorded(where: str) -> dict[str, Any]:
    from capillary.release.image_record import RecordError, load_record

    if not where.startswith("s3://"):
        return load_record(where)
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key = where.removeprefix("s3://").partition("/")
    try:
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except (BotoCoreError, ClientError) as exc:
        raise RecordError(f"{where}: {exc}") from None
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as fh:
        fh.write(body)
    try:
        return load_record(fh.name)
    finally:
        Path(fh.name).unlink()


def run_verify(args: argparse.Namespace) -> int:
    from capillary.release.image_record import RecordError, compare_records

    try:
        recorded = _read_recorded(args.record)
        with tempfile.TemporaryDirectory(prefix="capillary-verify-") as tmp:
            now = make_record(
                args.image,
                args.release or str(recorded.get("release", "")),
                args.catalogue,
                args.repo,
                Path(tmp),
            )
        differences = compare_records(recorded, now)
    except (RecordError, RuntimeError, OSError, ValueError, subprocess.CalledProcessError) as exc:
        print(f"capillary image verify: {exc}", file=sys.stderr)
        return 1
    if recorded.get("image") != now["image"]:
        differences.insert(0, f"image: recorded {recorded.get('image')}, verifying {now['image']}")
    for line in differences:
        print(line)
    clean = now["gate"]["clean"] and not now["secrets"]["findings"]
    print(json.dumps({"image": now["image"], "clean": clean, "differences": len(differences)}))
    return 0 if clean and not differences else 1
