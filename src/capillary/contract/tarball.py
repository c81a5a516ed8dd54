"""Offline validation and safe extraction of a sample tarball, through one code path.

A sample tarball holds exactly one bgzipped VCF (`.vcf.gz`, optional `.tbi`/`.csi` index), one
`.toml` with the sample's PCGR options (see `capillary.contract.pcgr_options`) and optionally one
copy-number `.tsv`. `validate_tarball` and `safe_extract` both stream the archive once through
`_Scanner`: every member is checked (name, path, type, size, count, compression ratio) before a
byte of it is read, and extraction additionally passes each member through `tarfile.data_filter`
as the last line of defence. Problems are collected, not raised one at a time, so a user sees all
of them. Messages name the member and the rule, never the data inside it; a member name outside
the safe vocabulary (`capillary.contract.vocabulary`) is only ever shown escaped.

Content checks are linear in the input and hold O(chunk) memory, whatever the input:

- a VCF is inflated whole, so a truncated stream or one without the BGZF end-of-file block is
  refused, but only its header and first `VCF_RECORDS_CHECKED` records are parsed, and a line
  longer than `VCF_LINE_MAX_BYTES` is refused as soon as it is seen, never buffered;
- the CNA `.tsv` is read for the columns the PCGR release expects (`CNA_COLUMNS`, by release
  major; `release` defaults to `CURRENT_RELEASE_MAJOR`, the catalogue's current release), its
  header and first `CNA_ROWS_CHECKED` rows, lines capped at `CNA_LINE_MAX_BYTES`.
"""

from __future__ import annotations

import hashlib
import math
import os
import posixpath
import re
import shutil
import tarfile
import tomllib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, cast

from capillary.contract import assemblies
from capillary.contract.pcgr_options import validate_options
from capillary.contract.problems import Problem
from capillary.contract.vocabulary import member_problem, shown

__all__ = [
    "CNA_COLUMNS",
    "CURRENT_RELEASE_MAJOR",
    "MAX_VCFS",
    "ExtractedSample",
    "Limits",
    "Problem",
    "Readable",
    "TarballError",
    "Validation",
    "release_major",
    "safe_extract",
    "safe_extract_stream",
    "validate_tarball",
    "vcf_count_problem",
]

GIB = 1 << 30
MIB = 1 << 20
KIB = 1 << 10
CHUNK = 1 << 20
BGZF_MAGIC = b"\x1f\x8b\x08\x04"
GZIP_MAGIC = b"\x1f\x8b"
# The empty block `bgzip` (htslib) always ends a file with; htslib compares these 28 bytes exactly.
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
# A BGZF block is at most 64 KiB: compressed input is fed to zlib in slices no larger, so the
# leftovers carried from one gzip member to the next stay small (no re-copying of a whole chunk).
_INFLATE_SLICE = 64 * KIB
# How much of a VCF is parsed: the header and the first records. The whole stream is inflated
# (to prove it is complete) but the rest of it is only counted, never held or parsed.
VCF_HEADER_MAX_BYTES = 32 * MIB
VCF_RECORDS_CHECKED = 5000
# The longest VCF line (header or record) accepted. PCGR's inputs never come near it (a single-
# or tumor/normal-sample record is under 1 KiB; the longest header lines, ##INFO descriptions,
# a few KiB); a longer line is refused as soon as it is seen, without buffering it.
VCF_LINE_MAX_BYTES = 1 * MIB
TOML_MAX_BYTES = 1 * MIB
# One VCF per sample: PCGR (somatic) and CPSR (germline) each take exactly one VCF per run. The
# engines read this rule from here (`vcf_count_problem`), not a copy of it.
MAX_VCFS = 1
# The copy-number segment columns each PCGR release major requires (its own checks:
# pcgr/validate.py `is_valid_cna` at v2.3.2, pcgr/cna.py at v2.2.5, scripts/pcgr_validate_input.py
# at v1.4.1): 2.x takes allele-specific copy numbers, 1.x a log2 segment mean.
CNA_COLUMNS: dict[int, tuple[str, ...]] = {
    1: ("Chromosome", "Start", "End", "Segment_Mean"),
    2: ("Chromosome", "Start", "End", "nMajor", "nMinor"),
}
# The catalogue's current release major (catalogue/pcgr_releases.yml, `current: true`; the contract
# reads no other part of the package, so a test checks the two agree).
CURRENT_RELEASE_MAJOR = 2
CNA_ROWS_CHECKED = 10_000
CNA_LINE_MAX_BYTES = 64 * KIB
_CNA_POSITION = re.compile(r"[0-9]+")
_CNA_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_UTF8_BOM = b"\xef\xbb\xbf"


