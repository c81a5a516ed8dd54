#!/usr/bin/python3
# Runs on targets with any Python >= 3.7 and walks whole filesystems: os.path on str is the
# fast, portable choice here, and %-formatting predates nothing the target may lack.
# ruff: noqa: PTH100, PTH112, PTH113, PTH114, PTH118, PTH119, PTH208, UP022, UP031
"""The no-patient-data gate: one pass over a filesystem, a JSON list of offending paths.

Shipped by the image_hygiene role and run on the target with the target's own python3 (standard
library only, Python >= 3.7). It never prints file contents: a finding is a path and a reason.

    python3 hygiene_gate.py --root / --exclude /proc --exclude /sys --workspace <data root>/work

It cannot import the capillary package (a target need not have it): the role passes the worker
layout's paths and names (the workspace, the reference stamp) as arguments.

Exit status is 0 whether or not something was found (the caller decides); 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time

SAMPLE_PATTERNS = ("*.vcf", "*.vcf.gz", "*.bam", "*.cram", "*-somatic.tar.gz", "*-normal.tar.gz")
AUTHORIZED_KEYS = ("authorized_keys", "authorized_keys2")
# Content checks: a private key header, or a credential with a literal value. A variable name on
# the right-hand side (botocore's `aws_secret_access_key=aws_secret_access_key`), a template
# placeholder or an empty value is not a credential, so the value must look like a key.
PRIVATE_KEY = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
CREDENTIALS = (
    ("AWS secret access key", re.compile(rb"AWS_SECRET_ACCESS_KEY\s*=\s*[\"']?[A-Za-z0-9/+]{30,}")),
    (
        "AWS secret access key",
        re.compile(rb"(?i)aws_secret_access_key[\"']?\s*[=:]\s*[\"']?[A-Za-z0-9/+]{30,}"),
    ),
    ("StackStorm API key", re.compile(rb"(?i)St2-Api-Key[\"']?\s*[=:]\s*[\"']?[A-Za-z0-9+/=_-]{16,}")),
)
# Where unit files and their drop-ins live: scanned for credentials whatever --content-root says.
UNIT_DIRS = ("/etc/systemd", "/lib/systemd/system", "/usr/lib/systemd/system", "/run/systemd/system")
CONSUMER_UNIT = "capillary-consumer"
# Only what a file says can be allowed by path; a sample-like name, a key file in the wrong
# place or an authorized_keys never can.
CONTENT_REASONS = ("private key", "AWS secret access key", "StackStorm API key")
# PCGR's reference bundle is full of public VCFs (ClinVar, gnomAD, ...). A tree that pcgr_refdata
# installed from a checksummed download carries its stamp (--reference-stamp) at the top: there,
# and only for sample-like names, a finding is reported as allowed reference data.
REFERENCE_REASONS = ("sample-like file",)
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="/", help="filesystem to scan (an image mounted elsewhere)")
    p.add_argument("--exclude", action="append", default=[], help="absolute path not descended into")
    p.add_argument(
        "--content-root",
        action="append",
        default=[],
        help="tree whose files are read for credentials and private keys",
    )
    p.add_argument("--workspace", action="append", default=[], help="directory that must be empty")
    p.add_argument(
        "--allow",
        action="append",
        default=[],
        help="glob of paths whose content findings are public, known data (reported, not failing)",
    )
    p.add_argument(
        "--reference-stamp",
        default="",
        help="file name of the stamp pcgr_refdata writes atop a verified reference tree",
    )
    p.add_argument("--max-content-bytes", type=int, default=1 << 20, help="larger files are not read")
    p.add_argument("--journal", choices=("auto", "skip"), default="auto")
    p.add_argument("--unit", default=CONSUMER_UNIT, help="unit whose start in the journal is evidence")
    return p.parse_args(argv)


def _inside(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _read_head(path: str, limit: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(limit)
    except OSError:
        return b""


def content_findings(data: bytes) -> list[str]:
    """Reasons why this file's bytes must not be in an image (empty when clean)."""
    if b"\0" in data[:8192]:
        return []
    reasons: list[str] = []
    if PRIVATE_KEY.search(data):
        reasons.append("private key")
    for reason, pattern in CREDENTIALS:
        if reason not in reasons and pattern.search(data):
            reasons.append(reason)
    return reasons


def name_findings(rel: str, name: str, parent: str) -> list[str]:
    """Reasons from the path alone (`rel` is the path as seen from inside the image)."""
    reasons: list[str] = []
    if any(fnmatch.fnmatch(name, pattern) for pattern in SAMPLE_PATTERNS):
        reasons.append("sample-like file")
    if name in AUTHORIZED_KEYS:
        reasons.append("authorized_keys")
    if name == "credentials" and os.path.basename(parent) == ".aws":
        reasons.append("AWS credentials file")
    if parent == "/etc/ssh" and name.startswith("ssh_host_"):
        reasons.append("SSH host key")
    return reasons


