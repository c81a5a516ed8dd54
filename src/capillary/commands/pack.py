"""`capillary pack FOLDER`: a folder holding a sample's VCF and TOML, as a valid sample tarball.

The folder holds one or more VCFs (`.vcf.gz`, bgzipped, or plain `.vcf`, which is bgzipped here
with `bgzip` from htslib when it is on PATH), their indexes if any (`.tbi`, `.csi`), one `.toml`
with the sample's PCGR options and optionally one copy-number `.tsv`; nothing else. The tarball
puts them under one directory named after the folder, and is written only if `capillary validate`
would accept it: otherwise every problem is printed and nothing is left behind.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from capillary.commands._common import EXIT_USAGE, CliError
from capillary.contract.samples import EXTENSION
from capillary.contract.tarball import BGZF_MAGIC, GZIP_MAGIC, validate_tarball

PROG = "capillary pack"
INDEXES = (".vcf.gz.tbi", ".vcf.gz.csi")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "pack",
        help="make a sample tarball from a folder holding the VCF(s) and the TOML",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folder", type=Path, metavar="FOLDER", help="the sample's folder")
    parser.add_argument(
        "-o", "--output", type=Path, help=f"the tarball to write (default: ./<folder name>{EXTENSION})"
    )
    parser.add_argument("--force", action="store_true", help="replace the output if it exists")
    parser.set_defaults(func=run)


def _read_magic(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(4)
    except OSError as exc:
        raise CliError(f"{path}: cannot read it ({exc.strerror})", EXIT_USAGE) from None


def _classify(folder: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """(bgzipped VCFs and indexes, plain VCFs to bgzip, the TOML and TSV) of the folder."""
    ready: list[Path] = []
    plain: list[Path] = []
    tomls: list[Path] = []
    tsvs: list[Path] = []
    try:
        entries = sorted(folder.iterdir())
    except PermissionError:
        raise CliError(f"{folder}: cannot list it (permission denied)", EXIT_USAGE) from None
    for path in entries:
        if path.name.startswith("."):
            continue  # .DS_Store and editors' files are not part of a sample
        if path.is_symlink() or not path.is_file():
            raise CliError(
                f"{path}: a sample folder holds regular files only (VCF, index, TOML, TSV)", EXIT_USAGE
            )
        name = path.name
        if name.endswith(".vcf.gz"):
            magic = _read_magic(path)
            if magic != BGZF_MAGIC:
                how = (
                    "gzip, not bgzip: recompress it with `zcat | bgzip`"
                    if magic[:2] == GZIP_MAGIC
                    else "not compressed"
                )
                raise CliError(f"{path}: {how} (PCGR reads bgzipped VCFs)", EXIT_USAGE)
            ready.append(path)
        elif name.endswith(".vcf"):
            if _read_magic(path)[:2] == GZIP_MAGIC:
                raise CliError(f"{path}: compressed, but named .vcf: name it {name}.gz", EXIT_USAGE)
            plain.append(path)
        elif name.endswith(INDEXES):
            ready.append(path)
        elif name.endswith(".toml"):
            tomls.append(path)
        elif name.endswith(".tsv"):
            tsvs.append(path)
        else:
            raise CliError(
                f"{path}: not part of a sample (VCF, .tbi/.csi index, one TOML, one copy-number TSV)",
                EXIT_USAGE,
            )
    vcf_names = {p.name for p in ready if p.name.endswith(".vcf.gz")}
    for path in plain:
        if f"{path.name}.gz" in vcf_names:
            raise CliError(f"{path}: both {path.name} and {path.name}.gz are here: keep one", EXIT_USAGE)
        if not os.access(path, os.R_OK):
            raise CliError(f"{path}: not readable (permission denied)", EXIT_USAGE)
    if not vcf_names and not plain:
        raise CliError(f"{folder}: no VCF in it (.vcf.gz, or .vcf to bgzip)", EXIT_USAGE)
    if len(tomls) != 1:
        found = ", ".join(p.name for p in tomls) or "none"
        raise CliError(
            f"{folder}: needs exactly one .toml with the sample's PCGR options (found {found})", EXIT_USAGE
        )
    if len(tsvs) > 1:
        raise CliError(
            f"{folder}: at most one copy-number .tsv (found {', '.join(p.name for p in tsvs)})", EXIT_USAGE
        )
    for path in [*ready, *tomls, *tsvs]:
        if not os.access(path, os.R_OK):
            raise CliError(f"{path}: not readable (permission denied)", EXIT_USAGE)
    return ready, plain, [*tomls, *tsvs]


def _bgzip(plain: Path, dest: Path) -> Path:
    tool = shutil.which("bgzip")
    if tool is None:
        raise CliError(
            f"{plain}: plain text, and bgzip is not on PATH to compress it (Debian: apt install tabix): "
            f"bgzip it, or install bgzip and run again",
            EXIT_USAGE,
        )
    out = dest / f"{plain.name}.gz"
    with open(plain, "rb") as src, open(out, "wb") as sink:
        proc = subprocess.run([tool, "-c"], stdin=src, stdout=sink, stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        reason = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        raise CliError(f"{plain}: bgzip failed: {reason[0]}")
    return out


def _member(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Members as a centre's tarball should have them: owned by nobody in particular, no mtime games."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o644 if info.isfile() else 0o755
    return info


def run(args: argparse.Namespace) -> int:
    folder: Path = args.folder
    if not folder.exists():
        raise CliError(f"{folder}: no such folder", EXIT_USAGE)
    if not folder.is_dir():
        hint = " (it is a tarball already: capillary validate it)" if folder.name.endswith(EXTENSION) else ""
        raise CliError(f"{folder}: not a folder{hint}", EXIT_USAGE)
    top = folder.resolve().name
    output: Path = args.output or Path.cwd() / f"{top}{EXTENSION}"
    if not output.name.endswith(EXTENSION):
        raise CliError(f"--output {output}: a sample tarball ends in {EXTENSION}", EXIT_USAGE)
    if output.exists() and not args.force:
        raise CliError(f"{output}: exists already (give --force to replace it)", EXIT_USAGE)
    if not output.parent.is_dir():
        raise CliError(f"--output {output}: no such folder {output.parent}", EXIT_USAGE)
    ready, plain, others = _classify(folder)

    with tempfile.TemporaryDirectory(prefix=".capillary-pack-", dir=output.parent) as scratch:
        work = Path(scratch)
        compressed = [_bgzip(p, work) for p in plain]
        members = sorted([*ready, *compressed, *others], key=lambda p: p.name)
        staged = work / output.name
        with tarfile.open(staged, "w:gz") as tar:
            for path in members:
                tar.add(path, arcname=f"{top}/{path.name}", filter=_member)
        result = validate_tarball(staged)
        if not result.ok:
            print(f"{PROG}: {folder}: not packed, {len(result.problems)} problem(s):", file=sys.stderr)
            for problem in result.problems:
                print(f"  - [{problem.code}] {problem}", file=sys.stderr)
            return 1
        staged.replace(output)
    done = ", ".join(p.name for p in plain)
    note = f" (bgzipped {done})" if done else ""
    print(f"{PROG}: {output}: {len(result.vcfs)} VCF, assembly {result.assembly}{note}", file=sys.stderr)
    print(output)
    return 0