def release_major(release: str | None) -> int:
    """The major of a PCGR release (`"2.3.2"` -> 2); `None` is the catalogue's current release."""
    if release is None:
        return CURRENT_RELEASE_MAJOR
    head = str(release).split(".", 1)[0]
    if not head.isdigit() or int(head) not in CNA_COLUMNS:
        known = ", ".join(f"{major}.x" for major in sorted(CNA_COLUMNS))
        raise ValueError(f"PCGR release {shown(release)}: the sample contract knows releases {known}")
    return int(head)


def vcf_count_problem(count: int) -> Problem | None:
    """The one-VCF-per-sample rule: why `count` `.vcf.gz` files cannot make a sample, or None."""
    if count == 0:
        return Problem("no_vcf", "holds no bgzipped VCF (.vcf.gz)")
    if count > MAX_VCFS:
        return Problem(
            "multiple_vcf",
            f"holds {count} .vcf.gz files; a sample holds exactly one VCF "
            "(PCGR and CPSR take one per run: submit each VCF as its own sample)",
        )
    return None


@dataclass
class Limits:
    """Bounds on what a tarball may unpack to; the defaults fit a WGS sample with room to spare."""

    max_members: int = 64
    max_total_bytes: int = 200 * GIB
    max_ratio: float = 100.0
    max_member_bytes: int = 100 * GIB
    # Below this uncompressed total the ratio is not judged (tar headers alone compress 100:1).
    ratio_floor_bytes: int = 64 * MIB


@dataclass
class Validation:
    ok: bool
    problems: list[Problem] = field(default_factory=list)
    vcfs: list[str] = field(default_factory=list)
    toml: str | None = None
    cna: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    assembly: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": [p.as_dict() for p in self.problems],
            "vcfs": list(self.vcfs),
            "toml": self.toml,
            "cna": self.cna,
            "options": dict(self.options),
            "assembly": self.assembly,
        }


@dataclass
class ExtractedSample:
    root: Path
    vcfs: list[Path]
    toml: Path
    cna: Path | None
    options: dict[str, Any]
    sha256: dict[str, str]


class TarballError(Exception):
    """A tarball that breaks the contract; `problems` lists every rule it breaks."""

    def __init__(self, problems: list[Problem], path: Path | None = None) -> None:
        self.problems = problems
        self.path = path
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path.name}: " if self.path else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        return f"{where}{len(self.problems)} problem(s) in sample tarball\n{lines}"


# --------------------------------------------------------------------------------------------
# Line splitting and VCF inspection (streaming; the whole VCF is inflated, its head is parsed)


