"""Realistic synthetic samples for every test and the demo: bgzipped VCFs and sample tarballs.

    vcf = make_vcf(tmp_path / "tumor.vcf.gz", assembly="grch38", n_variants=50, seed=1)
    tarball = make_sample_tarball(tmp_path, batch="batch1", kind="somatic")
    # → tmp_path / "batch1-<uuid>-somatic.tar.gz", valid by `capillary validate`

VCFs carry the assembly's real contig names and lengths (`capillary.contract.assemblies`), a reference
line, INFO depth/allele-fraction tags PCGR can be pointed at, and sorted random SNVs; they are
compressed with the real `bgzip` (tabix package). Nothing here is patient data.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import shutil
import subprocess
import tarfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from capillary.contract import assemblies
from capillary.contract.samples import SampleKey
from capillary.contract.tarball import BGZF_EOF

DEFAULT_OPTIONS: dict[str, Any] = {
    "genome_assembly": "grch38",
    "assay": "WGS",
    "tumor_site": 9,
    "tumor_purity": 0.6,
    "tumor_ploidy": 2.1,
    "tumor_dp_tag": "TDP",
    "tumor_af_tag": "TAF",
    "estimate_tmb": True,
    "estimate_msi": True,
}
_REFERENCES = {"grch38": "GRCh38_full_analysis_set_plus_decoy_hla.fa", "grch37": "human_g1k_v37.fasta"}
_BASES = "ACGT"


def vcf_text(*, assembly: str = "grch38", n_variants: int = 50, seed: int = 0) -> str:
    """The uncompressed text of a synthetic single-tumour VCF."""
    rng = random.Random(seed)  # noqa: S311 - synthetic test data, not cryptography
    lengths = assemblies.LENGTHS[assembly]
    lines = [
        "##fileformat=VCFv4.2",
        "##source=capillary-tests",
        f"##reference={_REFERENCES[assembly]}",
        *(
            f"##contig=<ID={assemblies.contig_name(assembly, bare)},length={length}>"
            for bare, length in lengths.items()
        ),
        '##INFO=<ID=TDP,Number=1,Type=Integer,Description="Read depth in tumor">',
        '##INFO=<ID=TAF,Number=1,Type=Float,Description="Allele fraction in tumor">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    chromosomes = list(lengths)
    picks = sorted(
        ((rng.randrange(len(chromosomes)), rng.randrange(10_000, 50_000_000)) for _ in range(n_variants)),
    )
    for index, pos in picks:
        ref = rng.choice(_BASES)
        alt = rng.choice(_BASES.replace(ref, ""))
        depth = rng.randrange(20, 200)
        fraction = round(rng.uniform(0.05, 0.95), 3)
        chrom = assemblies.contig_name(assembly, chromosomes[index])
        lines.append(
            f"{chrom}\t{pos}\t.\t{ref}\t{alt}\t{rng.randrange(30, 99)}\tPASS\tTDP={depth};TAF={fraction}"
        )
    return "\n".join(lines) + "\n"


def make_vcf(
    path: Path,
    *,
    assembly: str = "grch38",
    n_variants: int = 50,
    seed: int = 0,
    bgzip: bool = True,
    text: str | None = None,
) -> Path:
    """Write a synthetic VCF to `path`: bgzipped with `bgzip`, or plain gzip when `bgzip=False`."""
    body = (
        text if text is not None else vcf_text(assembly=assembly, n_variants=n_variants, seed=seed)
    ).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    if bgzip:
        tool = shutil.which("bgzip")
        if tool is None:
            raise RuntimeError("bgzip (Debian package tabix) is needed to build test samples")
        with open(path, "wb") as out:
            subprocess.run([tool, "-c"], input=body, stdout=out, check=True)
    else:
        path.write_bytes(gzip.compress(body, mtime=0))
    return path


def bgzip_bytes(data: bytes) -> bytes:
    """`data` compressed by the real `bgzip` (BGZF blocks and the end-of-file block)."""
    tool = shutil.which("bgzip")
    if tool is None:
        raise RuntimeError("bgzip (Debian package tabix) is needed to build test samples")
    return subprocess.run([tool, "-c"], input=data, capture_output=True, check=True).stdout


def long_line_vcf(line_bytes: int) -> bytes:
    """A bgzipped VCF (by its first block) whose second line is `line_bytes` long: a hostile input.

    The first block is a real BGZF block holding the fileformat line; the rest is one plain gzip
    member of repeated bytes, so the file stays tiny (deflate packs 1000:1) however long the line.
    """
    head = bgzip_bytes(b"##fileformat=VCFv4.2\n")[: -len(BGZF_EOF)]
    body = zlib.compressobj(9, zlib.DEFLATED, 31)
    piece = b"A" * (1 << 20)
    chunks = [body.compress(piece) for _ in range(line_bytes // len(piece))]
    chunks.append(body.compress(b"A" * (line_bytes % len(piece)) + b"\n"))
    chunks.append(body.flush())
    return head + b"".join(chunks) + BGZF_EOF


# The CNA segment lines each PCGR release major takes (`capillary.contract.tarball.CNA_COLUMNS`).
CNA_HEADERS = {
    1: "Chromosome\tStart\tEnd\tSegment_Mean",
    2: "Chromosome\tStart\tEnd\tnMajor\tnMinor",
}
CNA_ROWS = {1: "chr7\t55019017\t55211628\t1.42", 2: "chr7\t55019017\t55211628\t6\t1"}


def cna_text(major: int = 2, rows: list[str] | None = None) -> str:
    """A copy-number segment file for a release major: its header and `rows` (default: one)."""
    return "\n".join([CNA_HEADERS[major], *(rows if rows is not None else [CNA_ROWS[major]])]) + "\n"


def options_toml(options: Mapping[str, Any]) -> str:
    """A flat TOML document from a mapping of scalars (what a sample's options file holds)."""
    lines = []
    for name, value in options.items():
        if isinstance(value, bool):
            rendered = "true" if value else "false"
        elif isinstance(value, int | float):
            rendered = repr(value)
        elif isinstance(value, str):
            rendered = json.dumps(value)
        else:
            raise TypeError(f"option {name}: only scalars go into a sample TOML")
        lines.append(f"{name} = {rendered}")
    return "\n".join(lines) + "\n"


def make_sample_tarball(
    dest_dir: Path,
    *,
    batch: str = "batch1",
    kind: str = "somatic",
    assembly: str = "grch38",
    vcfs: int = 1,
    options: Mapping[str, Any] | None = None,
    extra_members: Mapping[str, bytes | str | Path] | None = None,
    uuid: str | None = None,
    n_variants: int = 50,
    seed: int = 0,
    toml_text: str | None = None,
    cna: bool = False,
    name: str | None = None,
) -> Path:
    """A sample tarball named by the contract (`{batch}-{uuid}-{kind}.tar.gz`) in `dest_dir`.

    `options` are merged over a realistic default set (`None` values remove a default);
    `toml_text` replaces the TOML entirely; `extra_members` adds (or replaces) members by name.
    `name` overrides the file name (for misnamed uploads).
    """
    key = SampleKey(batch=batch, uuid=uuid, kind=kind) if uuid else SampleKey.new(batch, kind)
    merged: dict[str, Any] = {**DEFAULT_OPTIONS, "genome_assembly": assembly}
    for option, value in (options or {}).items():
        if value is None:
            merged.pop(option, None)
        else:
            merged[option] = value
    members: dict[str, bytes] = {}
    for number in range(vcfs):
        text = vcf_text(assembly=assembly, n_variants=n_variants, seed=seed + number)
        scratch = dest_dir / f".build-{key.name}-{number}.vcf.gz"
        make_vcf(scratch, text=text)
        members[f"{key.name}/tumor{number + 1}.vcf.gz"] = scratch.read_bytes()
        scratch.unlink()
    members[f"{key.name}/{key.name}.toml"] = (
        toml_text if toml_text is not None else options_toml(merged)
    ).encode()
    if cna:
        members[f"{key.name}/{key.name}.cna.tsv"] = (
            "Chromosome\tStart\tEnd\tnMajor\tnMinor\n"
            f"{assemblies.contig_name(assembly, '7')}\t55019017\t55211628\t6\t1\n"
        ).encode()
    for member, content in (extra_members or {}).items():
        if isinstance(content, Path):
            members[member] = content.read_bytes()
        elif isinstance(content, str):
            members[member] = content.encode()
        else:
            members[member] = content
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / (name or f"{key.name}.tar.gz")
    with tarfile.open(path, "w:gz") as archive:
        for member, content in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(content)
            info.mode = 0o644
            info.mtime = 1_700_000_000
            archive.addfile(info, io.BytesIO(content))
    return path


def sample_key_of(path: Path) -> SampleKey:
    """The SampleKey a tarball built here is named for."""
    return SampleKey.parse(f"inputs/{path.name}")
