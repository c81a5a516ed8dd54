"""Offline validation and safe extraction of a sample tarball, through one code path.

A sample tarball holds one or more bgzipped VCFs (`.vcf.gz`, optional `.tbi`/`.csi` indexes), one
`.toml` with the sample's PCGR options (see `capillary.contract.pcgr_options`) and optionally one
copy-number `.tsv`. `validate_tarball` and `safe_extract` both stream the archive once through
`_Scanner`: every member is checked (path, type, size, count, compression ratio) before a byte of
it is read, and extraction additionally passes each member through `tarfile.data_filter` as the
last line of defence. Problems are collected, not raised one at a time, so a user sees all of
them. Messages name the member and the rule, never the data inside it.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
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

__all__ = [
    "ExtractedSample",
    "Limits",
    "Problem",
    "Readable",
    "TarballError",
    "Validation",
    "safe_extract",
    "safe_extract_stream",
    "validate_tarball",
]

GIB = 1 << 30
MIB = 1 << 20
CHUNK = 1 << 20
BGZF_MAGIC = b"\x1f\x8b\x08\x04"
GZIP_MAGIC = b"\x1f\x8b"
# How much of a VCF is decompressed to check it: the header and the first records. The rest is
# streamed (hashed, copied) but never inflated, so a multi-GB VCF costs one read, not a parse.
VCF_HEADER_MAX_BYTES = 32 * MIB
VCF_RECORDS_CHECKED = 5000
TOML_MAX_BYTES = 1 * MIB


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
# VCF inspection (streaming; only the header and the first records are inflated)


class _VcfInspector:
    """Fed the raw bytes of one `.vcf.gz` member in order; collects its header facts."""

    def __init__(self, member: str) -> None:
        self.member = member
        self.problems: list[Problem] = []
        self.first = b""
        self.bgzf_checked = False
        self.done = False
        self.decompressor = zlib.decompressobj(wbits=31)
        self.text = b""
        self.inflated = 0
        self.fileformat = False
        self.chrom_line = False
        self.records = 0
        self.contig_lengths: dict[str, int] = {}
        self.contigs_seen: set[str] = set()
        self.reference: str | None = None

    def feed(self, data: bytes) -> None:
        if self.done:
            return
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
        if not self.done:
            self._inflate(b"", final=True)
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

    def _inflate(self, data: bytes, final: bool = False) -> None:
        try:
            while data:
                out = self.decompressor.decompress(data, CHUNK)
                self.inflated += len(out)
                self.text += out
                data = self.decompressor.unconsumed_tail
                if self.decompressor.eof:
                    # BGZF is a series of gzip members: start the next one on the leftovers.
                    data = self.decompressor.unused_data + data
                    self.decompressor = zlib.decompressobj(wbits=31)
                self._consume_lines(final=False)
                if self.done:
                    return
        except zlib.error:
            self._fail("vcf_corrupt", "is not valid gzip data (truncated or corrupt)")
            return
        if final:
            self._consume_lines(final=True)
        elif self.inflated > VCF_HEADER_MAX_BYTES and not self.chrom_line:
            self._fail("vcf_header", f"has no '#CHROM' line in its first {VCF_HEADER_MAX_BYTES // MIB} MiB")

    def _consume_lines(self, final: bool) -> None:
        lines = self.text.split(b"\n")
        self.text = b"" if final else lines.pop()
        for raw in lines:
            if self.done:
                return
            line = raw.rstrip(b"\r")
            if not line:
                continue
            self._line(line)

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
        chrom = line.split(b"\t", 1)[0].decode("utf-8", "replace")
        self.contigs_seen.add(chrom)
        self.records += 1
        if self.records >= VCF_RECORDS_CHECKED:
            self.done = True

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
# The scanner: one pass, used by both validate_tarball and safe_extract


def _member_kind(name: str) -> str:
    base = posixpath.basename(name)
    if base.startswith("."):
        return "hidden"
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
    def __init__(self, path: Path, limits: Limits, dest: Path | None) -> None:
        self.path = path
        self.limits = limits
        self.dest = dest
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
                    member.name,
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
                    member.name,
                )
            )
            return False
        return True

    def _path_problem(self, member: tarfile.TarInfo) -> Problem | None:
        name = member.name
        if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
            return Problem("absolute_path", "has an absolute path", name)
        if ".." in name.replace("\\", "/").split("/"):
            return Problem("path_traversal", "has a '..' component (path traversal)", name)
        if "\x00" in name or any(ord(c) < 32 for c in name):
            return Problem("bad_name", "has control characters in its name", name)
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
        if kind in ("hidden", "other"):
            self.problems.append(
                Problem(
                    "unexpected_member",
                    "is not part of a sample (allowed: .vcf.gz, .vcf.gz.tbi/.csi, one .toml, one .tsv)",
                    name,
                )
            )
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
        elif kind == "cna":
            self.cnas.append(name)

    def _parse_toml(self, name: str, data: bytes) -> None:
        try:
            options = tomllib.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            self.problems.append(Problem("toml_invalid", "is not UTF-8 text", name))
            return
        except tomllib.TOMLDecodeError as exc:
            self.problems.append(Problem("toml_invalid", f"does not parse as TOML: {exc}", name))
            return
        self.options = options
        for problem in validate_options(options):
            self.problems.append(
                Problem(problem.code, problem.message, f"{name}: {problem.member or 'options'}")
            )

    def _sample_checks(self) -> None:
        if not self.vcfs and not any(p.code.startswith("vcf") for p in self.problems):
            self.problems.append(Problem("no_vcf", "holds no bgzipped VCF (.vcf.gz)"))
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


def validate_tarball(path: Path, limits: Limits | None = None) -> Validation:
    """Check a sample tarball without writing anything; every problem is reported."""
    scanner = _Scanner(Path(path), limits or Limits(), dest=None)
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


def safe_extract(path: Path, dest: Path, limits: Limits | None = None) -> ExtractedSample:
    """Unpack a sample tarball into `dest` (created, must be empty) after the same checks.

    On any problem, whatever was written is removed and `TarballError` lists every problem.
    Nothing is ever written outside `dest`.
    """
    return _extract(Path(path), Path(dest), limits, None, 0)


class Readable(Protocol):
    """What `safe_extract_stream` reads: `read(size)` only, front to back."""

    def read(self, size: int = -1, /) -> bytes: ...


def safe_extract_stream(
    fileobj: Readable, dest: Path, compressed_size: int, limits: Limits | None = None
) -> ExtractedSample:
    """`safe_extract` of a tarball read once from `fileobj` (a download, say), front to back.

    The same scan and the same checks; `compressed_size` (the stream's length, e.g. its
    Content-Length) stands in for the file size the compression-ratio limit is judged against.
    The stream is read up to the archive's end-of-archive marker: a caller hashing it reads the
    rest itself.
    """
    return _extract(None, Path(dest), limits, fileobj, compressed_size)


def _extract(
    path: Path | None,
    dest: Path,
    limits: Limits | None,
    fileobj: Readable | None,
    compressed_size: int,
) -> ExtractedSample:
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise TarballError([Problem("dest_not_empty", f"extraction directory {dest} is not empty")], path)
    # A stream has no path: the scanner reads only `fileobj`.
    scanner = _Scanner(path if path is not None else Path("-"), limits or Limits(), dest=dest)
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