class _Lines:
    """Splits a byte stream into lines in one pass, holding at most one partial line.

    `feed` returns the complete lines of `data`, or None as soon as a line is longer than
    `limit` (complete or not), before any more of it is kept.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.partial = bytearray()

    def feed(self, data: bytes) -> list[bytes] | None:
        pieces = data.split(b"\n")
        tail = pieces.pop()
        if pieces:
            if self.partial:
                if len(self.partial) + len(pieces[0]) > self.limit:
                    return None
                self.partial += pieces[0]
                pieces[0] = bytes(self.partial)
                self.partial = bytearray()
            if max(map(len, pieces)) > self.limit:
                return None
        if len(self.partial) + len(tail) > self.limit:
            return None
        self.partial += tail
        return pieces

    def finish(self) -> list[bytes]:
        last, self.partial = bytes(self.partial), bytearray()
        return [last] if last else []


class _VcfInspector:
    """Fed the raw bytes of one `.vcf.gz` member in order; collects its header facts.

    Every byte is inflated, one gzip member after the other (a BGZF file is a series of them),
    with output bounded per call; only the header and the first `VCF_RECORDS_CHECKED` records
    are split into lines and parsed. `finish` then knows whether the stream was complete.
    """

    def __init__(self, member: str) -> None:
        self.member = member
        self.problems: list[Problem] = []
        self.first = b""
        self.bgzf_checked = False
        self.done = False  # a problem was found: nothing more is read
        self.parsing = True  # still in the header or the first records
        self.decompressor = zlib.decompressobj(wbits=31)
        self.in_member = False  # bytes were fed to the current gzip member and it has not ended
        self.tail = b""  # the last bytes of the compressed stream (where the EOF block must be)
        self.lines = _Lines(VCF_LINE_MAX_BYTES)
        self.inflated = 0
        self.fileformat = False
        self.chrom_line = False
        self.records = 0
        self.contig_lengths: dict[str, int] = {}
        self.contigs_seen: set[str] = set()
        self._chroms: set[bytes] = set()
        self.reference: str | None = None

    def feed(self, data: bytes) -> None:
        if self.done:
            return
        self._keep_tail(data)
        if not self.bgzf_checked:
            self.first += data
            if len(self.first) < 18:
                return
            self.bgzf_checked = True
            head = self.first
            if not head.startswith(GZIP_MAGIC):
                self._fail("vcf_not_gzip", "is not gzip-compressed; compress it with bgzip")
                return
            if not (head.startswith(BGZF_MAGIC) and head[12:14] == b"BC"):
                self._fail(
                    "vcf_not_bgzipped",
                    "is gzip but not bgzip (BGZF); recompress with `bgzip` so it can be indexed",
                )
                return
            data, self.first = self.first, b""
        self._inflate(data)

    def finish(self) -> list[Problem]:
        if not self.bgzf_checked and not self.done:
            self._fail("vcf_not_gzip", "is too short to be a bgzipped VCF")
        if not self.done and self.in_member:
            try:
                self._text(self.decompressor.flush())
            except zlib.error:
                self._fail("vcf_corrupt", "is not valid gzip data (corrupt)")
        if not self.done and self.parsing:
            for line in self.lines.finish():
                if line.rstrip(b"\r"):
                    self._line(line.rstrip(b"\r"))
        if not self.done:
            if self.in_member and not self.decompressor.eof:
                self._fail(
                    "vcf_truncated",
                    "is truncated: its compressed data ends inside a block (an interrupted upload or copy?)",
                )
            elif self.tail != BGZF_EOF:
                self._fail(
                    "vcf_no_eof_block",
                    "has no BGZF end-of-file block, which `bgzip` always writes last: the file was "
                    "cut short or not written by bgzip; recompress it with `bgzip`",
                )
        if not self.problems:
            if not self.fileformat:
                self.problems.append(
                    Problem("vcf_header", "does not start with a '##fileformat=VCF' line", self.member)
                )
            elif not self.chrom_line:
                self.problems.append(Problem("vcf_header", "has no '#CHROM' header line", self.member))
        return self.problems

    def _fail(self, code: str, message: str) -> None:
        self.problems.append(Problem(code, message, self.member))
        self.done = True

    def _keep_tail(self, data: bytes) -> None:
        size = len(BGZF_EOF)
        self.tail = data[-size:] if len(data) >= size else (self.tail + data)[-size:]

    def _inflate(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            for offset in range(0, len(view), _INFLATE_SLICE):
                pending: bytes | memoryview = view[offset : offset + _INFLATE_SLICE]
                while pending:
                    self.in_member = True
                    out = self.decompressor.decompress(pending, CHUNK)
                    pending = self.decompressor.unconsumed_tail
                    if self.decompressor.eof:
                        # BGZF is a series of gzip members: start the next one on the leftovers.
                        pending = self.decompressor.unused_data + pending
                        self.decompressor = zlib.decompressobj(wbits=31)
                        self.in_member = False
                    self._text(out)
                    if self.done:
                        return
        except zlib.error:
            self._fail("vcf_corrupt", "is not valid gzip data (corrupt)")

    def _text(self, out: bytes) -> None:
        """Inflated bytes, in order: split into lines and parsed while still in the VCF's head."""
        self.inflated += len(out)
        if not self.parsing or not out:
            return
        lines = self.lines.feed(out)
        if lines is None:
            self._fail(
                "vcf_line_too_long",
                f"has a line longer than {VCF_LINE_MAX_BYTES // MIB} MiB (the limit for any VCF line)",
            )
            return
        for raw in lines:
            if self.chrom_line and raw[:1] not in (b"#", b"", b"\r"):
                self._record(raw)  # the common case, kept short: a record's contig is all it reads
            else:
                line = raw.rstrip(b"\r")
                if line:
                    self._line(line)
            if self.done or not self.parsing:
                break
        if not self.parsing:
            self.lines = _Lines(0)  # what remains of the stream is inflated, never split
        elif not self.done and not self.chrom_line and self.inflated > VCF_HEADER_MAX_BYTES:
            self._fail("vcf_header", f"has no '#CHROM' line in its first {VCF_HEADER_MAX_BYTES // MIB} MiB")

    def _line(self, line: bytes) -> None:
        if not self.fileformat:
            if not line.startswith(b"##fileformat=VCF"):
                self._fail("vcf_header", "does not start with a '##fileformat=VCF' line")
            self.fileformat = True
            return
        if line.startswith(b"##"):
            if line.startswith(b"##contig=<"):
                self._contig_header(line)
            elif line.startswith(b"##reference="):
                self.reference = line[len(b"##reference=") :].decode("utf-8", "replace")
            return
        if line.startswith(b"#"):
            if not line.startswith(b"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"):
                self._fail("vcf_header", "has a malformed '#CHROM' line (expected tab-separated VCF columns)")
            self.chrom_line = True
            return
        if not self.chrom_line:
            self._fail("vcf_header", "has records before its '#CHROM' header line")
            return
        self._record(line)

    def _record(self, line: bytes) -> None:
        tab = line.find(b"\t")
        chrom = line[:tab] if tab >= 0 else line.rstrip(b"\r")
        if chrom not in self._chroms:
            self._chroms.add(chrom)
            self.contigs_seen.add(chrom.decode("utf-8", "replace"))
        self.records += 1
        if self.records >= VCF_RECORDS_CHECKED:
            self.parsing = False

    def _contig_header(self, line: bytes) -> None:
        body = line[len(b"##contig=<") :].rstrip(b">").decode("utf-8", "replace")
        fields: dict[str, str] = {}
        for part in body.split(","):
            key, _, value = part.partition("=")
            fields[key.strip()] = value.strip()
        name = fields.get("ID")
        if not name:
            return
        length = fields.get("length", "")
        self.contig_lengths[name] = int(length) if length.isdigit() else -1

    def assembly_problems(self, assembly: str) -> list[Problem]:
        """Rules that tie the VCF to the TOML's genome_assembly (see `capillary.contract.assemblies`)."""
        problems: list[Problem] = []
        other = "grch37" if assembly == "grch38" else "grch38"
        names = set(self.contig_lengths) | self.contigs_seen
        prefixed = {n for n in names if n.startswith("chr")}
        if prefixed and prefixed != names:
            problems.append(
                Problem(
                    "vcf_contig_naming",
                    "mixes 'chr'-prefixed and unprefixed contig names; use one convention",
                    self.member,
                )
            )
        wrong_lengths = sorted(
            (
                n
                for n, length in self.contig_lengths.items()
                if assemblies.length_assembly(n, length) == other
            ),
            key=assemblies.strip_chr,
        )
        if wrong_lengths:
            shown = ", ".join(wrong_lengths[:3]) + ("…" if len(wrong_lengths) > 3 else "")
            problems.append(
                Problem(
                    "vcf_wrong_assembly",
                    f"declares {other} contig lengths ({shown}) but genome_assembly is {assembly!r}",
                    self.member,
                )
            )
        wrong_names = sorted(n for n in names if assemblies.contig_assembly(n) == other)
        if wrong_names:
            shown = ", ".join(wrong_names[:3]) + ("…" if len(wrong_names) > 3 else "")
            problems.append(
                Problem(
                    "vcf_wrong_assembly",
                    f"has contigs that exist only in {other} ({shown}) but genome_assembly is {assembly!r}",
                    self.member,
                )
            )
        if self.reference and assemblies.reference_assembly(self.reference) == other:
            problems.append(
                Problem(
                    "vcf_wrong_assembly",
                    f"its ##reference line names {other} but genome_assembly is {assembly!r}",
                    self.member,
                )
            )
        return problems


