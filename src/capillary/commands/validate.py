"""`capillary validate`: check a sample tarball offline, or explain whether a key would be accepted."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from capillary.contract.samples import OUTPUT_PREFIX, SampleKey, SampleKeyError, parse_output_key
from capillary.contract.tarball import validate_tarball


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check a sample tarball (or a key) against the sample contract",
        description=(
            "Check a sample tarball offline: safe members, bgzipped VCFs with valid headers, contigs "
            "matching the declared assembly, and a TOML of known PCGR options. Exits 0 when the "
            "sample is valid, 1 when it is not (every problem is printed), 2 on usage errors."
        ),
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("path", nargs="?", type=Path, help="the sample tarball (.tar.gz)")
    target.add_argument("--key", help="an object key, e.g. inputs/batch1-0a1b2c-somatic.tar.gz")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.key is not None:
        return _explain_key(args.key, args.json)
    path: Path = args.path
    if path.is_dir():
        print(
            f"capillary validate: {path}: a folder, not a tarball (capillary pack makes one)", file=sys.stderr
        )
        return 2
    if not path.is_file():
        print(f"capillary validate: {path}: no such file", file=sys.stderr)
        return 2
    result = validate_tarball(path)
    if args.json:
        print(json.dumps({"path": str(path), **result.as_dict()}, indent=2))
    elif result.ok:
        print(f"{path}: valid sample ({len(result.vcfs)} VCF, assembly {result.assembly})")
    else:
        print(f"{path}: {len(result.problems)} problem(s)")
        for problem in result.problems:
            print(f"  - [{problem.code}] {problem}")
    return 0 if result.ok else 1


def _explain_key(key: str, as_json: bool) -> int:
    out: dict[str, Any] = {"key": key}
    try:
        if key.startswith(OUTPUT_PREFIX):
            sample, what = parse_output_key(key)
            out.update(accepted=True, role=what)
        else:
            sample = SampleKey.parse(key)
            out.update(accepted=True, role="input")
        out.update(
            batch=sample.batch,
            uuid=sample.uuid,
            kind=sample.kind,
            name=sample.name,
            input_key=sample.input_key,
            output_key=sample.output_key,
            error_key=sample.error_key,
        )
    except SampleKeyError as exc:
        out.update(accepted=False, reason=exc.reason)
    if as_json:
        print(json.dumps(out, indent=2))
    elif out["accepted"]:
        print(
            f"{key}: accepted as {out['role']} (batch {out['batch']!r}, uuid {out['uuid']}, "
            f"kind {out['kind']}); output {out['output_key']}, error report {out['error_key']}"
        )
    else:
        print(f"{key}: rejected: {out['reason']}")
    return 0 if out["accepted"] else 1