def reference_stamp(path: str) -> str:
    """The stamp's artifact name if it records a verified download (file name and sha256)."""
    try:
        with open(path) as fh:
            stamp = json.load(fh)
    except (OSError, ValueError):
        return ""
    if not isinstance(stamp, dict) or not SHA256.match(str(stamp.get("sha256", ""))):
        return ""
    return str(stamp.get("filename") or "")


def scan_tree(
    root: str, excludes: list[str], content_roots: list[str], max_bytes: int, stamp_name: str = ""
) -> tuple[list[dict[str, str]], int]:
    findings: list[dict[str, str]] = []
    scanned = 0
    references: dict[str, str] = {}  # directory (inside the image) -> artifact its stamp names
    root = os.path.abspath(root)
    prefix = "" if root == "/" else root

    def inside_image(path: str) -> str:
        return path[len(prefix) :] or "/"

    for dirpath, dirnames, filenames in os.walk(root, topdown=True, followlinks=False):
        rel_dir = inside_image(dirpath)
        dirnames[:] = [d for d in dirnames if not _inside(os.path.join(rel_dir, d), excludes)]
        if stamp_name and stamp_name in filenames:
            artifact = reference_stamp(os.path.join(dirpath, stamp_name))
            if artifact:
                references[rel_dir] = artifact
        reference = next((a for d, a in references.items() if _inside(rel_dir, [d])), "")
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.join(rel_dir, name)
            scanned += 1
            reasons = name_findings(rel, name, rel_dir)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and 0 < st.st_size <= max_bytes and _inside(rel, content_roots):
                reasons += content_findings(_read_head(full, max_bytes))
            for r in reasons:
                finding = {"path": rel, "reason": r}
                if reference and r in REFERENCE_REASONS:
                    finding["reference"] = reference
                findings.append(finding)
    return findings, scanned


def machine_id_findings(root: str) -> list[dict[str, str]]:
    findings = []
    for rel in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        full = os.path.join(root, rel.lstrip("/"))
        if os.path.islink(full) or not os.path.isfile(full):
            continue
        if _read_head(full, 64).strip():
            findings.append({"path": rel, "reason": "non-empty machine-id"})
    return findings


def workspace_findings(root: str, workspaces: list[str]) -> list[dict[str, str]]:
    findings = []
    for rel in workspaces:
        full = os.path.join(root, rel.lstrip("/"))
        try:
            entries = sorted(os.listdir(full))
        except OSError:
            continue
        for entry in entries:
            findings.append({"path": os.path.join(rel, entry), "reason": "consumer workspace not empty"})
    return findings


def journal_findings(root: str, unit: str) -> tuple[list[dict[str, str]], str]:
    """Entries showing `unit` ran here: its own messages or systemd's about it."""
    journalctl = shutil.which("journalctl")
    if journalctl is None:
        return [], "journalctl not found"
    cmd = [journalctl, "--no-pager", "-q", "-o", "json"]
    if root != "/":
        cmd += ["--root", root]
    service = unit + ".service"
    # Terms joined by "+" are alternatives (OR) for journalctl.
    cmd += [
        "_SYSTEMD_UNIT=" + service,
        "+",
        "UNIT=" + service,
        "+",
        "SYSLOG_IDENTIFIER=" + unit,
    ]
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [{"path": "journal", "reason": "journal unreadable: %s" % exc}], "error"
    if proc.returncode != 0:
        reason = "journal unreadable: " + proc.stderr.decode("utf-8", "replace").strip()[:200]
        return [{"path": "journal", "reason": reason}], "error"
    entries = [line for line in proc.stdout.splitlines() if line.strip()]
    if not entries:
        return [], "clean"
    return [
        {
            "path": "journal:%s" % service,
            "reason": "journal shows %s ran on this host (%d entries)" % (unit, len(entries)),
        }
    ], "dirty"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    root = os.path.abspath(args.root)
    if not os.path.isdir(root):
        print(json.dumps({"error": "--root %s is not a directory" % root}))
        return 2
    excludes = [os.path.normpath(e) for e in args.exclude]
    content_roots = [os.path.normpath(c) for c in args.content_root] + list(UNIT_DIRS)
    findings, scanned = scan_tree(root, excludes, content_roots, args.max_content_bytes, args.reference_stamp)
    findings += machine_id_findings(root)
    findings += workspace_findings(root, args.workspace)
    journal_state = "skipped"
    if args.journal == "auto":
        more, journal_state = journal_findings(root, args.unit)
        findings += more
    allowed = [
        f
        for f in findings
        if (f["reason"] in CONTENT_REASONS and any(fnmatch.fnmatch(f["path"], a) for a in args.allow))
        or f.get("reference")
    ]
    findings = [f for f in findings if f not in allowed]
    findings.sort(key=lambda f: (f["path"], f["reason"]))
    print(
        json.dumps(
            {
                "clean": not findings,
                "findings": findings,
                "offending_paths": sorted({f["path"] for f in findings}),
                "allowed": sorted(allowed, key=lambda f: (f["path"], f["reason"])),
                "scanned_files": scanned,
                "journal": journal_state,
                "seconds": round(time.monotonic() - started, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