# --------------------------------------------------------------------------------------------
# The copy-number segment file (streaming: the header and the first rows)


class _CnaInspector:
    """Fed the bytes of the CNA `.tsv` in order; checks it against the release's columns.

    What PCGR's own check requires, from its header and first `CNA_ROWS_CHECKED` rows: UTF-8,
    tab-separated, the release's columns (`CNA_COLUMNS`), as many fields in each row as in the
    header, Start and End positive integers with End >= Start, copy numbers (nMajor, nMinor)
    non-negative numbers, Segment_Mean a number, and at least one segment.
    """

    def __init__(self, member: str, major: int) -> None:
        self.member = member
        self.required = CNA_COLUMNS[major]
        self.problems: list[Problem] = []
        self.lines = _Lines(CNA_LINE_MAX_BYTES)
        self.line_number = 0
        self.columns: dict[str, int] = {}
        self.width = 0
        self.rows = 0
        self.done = False

    def feed(self, data: bytes) -> None:
        if self.done:
            return
        if self.line_number == 0 and not self.lines.partial and data.startswith(_UTF8_BOM):
            self._fail(
                "starts with a UTF-8 byte-order mark, which PCGR reads as part of the first "
                "column's name; save it as UTF-8 without a BOM"
            )
            return
        lines = self.lines.feed(data)
        if lines is None:
            self._fail(
                f"has a line longer than {CNA_LINE_MAX_BYTES // KIB} KiB (the limit for a segment line)"
            )
            return
        for line in lines:
            self._line(line)
            if self.done:
                return

    def finish(self) -> list[Problem]:
        if not self.done:
            for line in self.lines.finish():
                self._line(line)
        if not self.done:
            if not self.columns:
                self._fail("is empty; a copy-number file starts with a header line of column names")
            elif not self.rows:
                self._fail("has no segments (PCGR refuses a copy-number file without any)")
        return self.problems

    def _fail(self, message: str) -> None:
        self.problems.append(Problem("cna_invalid", message, self.member))
        self.done = True

    def _line(self, raw: bytes) -> None:
        self.line_number += 1
        line = raw.rstrip(b"\r")
        if not line.strip():
            return  # blank lines are skipped, as PCGR's reader skips them
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            self._fail(f"line {self.line_number} is not UTF-8 text")
            return
        fields = text.split("\t")
        if not self.columns:
            self._header(fields)
        elif self.rows < CNA_ROWS_CHECKED:
            self._row(fields)

    def _header(self, names: list[str]) -> None:
        if len(names) == 1:
            hint = " (it looks comma-separated)" if "," in names[0] else ""
            self._fail(f"is not tab-separated: its header line has no tab{hint}")
            return
        for name in self.required:
            if names.count(name) > 1:
                self._fail(f"names column {name!r} more than once in its header")
                return
        missing = [name for name in self.required if name not in names]
        if missing:
            found = ", ".join(shown(n) for n in names[:8]) + (", …" if len(names) > 8 else "")
            self._fail(
                f"lacks the column(s) {', '.join(missing)} this PCGR release requires "
                f"({', '.join(self.required)}; found {found})"
            )
            return
        self.columns = {name: names.index(name) for name in self.required}
        self.width = len(names)

    def _row(self, fields: list[str]) -> None:
        where = f"line {self.line_number}"
        if len(fields) != self.width:
            self._fail(f"{where} has {len(fields)} tab-separated fields; its header has {self.width}")
            return
        if not fields[self.columns["Chromosome"]].strip():
            self._fail(f"{where}: Chromosome is empty")
            return
        start, end = fields[self.columns["Start"]], fields[self.columns["End"]]
        for name, value in (("Start", start), ("End", end)):
            if not _CNA_POSITION.fullmatch(value) or int(value) < 1:
                self._fail(f"{where}: {name} must be a positive integer")
                return
        if int(end) < int(start):
            self._fail(f"{where}: End is before Start")
            return
        for name in self.required[3:]:
            value = fields[self.columns[name]]
            if not _CNA_NUMBER.fullmatch(value) or not math.isfinite(float(value)):
                self._fail(f"{where}: {name} must be a number")
                return
            if name != "Segment_Mean" and float(value) < 0:
                self._fail(f"{where}: {name} is a copy number and cannot be negative")
                return
        self.rows += 1


