"""The offline validator: time per MB of VCF from 1 MB to 1 GB, and the hostile long-line case.

Each sample is a real tarball (a bgzipped VCF, compressed by Debian's `bgzip`, and a TOML)
validated by `capillary.contract.tarball.validate_tarball`, which inflates every byte of the VCF
and parses its head. The curve is seconds per MB of uncompressed VCF at each size; validation is
linear when it stays flat (max/min near 1). The long-line case is a tarball of a few hundred bytes
whose VCF inflates to one 64 MiB (and 128 MiB) line: it must be refused, and fast.
"""

from __future__ import annotations

import io
import random
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from bench.common import Figure, median, timed

SIZES_MB = (1, 4, 16, 64, 256, 1024)
LONG_LINES_MIB = (64, 128)
MB = 1_000_000
_BLOCK_RECORDS = 20_000


def _records(seed: int) -> bytes:
    """A block of plausible SNV records (distinct enough that deflate finds no long repeats)."""
    rng = random.Random(seed)
    lines = []
    for _ in range(_BLOCK_RECORDS):
        ref, alt = rng.sample("ACGT", 2)
        lines.append(
            f"chr{rng.randrange(1, 23)}\t{rng.randrange(10_000, 200_000_000)}\t.\t{ref}\t{alt}\t"
            f"{rng.randrange(30, 99)}\tPASS\tTDP={rng.randrange(20, 200)};TAF={rng.random():.3f}\n"
        )
    return "".join(lines).encode()


def _write_vcf(path: Path, size_bytes: int, header: bytes, blocks: list[bytes]) -> int:
    """A bgzipped VCF of about `size_bytes` uncompressed bytes; returns the exact count."""
    tool = shutil.which("bgzip")
    if tool is None:
        raise RuntimeError("bgzip (Debian package tabix) is needed for this benchmark")
    written = 0
    with open(path, "wb") as out:
        proc = subprocess.Popen([tool, "-c"], stdin=subprocess.PIPE, stdout=out)
        assert proc.stdin is not None
        proc.stdin.write(header)
        written += len(header)
        index = 0
        while written < size_bytes:
            block = blocks[index % len(blocks)]
            proc.stdin.write(block)
            written += len(block)
            index += 1
        proc.stdin.close()
        if proc.wait() != 0:
            raise RuntimeError("bgzip failed")
    return written


def _tarball(path: Path, members: dict[str, Path | bytes]) -> Path:
    # Level 1: the VCF is already compressed; the outer gzip only has to be a valid one.
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        for name, content in members.items():
            if isinstance(content, Path):
                archive.add(content, arcname=name)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return path


def run() -> list[Figure]:
    from capillary.contract.tarball import validate_tarball
    from tests.support.samples import long_line_vcf, options_toml, vcf_text

    toml = options_toml({"genome_assembly": "grch38", "assay": "WGS"}).encode()
    header = vcf_text(n_variants=0).encode()
    blocks = [_records(seed) for seed in range(8)]
    figures: list[Figure] = []
    per_mb: dict[int, float] = {}
    seconds_at: dict[int, float] = {}
    vcf_bytes: dict[int, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        work = Path(tmp)
        for size in SIZES_MB:
            vcf = work / f"{size}.vcf.gz"
            inflated = _write_vcf(vcf, size * MB, header, blocks)
            tarball = _tarball(work / f"s{size}-abc123-somatic.tar.gz", {"s/t.vcf.gz": vcf, "s/s.toml": toml})
            vcf.unlink()

            def check(tarball: Path = tarball) -> None:
                result = validate_tarball(tarball)
                assert result.ok, result.problems

            runs = timed(check, 5 if size <= 16 else 3 if size <= 256 else 1)
            seconds = median(runs)
            per_mb[size] = seconds / (inflated / MB)
            seconds_at[size], vcf_bytes[size] = seconds, inflated
            figures.append(
                Figure(
                    f"validate, {size} MB of VCF",
                    per_mb[size],
                    "s/MB",
                    samples=len(runs),
                    note=f"{seconds:.3f} s; tarball {tarball.stat().st_size / MB:.1f} MB",
                    extra={
                        "seconds": seconds,
                        "vcf_bytes": inflated,
                        "tarball_bytes": tarball.stat().st_size,
                    },
                )
            )
            tarball.unlink()
        # The same curve without the fixed part (opening the archive, the TOML, parsing the first
        # records), which weighs most at 1 MB: the cost of each MB past the first.
        base = SIZES_MB[0]
        marginal = {
            size: (seconds_at[size] - seconds_at[base]) / ((vcf_bytes[size] - vcf_bytes[base]) / MB)
            for size in SIZES_MB[1:]
        }
        figures.append(
            Figure(
                f"validate marginal s/MB past {base} MB, max/min",
                max(marginal.values()) / min(marginal.values()),
                "ratio",
                target="near 1 (linear)",
                extra={"marginal_s_per_mb": {str(k): v for k, v in marginal.items()}},
            )
        )
        figures.append(
            Figure(
                "validate s/MB, max/min from 1 MB to 1 GB",
                max(per_mb.values()) / min(per_mb.values()),
                "ratio",
                target="near 1 (linear)",
                extra={"s_per_mb": {str(k): v for k, v in per_mb.items()}},
            )
        )
        for mib in LONG_LINES_MIB:
            tarball = _tarball(
                work / f"long{mib}-abc123-somatic.tar.gz",
                {"s/t.vcf.gz": long_line_vcf(mib << 20), "s/s.toml": toml},
            )

            def refuse(tarball: Path = tarball) -> None:
                codes = [p.code for p in validate_tarball(tarball).problems]
                assert codes == ["vcf_line_too_long"], codes

            runs = timed(refuse, 5)
            figures.append(
                Figure(
                    f"refuse a {mib} MiB VCF line",
                    median(runs),
                    "s",
                    target="< 1 s",
                    samples=len(runs),
                    note=f"tarball {tarball.stat().st_size} bytes",
                )
            )
    return figures