# --------------------------------------------------------------------------------------------
# The scanner: one pass, used by both validate_tarball and safe_extract


def _display(name: str) -> str:
    """A member name as a message may print it: as is when the safe vocabulary takes it (nothing in
    it can disturb a terminal or a log), else escaped and bounded (`vocabulary.shown`)."""
    return name if member_problem(name) is None else shown(name)


def _member_kind(name: str) -> str:
    base = posixpath.basename(name)
    if base.endswith(".vcf.gz"):
        return "vcf"
    if base.endswith((".vcf.gz.tbi", ".vcf.gz.csi")):
        return "index"
    if base.endswith(".toml"):
        return "toml"
    if base.endswith(".tsv"):
        return "cna"
    if base.endswith((".vcf", ".bcf", ".vcf.bgz", ".vcf.gzip")):
        return "vcf_misnamed"
    return "other"


class _Scanner:
    def __init__(self, path: Path, limits: Limits, dest: Path | None, major: int) -> None:
        self.path = path
        self.limits = limits
        self.dest = dest
        self.major = major
        self.problems: list[Problem] = []
        self.vcfs: list[str] = []
        self.tomls: list[str] = []
        self.cnas: list[str] = []
        self.options: dict[str, Any] = {}
        self.sha256: dict[str, str] = {}
        self.inspectors: list[_VcfInspector] = []
        self.names: set[str] = set()
        self.total = 0
        self.count = 0
        self.aborted = False

    def run(self) -> None:
        try:
            compressed_size = self.path.stat().st_size
        except OSError as exc:
            self.problems.append(Problem("unreadable", f"cannot read {self.path}: {exc.strerror}"))
            return
        with open(self.path, "rb") as raw:
            self.run_stream(raw, compressed_size)

    def run_stream(self, raw: Readable, compressed_size: int) -> None:
        """The scan over `raw` read once, front to back (never seeked: a file or a network body)."""
        magic = raw.read(2)
        if magic != GZIP_MAGIC:
            self.problems.append(Problem("not_gzip", "is not a gzip-compressed tar archive (.tar.gz)"))
            return
        try:
            with tarfile.open(fileobj=cast(IO[bytes], _Prefixed(magic, raw)), mode="r|gz") as archive:
                for member in self._members(archive):
                    if not self._check_sizes(member, compressed_size):
                        return
                    self._member(archive, member)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            self.problems.append(
                Problem("corrupt_archive", f"is not a readable tar.gz archive ({type(exc).__name__})")
            )
            return
        if not self.aborted:
            self._sample_checks()

    def _members(self, archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
        for member in archive:
            self.count += 1
            if self.count > self.limits.max_members:
                self.problems.append(
                    Problem("too_many_members", f"has more than {self.limits.max_members} members")
                )
                self.aborted = True
                return
            yield member

    def _check_sizes(self, member: tarfile.TarInfo, compressed_size: int) -> bool:
        """Size, total and ratio limits, judged from headers before any content is inflated."""
        if member.size > self.limits.max_member_bytes:
            self.problems.append(
                Problem(
                    "member_too_large",
                    f"unpacks to {member.size} bytes; the limit per member is {self.limits.max_member_bytes}",
                    _display(member.name),
                )
            )
            return False
        self.total += member.size
        if self.total > self.limits.max_total_bytes:
            self.problems.append(
                Problem(
                    "total_too_large", f"unpacks to more than {self.limits.max_total_bytes} bytes in total"
                )
            )
            return False
        if self.total > self.limits.ratio_floor_bytes and self.total > self.limits.max_ratio * max(
            compressed_size, 1
        ):
            self.problems.append(
                Problem(
                    "compression_ratio",
                    f"unpacks to more than {self.limits.max_ratio:g} times its compressed size "
                    "(a decompression bomb?)",
                    _display(member.name),
                )
            )
            return False
        return True

    def _path_problem(self, member: tarfile.TarInfo) -> Problem | None:
        name = member.name
        if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
            return Problem("absolute_path", "has an absolute path", _display(name))
        if ".." in name.replace("\\", "/").split("/"):
            return Problem("path_traversal", "has a '..' component (path traversal)", _display(name))
        # The safe vocabulary: member names reach PCGR's command lines (and its shell).
        reason = member_problem(name)
        if reason is not None:
            return Problem("bad_name", reason, shown(name))
        if member.issym():
            target = member.linkname
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
                return Problem("symlink_escape", "is a symlink pointing outside the sample", name)
            return Problem("link", "is a symlink; links are not allowed in a sample tarball", name)
        if member.islnk():
            target = posixpath.normpath(member.linkname)
            if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
                return Problem("hardlink_escape", "is a hard link pointing outside the sample", name)
            return Problem("link", "is a hard link; links are not allowed in a sample tarball", name)
        if member.ischr() or member.isblk() or member.isfifo():
            return Problem("special_file", "is a device or FIFO; only regular files are allowed", name)
        if not (member.isfile() or member.isdir()):
            return Problem("special_file", "is not a regular file or directory", name)
        return None

    def _member(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        problem = self._path_problem(member)
        if problem is not None:
            self.problems.append(problem)
            return
        name = posixpath.normpath(member.name)
        if name in self.names:
            self.problems.append(Problem("duplicate_member", "appears twice in the archive", name))
            return
        self.names.add(name)
        # The last line of defence: whatever our own rules missed, the stdlib's data filter refuses.
        # Python before 3.11.4 (Debian bookworm's 3.11.2, on workers) has no data filter; there the
        # rules above stand alone, and extraction never lets tarfile write a member itself.
        data_filter = getattr(tarfile, "data_filter", None)
        if data_filter is not None:
            try:
                data_filter(member, str(self.dest or Path("/nonexistent-capillary-dest")))
            except tarfile.FilterError as exc:
                self.problems.append(
                    Problem("unsafe_member", f"refused by tarfile's data filter ({exc})", name)
                )
                return
        if member.isdir():
            if self.dest is not None:
                self._target(name).mkdir(mode=0o700, parents=True, exist_ok=True)
            return
        kind = _member_kind(name)
        if kind == "vcf_misnamed":
            self.problems.append(
                Problem("vcf_not_bgzipped", "VCFs must be bgzipped and named '.vcf.gz'", name)
            )
            return
        if kind == "other":
            self.problems.append(
                Problem(
                    "unexpected_member",
                    "is not part of a sample (allowed: .vcf.gz, .vcf.gz.tbi/.csi, one .toml, one .tsv)",
                    name,
                )
            )
            return
        if kind == "vcf" and len(self.vcfs) >= MAX_VCFS:
            # Refused by count (in _sample_checks) without reading it: no point inflating it too.
            self.vcfs.append(name)
            return
        if kind == "toml" and member.size > TOML_MAX_BYTES:
            self.problems.append(Problem("toml_too_large", f"is larger than {TOML_MAX_BYTES} bytes", name))
            return
        self._read_member(archive, member, name, kind)

    def _target(self, name: str) -> Path:
        assert self.dest is not None
        target = (self.dest / name).resolve()
        root = self.dest.resolve()
        if target != root and root not in target.parents:
            raise TarballError([Problem("path_traversal", "resolves outside the destination", name)])
        return target

    def _read_member(self, archive: tarfile.TarFile, member: tarfile.TarInfo, name: str, kind: str) -> None:
        source = archive.extractfile(member)
        if source is None:
            self.problems.append(Problem("special_file", "has no content to read", name))
            return
        inspector = _VcfInspector(name) if kind == "vcf" else None
        cna = _CnaInspector(name, self.major) if kind == "cna" else None
        toml_bytes = bytearray()
        digest = hashlib.sha256()
        out: IO[bytes] | None = None
        if self.dest is not None:
            target = self._target(name)
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
            out = os.fdopen(os.open(target, flags, 0o600), "wb")
        try:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                if out is not None:
                    out.write(chunk)
                if inspector is not None:
                    inspector.feed(chunk)
                elif cna is not None:
                    cna.feed(chunk)
                elif kind == "toml":
                    toml_bytes += chunk
        finally:
            if out is not None:
                out.close()
        self.sha256[name] = digest.hexdigest()
        if inspector is not None:
            self.problems.extend(inspector.finish())
            self.inspectors.append(inspector)
            self.vcfs.append(name)
        elif kind == "toml":
            self.tomls.append(name)
            self._parse_toml(name, bytes(toml_bytes))
        elif cna is not None:
            self.problems.extend(cna.finish())
            self.cnas.append(name)

    def _parse_toml(self, name: str, data: bytes) -> None:
        if data.startswith(b"\xef\xbb\xbf"):
            self.problems.append(
                Problem(
                    "toml_invalid",
                    "starts with a UTF-8 byte-order mark (BOM), which TOML does not allow; save it as "
                    "UTF-8 without BOM",
                    name,
                )
            )
            return
        try:
            options = tomllib.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            self.problems.append(Problem("toml_invalid", "is not UTF-8 text", name))
            return
        except tomllib.TOMLDecodeError as exc:
            self.problems.append(Problem("toml_invalid", f"does not parse as TOML: {exc}", name))
            return
        self.options = options
        # Neither the release nor the engine is known here (a deployment picks the engine per
        # kind: CPSR or PCGR for a normal sample): options some program's release accepts pass,
        # and the worker's engine checks them strictly for its own.
        for problem in validate_options(options, program=None):
            self.problems.append(
                Problem(problem.code, problem.message, f"{name}: {problem.member or 'options'}")
            )

    def _sample_checks(self) -> None:
        count_problem = vcf_count_problem(len(self.vcfs))
        if count_problem is not None and (
            self.vcfs or not any(p.code.startswith("vcf") for p in self.problems)
        ):
            self.problems.append(count_problem)
        if not self.tomls and not any(p.code == "toml_too_large" for p in self.problems):
            self.problems.append(Problem("no_toml", "holds no .toml with the sample's PCGR options"))
        if len(self.tomls) > 1:
            self.problems.append(
                Problem("multiple_toml", f"holds {len(self.tomls)} .toml files; exactly one")
            )
        if len(self.cnas) > 1:
            self.problems.append(Problem("multiple_cna", f"holds {len(self.cnas)} .tsv files; at most one"))
        assembly = self.assembly
        if assembly in assemblies.LENGTHS:
            for inspector in self.inspectors:
                if not inspector.problems:
                    self.problems.extend(inspector.assembly_problems(assembly))

    @property
    def assembly(self) -> str | None:
        value = self.options.get("genome_assembly")
        return value if isinstance(value, str) else None


def validate_tarball(path: Path, limits: Limits | None = None, *, release: str | None = None) -> Validation:
    """Check a sample tarball without writing anything; every problem is reported.

    `release` is the PCGR release the sample is for (`"2.3.2"`; only its major matters here: it
    picks the CNA columns), by default the catalogue's current one (`CURRENT_RELEASE_MAJOR`).
    """
    scanner = _Scanner(Path(path), limits or Limits(), dest=None, major=release_major(release))
    scanner.run()
    return Validation(
        ok=not scanner.problems,
        problems=scanner.problems,
        vcfs=scanner.vcfs,
        toml=scanner.tomls[0] if len(scanner.tomls) == 1 else None,
        cna=scanner.cnas[0] if len(scanner.cnas) == 1 else None,
        options=scanner.options,
        assembly=scanner.assembly,
    )


def safe_extract(
    path: Path, dest: Path, limits: Limits | None = None, *, release: str | None = None
) -> ExtractedSample:
    """Unpack a sample tarball into `dest` (created, must be empty) after the same checks.

    On any problem, whatever was written is removed and `TarballError` lists every problem.
    Nothing is ever written outside `dest`. `release` as for `validate_tarball` (a worker passes
    the release it runs).
    """
    return _extract(Path(path), Path(dest), limits, None, 0, release)


class Readable(Protocol):
    """What `safe_extract_stream` reads: `read(size)` only, front to back."""

    def read(self, size: int = -1, /) -> bytes: ...


def safe_extract_stream(
    fileobj: Readable,
    dest: Path,
    compressed_size: int,
    limits: Limits | None = None,
    *,
    release: str | None = None,
) -> ExtractedSample:
    """`safe_extract` of a tarball read once from `fileobj` (a download, say), front to back.

    The same scan and the same checks; `compressed_size` (the stream's length, e.g. its
    Content-Length) stands in for the file size the compression-ratio limit is judged against.
    The stream is read up to the archive's end-of-archive marker: a caller hashing it reads the
    rest itself. `release` as for `safe_extract`.
    """
    return _extract(None, Path(dest), limits, fileobj, compressed_size, release)


def _extract(
    path: Path | None,
    dest: Path,
    limits: Limits | None,
    fileobj: Readable | None,
    compressed_size: int,
    release: str | None,
) -> ExtractedSample:
    major = release_major(release)
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise TarballError([Problem("dest_not_empty", f"extraction directory {dest} is not empty")], path)
    # A stream has no path: the scanner reads only `fileobj`.
    scanner = _Scanner(path if path is not None else Path("-"), limits or Limits(), dest=dest, major=major)
    try:
        if fileobj is None:
            scanner.run()
        else:
            scanner.run_stream(fileobj, compressed_size)
    except TarballError as exc:
        scanner.problems.extend(exc.problems)
    except BaseException:
        _empty(dest)
        raise
    if scanner.problems:
        _empty(dest)
        raise TarballError(scanner.problems, path)
    return ExtractedSample(
        root=dest,
        vcfs=[dest / name for name in scanner.vcfs],
        toml=dest / scanner.tomls[0],
        cna=dest / scanner.cnas[0] if scanner.cnas else None,
        options=scanner.options,
        sha256=scanner.sha256,
    )


class _Prefixed:
    """`raw` with the bytes already read from its front (the magic number) put back."""

    def __init__(self, prefix: bytes, raw: Readable) -> None:
        self._prefix = prefix
        self._raw = raw

    def read(self, size: int = -1) -> bytes:
        if not self._prefix:
            return self._raw.read(size)
        head, self._prefix = self._prefix, b""
        if size < 0:
            return head + self._raw.read()
        if size <= len(head):
            head, self._prefix = head[:size], head[size:]
            return head
        return head + self._raw.read(size - len(head))


def _empty(directory: Path) -> None:
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
