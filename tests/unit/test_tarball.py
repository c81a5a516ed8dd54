"""The sample tarball validator and safe extraction, against crafted good and bad archives."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from capillary.contract import tarball as contract
from capillary.contract.tarball import Limits, TarballError, safe_extract, validate_tarball
from capillary.contract.vocabulary import shown
from tests.support.samples import (
    CNA_HEADERS,
    CNA_ROWS,
    bgzip_bytes,
    cna_text,
    long_line_vcf,
    make_sample_tarball,
    make_vcf,
    options_toml,
    vcf_text,
)

TOML = options_toml({"genome_assembly": "grch38", "assay": "WGS"}).encode()


def _info(name: str, **attrs: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def build_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """A .tar.gz with exactly these headers (and contents), unchecked: the crafting tool."""
    with tarfile.open(path, "w:gz") as archive:
        for info, content in members:
            if content is not None:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
            else:
                archive.addfile(info)
    return path


@pytest.fixture
def vcf(tmp_path: Path) -> bytes:
    return make_vcf(tmp_path / "scratch" / "t.vcf.gz", n_variants=20).read_bytes()


def good_members(vcf: bytes) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    return [(_info("s/tumor.vcf.gz"), vcf), (_info("s/s.toml"), TOML)]


def codes(path: Path, limits: Limits | None = None) -> list[str]:
    return [p.code for p in validate_tarball(path, limits).problems]


def assert_nothing_outside(root: Path, dest: Path) -> None:
    """Every file under `root` is either the tarball, the scratch dir, or inside `dest`."""
    for found in root.rglob("*"):
        if found.is_file() and dest not in found.parents and found.suffixes[-2:] != [".tar", ".gz"]:
            assert "scratch" in found.parts, f"written outside the destination: {found}"


def test_a_realistic_sample_validates_and_extracts(tmp_path: Path) -> None:
    # GIVEN a sample built like a user's, with its VCF and a CNA file
    tarball = make_sample_tarball(tmp_path, cna=True)
    # WHEN validated THEN it is ok, and its parts are recognised
    result = validate_tarball(tarball)
    assert result.ok, result.problems
    assert len(result.vcfs) == 1 and result.toml and result.cna
    assert result.assembly == "grch38" and result.options["assay"] == "WGS"
    assert result.as_dict()["ok"] is True
    # WHEN extracted THEN the files are there, private, and hashed as they are on disk
    sample = safe_extract(tarball, tmp_path / "out")
    assert [p.name for p in sample.vcfs] == ["tumor1.vcf.gz"] and sample.cna is not None
    for member, digest in sample.sha256.items():
        path = sample.root / member
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
        assert path.stat().st_mode & 0o077 == 0
    assert sample.options["genome_assembly"] == "grch38"


@pytest.mark.parametrize(
    ("member", "code"),
    [
        (_info("../evil.txt"), "path_traversal"),
        (_info("s/../../evil.txt"), "path_traversal"),
        (_info("/tmp/capillary-evil.txt"), "absolute_path"),
        (_info("s/link", type=tarfile.SYMTYPE, linkname="../../etc/passwd"), "symlink_escape"),
        (_info("s/abs", type=tarfile.SYMTYPE, linkname="/etc/passwd"), "symlink_escape"),
        (_info("s/hard", type=tarfile.LNKTYPE, linkname="../outside"), "hardlink_escape"),
        (_info("s/hardabs", type=tarfile.LNKTYPE, linkname="/etc/shadow"), "hardlink_escape"),
        (_info("s/inner", type=tarfile.SYMTYPE, linkname="tumor.vcf.gz"), "link"),
        (_info("s/dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3), "special_file"),
        (_info("s/fifo", type=tarfile.FIFOTYPE), "special_file"),
    ],
    ids=lambda v: v.name if isinstance(v, tarfile.TarInfo) else v,
)
# Workers run Debian bookworm's Python 3.11.2, which predates tarfile's data filter (3.11.4):
# our own rules must refuse every case on their own.
@pytest.mark.parametrize("stdlib_filter", [True, False], ids=["data-filter", "no-data-filter"])
def test_unsafe_members_are_refused_and_nothing_escapes(
    tmp_path: Path,
    vcf: bytes,
    member: tarfile.TarInfo,
    code: str,
    stdlib_filter: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not stdlib_filter:
        monkeypatch.delattr(tarfile, "data_filter")
    # GIVEN a valid sample with one unsafe member added
    content = b"pwned\n" if member.isfile() else None
    tarball = build_tar(tmp_path / "s.tar.gz", [*good_members(vcf), (member, content)])
    # WHEN validated THEN exactly that rule is named, for that member
    problems = validate_tarball(tarball).problems
    assert [p.code for p in problems] == [code]
    assert problems[0].member in (member.name, shown(member.name))
    # WHEN extracted THEN it raises, the destination is left empty and nothing is written outside it
    dest = tmp_path / "deep" / "dest"
    with pytest.raises(TarballError) as caught:
        safe_extract(tarball, dest)
    assert code in [p.code for p in caught.value.problems]
    assert member.name in str(caught.value)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "deep" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not Path("/tmp/capillary-evil.txt").exists()
    assert_nothing_outside(tmp_path, dest)


def test_a_realistic_sample_extracts_without_the_data_filter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN Python 3.11.2's tarfile, which has no data filter (the crash the bake smoke test found)
    monkeypatch.delattr(tarfile, "data_filter")
    tarball = make_sample_tarball(tmp_path, batch="b1", kind="somatic")
    # WHEN extracted THEN it works through our own checks
    sample = safe_extract(tarball, tmp_path / "ws")
    assert [p.name for p in sample.vcfs] and sample.toml.exists()


def test_a_gzip_bomb_is_refused_from_its_headers(tmp_path: Path, vcf: bytes) -> None:
    # GIVEN 32 MiB of zeros hidden in a member, compressing about 1000:1
    bomb = b"\0" * (32 << 20)
    tarball = build_tar(tmp_path / "s.tar.gz", [*good_members(vcf), (_info("s/notes.tsv"), bomb)])
    assert tarball.stat().st_size < 1 << 20
    # WHEN validated with the default ratio limit (floor lowered so the test stays small)
    problems = validate_tarball(tarball, Limits(ratio_floor_bytes=1 << 20)).problems
    # THEN the ratio rule names it
    assert [p.code for p in problems] == ["compression_ratio"]
    assert "decompression bomb" in problems[0].message


def test_member_and_total_size_limits(tmp_path: Path, vcf: bytes) -> None:
    tarball = build_tar(tmp_path / "s.tar.gz", good_members(vcf))
    assert codes(tarball, Limits(max_member_bytes=100)) == ["member_too_large"]
    assert codes(tarball, Limits(max_total_bytes=len(vcf) + 10)) == ["total_too_large"]


def test_too_many_members(tmp_path: Path, vcf: bytes) -> None:
    # GIVEN a sample with 10 index files besides its VCF and TOML
    extra = [(_info(f"s/t{n}.vcf.gz.csi"), b"x") for n in range(10)]
    tarball = build_tar(tmp_path / "s.tar.gz", [*good_members(vcf), *extra])
    # WHEN validated with a limit of 5 members THEN the count rule fires once
    assert codes(tarball, Limits(max_members=5)) == ["too_many_members"]


def test_a_vcf_that_is_gzip_but_not_bgzip(tmp_path: Path) -> None:
    plain = make_vcf(tmp_path / "scratch" / "p.vcf.gz", bgzip=False)
    tarball = build_tar(
        tmp_path / "s.tar.gz", [(_info("s/t.vcf.gz"), plain.read_bytes()), (_info("s/s.toml"), TOML)]
    )
    problems = validate_tarball(tarball).problems
    assert [p.code for p in problems] == ["vcf_not_bgzipped"]
    assert "bgzip" in problems[0].message and problems[0].member == "s/t.vcf.gz"


def test_an_uncompressed_vcf(tmp_path: Path) -> None:
    text = vcf_text().encode()
    tarball = build_tar(
        tmp_path / "s.tar.gz",
        [(_info("s/t.vcf.gz"), text), (_info("s/u.vcf"), text), (_info("s/s.toml"), TOML)],
    )
    assert sorted(codes(tarball)) == ["vcf_not_bgzipped", "vcf_not_gzip"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("##fileformat=VCFv4.2\nchr1\t1\t.\tA\tC\t.\tPASS\t.\n", "records before its '#CHROM'"),
        ("##fileformat=VCFv4.2\n##source=x\n", "no '#CHROM' header line"),
        ("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n", "'##fileformat=VCF'"),
        ("##fileformat=VCFv4.2\n#CHROM POS ID\n", "malformed '#CHROM' line"),
    ],
)
def test_vcf_header_rules(tmp_path: Path, text: str, message: str) -> None:
    vcf = make_vcf(tmp_path / "scratch" / "h.vcf.gz", text=text).read_bytes()
    tarball = build_tar(tmp_path / "s.tar.gz", [(_info("s/t.vcf.gz"), vcf), (_info("s/s.toml"), TOML)])
    problems = validate_tarball(tarball).problems
    assert [p.code for p in problems] == ["vcf_header"]
    assert message in problems[0].message


def test_problems_never_quote_vcf_contents(tmp_path: Path) -> None:
    # GIVEN a VCF whose first line is a variant carrying a recognisable string
    secret = "chr7\t140753336\tPATIENT-SECRET-ID\tA\tT\t99\tPASS\t.\n"
    vcf = make_vcf(tmp_path / "scratch" / "x.vcf.gz", text=secret).read_bytes()
    tarball = build_tar(tmp_path / "s.tar.gz", [(_info("s/t.vcf.gz"), vcf), (_info("s/s.toml"), TOML)])
    # WHEN validated THEN the problem is named, but no part of the data appears in any output
    result = validate_tarball(tarball)
    assert not result.ok
    assert "PATIENT-SECRET-ID" not in repr(result.as_dict()) and "140753336" not in repr(result.as_dict())


def test_wrong_assembly_contig_lengths(tmp_path: Path) -> None:
    # GIVEN a GRCh37 VCF (b37 names and lengths) in a sample whose TOML says grch38
    tarball = make_sample_tarball(tmp_path, assembly="grch37", options={"genome_assembly": "grch38"})
    problems = validate_tarball(tarball).problems
    # THEN the assembly rule fires and names both assemblies
    assert {p.code for p in problems} == {"vcf_wrong_assembly"}
    assert any("grch37 contig lengths" in p.message and "'grch38'" in p.message for p in problems)
    # AND the same VCF under a grch37 TOML is fine
    assert validate_tarball(make_sample_tarball(tmp_path, assembly="grch37")).ok


def test_wrong_assembly_contig_name_without_lengths(tmp_path: Path) -> None:
    # GIVEN a VCF with no ##contig lengths whose records sit on a GRCh37-only decoy contig
    text = (
        "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        "1\t100\t.\tA\tC\t50\tPASS\t.\nGL000192.1\t100\t.\tA\tC\t50\tPASS\t.\n"
    )
    vcf = make_vcf(tmp_path / "scratch" / "d.vcf.gz", text=text).read_bytes()
    tarball = build_tar(tmp_path / "s.tar.gz", [(_info("s/t.vcf.gz"), vcf), (_info("s/s.toml"), TOML)])
    problems = validate_tarball(tarball).problems
    assert [p.code for p in problems] == ["vcf_wrong_assembly"]
    assert "exist only in grch37 (GL000192.1)" in problems[0].message


def test_mixed_contig_naming(tmp_path: Path) -> None:
    text = (
        "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        "chr1\t100\t.\tA\tC\t50\tPASS\t.\n2\t100\t.\tA\tC\t50\tPASS\t.\n"
    )
    vcf = make_vcf(tmp_path / "scratch" / "m.vcf.gz", text=text).read_bytes()
    tarball = build_tar(tmp_path / "s.tar.gz", [(_info("s/t.vcf.gz"), vcf), (_info("s/s.toml"), TOML)])
    assert codes(tarball) == ["vcf_contig_naming"]


def test_either_chr_convention_is_accepted(tmp_path: Path) -> None:
    # PCGR normalises the chr prefix itself: grch38 with bare names and correct lengths is fine
    text = vcf_text(assembly="grch38").replace("chr", "")
    vcf = make_vcf(tmp_path / "scratch" / "n.vcf.gz", text=text).read_bytes()
    tarball = build_tar(tmp_path / "s.tar.gz", [(_info("s/t.vcf.gz"), vcf), (_info("s/s.toml"), TOML)])
    assert codes(tarball) == []


def test_bad_toml(tmp_path: Path) -> None:
    tarball = make_sample_tarball(tmp_path, toml_text='genome_assembly = "grch38\nassay = WGS\n')
    problems = validate_tarball(tarball).problems
    assert [p.code for p in problems] == ["toml_invalid"]
    assert "does not parse as TOML" in problems[0].message and problems[0].member.endswith(".toml")


def test_unknown_and_invalid_options_are_each_named(tmp_path: Path) -> None:
    tarball = make_sample_tarball(
        tmp_path, options={"tumour_site": 9, "tumor_purity": 1.5, "assay": "RNA", "input_vcf": "x"}
    )
    problems = validate_tarball(tarball).problems
    messages = {p.message for p in problems}
    assert "unknown PCGR option 'tumour_site'" in messages
    assert any(m.startswith("tumor_purity must be within (0, 1]") for m in messages)
    assert any(m.startswith("assay must be one of 'WGS', 'WES', 'TARGETED'") for m in messages)
    assert "input_vcf is not a sample option (a path: the engine sets it)" in messages
    assert len(problems) == 4


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    # GIVEN a sample that breaks four rules at once
    plain = make_vcf(tmp_path / "scratch" / "p.vcf.gz", bgzip=False).read_bytes()
    tarball = build_tar(
        tmp_path / "s.tar.gz",
        [
            (_info("s/t.vcf.gz"), plain),
            (_info("../up.txt"), b"x"),
            (_info("s/README.md"), b"hello"),
            (_info("s/s.toml"), b'genome_assembly = "hg19"\n'),
        ],
    )
    assert sorted(codes(tarball)) == [
        "option_choice",
        "path_traversal",
        "unexpected_member",
        "vcf_not_bgzipped",
    ]


def test_missing_parts(tmp_path: Path, vcf: bytes) -> None:
    only_vcf = build_tar(tmp_path / "a.tar.gz", [(_info("s/t.vcf.gz"), vcf)])
    assert codes(only_vcf) == ["no_toml"]
    only_toml = build_tar(tmp_path / "b.tar.gz", [(_info("s/s.toml"), TOML)])
    assert codes(only_toml) == ["no_vcf"]
    two_tomls = build_tar(tmp_path / "c.tar.gz", [*good_members(vcf), (_info("s/other.toml"), TOML)])
    assert codes(two_tomls) == ["multiple_toml"]
    missing_assembly = build_tar(
        tmp_path / "d.tar.gz", [(_info("s/t.vcf.gz"), vcf), (_info("s/s.toml"), b"")]
    )
    assert codes(missing_assembly) == ["option_missing"]


def test_duplicate_member(tmp_path: Path, vcf: bytes) -> None:
    tarball = build_tar(tmp_path / "s.tar.gz", [*good_members(vcf), (_info("s/./tumor.vcf.gz"), vcf)])
    assert codes(tarball) == ["duplicate_member"]


def test_not_a_tarball(tmp_path: Path) -> None:
    text = tmp_path / "x.tar.gz"
    text.write_text("hello")
    assert codes(text) == ["not_gzip"]
    gz = tmp_path / "y.tar.gz"
    gz.write_bytes(gzip.compress(b"not a tar archive at all" * 100))
    assert codes(gz) == ["corrupt_archive"]


def test_extraction_refuses_a_non_empty_destination(tmp_path: Path) -> None:
    tarball = make_sample_tarball(tmp_path)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "other-sample.vcf.gz").write_bytes(b"x")
    with pytest.raises(TarballError, match="not empty"):
        safe_extract(tarball, dest)
    assert (dest / "other-sample.vcf.gz").read_bytes() == b"x"


def test_a_large_vcf_is_streamed_not_held_in_memory(tmp_path: Path) -> None:
    import tracemalloc

    # GIVEN a sample whose VCF inflates to ~16 MB
    tarball = make_sample_tarball(tmp_path, n_variants=350_000)
    # WHEN validated and extracted THEN peak Python memory stays far below the VCF's size
    tracemalloc.start()
    try:
        assert validate_tarball(tarball).ok
        safe_extract(tarball, tmp_path / "out")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    [vcf] = (tmp_path / "out").rglob("*.vcf.gz")
    with gzip.open(vcf) as stream:
        inflated = sum(len(chunk) for chunk in iter(lambda: stream.read(1 << 20), b""))
    assert inflated > 15_000_000
    assert peak < inflated / 3, f"peak {peak} bytes for a {inflated}-byte VCF"


# -- the VCF stream: inflated whole, parsed at its head, lines capped ---------------------------


def _one_vcf(tmp_path: Path, vcf: bytes, name: str = "s/t.vcf.gz") -> Path:
    return build_tar(tmp_path / "s.tar.gz", [(_info(name), vcf), (_info("s/s.toml"), TOML)])


@pytest.fixture
def long_vcf(tmp_path: Path) -> bytes:
    """A real bgzipped VCF of 20,000 records: far more than the validator parses."""
    vcf = make_vcf(tmp_path / "scratch" / "long.vcf.gz", n_variants=20_000).read_bytes()
    assert vcf.endswith(contract.BGZF_EOF)
    return vcf


def test_a_vcf_truncated_after_the_records_checked_is_refused(tmp_path: Path, long_vcf: bytes) -> None:
    # GIVEN the VCF cut short in its last tenth, long after record VCF_RECORDS_CHECKED
    assert contract.VCF_RECORDS_CHECKED < 20_000
    cut = long_vcf[: len(long_vcf) * 9 // 10]
    # WHEN validated THEN the truncation is named, for that member
    problems = validate_tarball(_one_vcf(tmp_path, cut)).problems
    assert [(p.code, p.member) for p in problems] == [("vcf_truncated", "s/t.vcf.gz")]
    assert "truncated" in problems[0].message
    # AND extraction refuses it too
    with pytest.raises(TarballError, match="truncated"):
        safe_extract(_one_vcf(tmp_path, cut), tmp_path / "out")


def test_a_vcf_without_its_bgzf_eof_block_is_refused(tmp_path: Path, long_vcf: bytes) -> None:
    # GIVEN the VCF with its 28-byte end-of-file block removed (a copy cut at a block boundary)
    cut = long_vcf[: -len(contract.BGZF_EOF)]
    # WHEN validated THEN the missing block is named, and the reason says bgzip writes one
    problems = validate_tarball(_one_vcf(tmp_path, cut)).problems
    assert [(p.code, p.member) for p in problems] == [("vcf_no_eof_block", "s/t.vcf.gz")]
    assert "`bgzip` always writes" in problems[0].message


def test_a_vcf_corrupt_past_the_records_checked_is_refused(tmp_path: Path, long_vcf: bytes) -> None:
    # GIVEN one flipped byte in the VCF's last tenth (its blocks' CRCs no longer match)
    at = len(long_vcf) * 9 // 10
    damaged = long_vcf[:at] + bytes([long_vcf[at] ^ 0xFF]) + long_vcf[at + 1 :]
    # WHEN validated THEN it is refused as corrupt
    assert codes(_one_vcf(tmp_path, damaged)) == ["vcf_corrupt"]


def test_concatenated_bgzip_files_are_one_valid_vcf(tmp_path: Path, long_vcf: bytes) -> None:
    # GIVEN two bgzipped VCFs joined with `cat` (valid BGZF: htslib reads it as one stream)
    joined = long_vcf + bgzip_bytes(b"chr1\t100\t.\tA\tC\t50\tPASS\t.\n")
    # WHEN validated THEN it is accepted: every gzip member is inflated and the EOF block is last
    assert codes(_one_vcf(tmp_path, joined)) == []


def test_a_64_mib_line_is_refused_at_once_without_being_held(tmp_path: Path) -> None:
    import tracemalloc

    # GIVEN a tiny tarball whose VCF inflates to a 64 MiB second line
    tarball = _one_vcf(tmp_path, long_line_vcf(64 << 20))
    assert tarball.stat().st_size < 16 << 10
    # WHEN validated
    tracemalloc.start()
    try:
        problems = validate_tarball(tarball).problems
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # THEN the line cap is named, for that member, and the line was never held whole
    assert [(p.code, p.member) for p in problems] == [("vcf_line_too_long", "s/t.vcf.gz")]
    assert "1 MiB" in problems[0].message
    assert peak < 8 << 20, f"peak {peak} bytes"


@pytest.mark.parametrize("where", ["header", "record"])
def test_a_line_just_over_the_cap_is_refused_and_one_at_it_is_not(tmp_path: Path, where: str) -> None:
    header = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    limit = contract.VCF_LINE_MAX_BYTES

    def vcf_with(length: int) -> bytes:
        if where == "header":
            line = "##comment=" + "x" * (length - len("##comment="))
            return bgzip_bytes(f"##fileformat=VCFv4.2\n{line}\n{header.split(chr(10))[1]}\n".encode())
        fixed = "chr1\t100\t.\tA\tC\t50\tPASS\t"
        return bgzip_bytes(f"{header}{fixed}{'x' * (length - len(fixed))}\n".encode())

    # GIVEN a VCF with one line of exactly the cap, and one a byte over it
    assert codes(_one_vcf(tmp_path, vcf_with(limit))) == []
    assert codes(_one_vcf(tmp_path, vcf_with(limit + 1))) == ["vcf_line_too_long"]


# -- one VCF per sample: the rule has one home ---------------------------------------------------


def test_two_vcfs_are_refused_by_validate_and_extract(tmp_path: Path) -> None:
    # GIVEN a sample with two VCFs (each valid on its own)
    tarball = make_sample_tarball(tmp_path, vcfs=2)
    # WHEN validated THEN the one-VCF rule is named, with the count
    problems = validate_tarball(tarball).problems
    assert [p.code for p in problems] == ["multiple_vcf"]
    assert "holds 2 .vcf.gz files; a sample holds exactly one VCF" in problems[0].message
    # AND extraction refuses it, leaving nothing behind
    dest = tmp_path / "out"
    with pytest.raises(TarballError, match="exactly one VCF"):
        safe_extract(tarball, dest)
    assert list(dest.iterdir()) == []


def test_the_vcf_count_rule_is_exposed_for_the_engines() -> None:
    assert contract.MAX_VCFS == 1
    assert contract.vcf_count_problem(1) is None
    none, two = contract.vcf_count_problem(0), contract.vcf_count_problem(2)
    assert none is not None and none.code == "no_vcf"
    assert two is not None and two.code == "multiple_vcf" and "2 .vcf.gz" in two.message


# -- the copy-number file: the columns the release expects ----------------------------------------


def _with_cna(tmp_path: Path, vcf: bytes, content: bytes, name: str = "s/s.cna.tsv") -> Path:
    return build_tar(tmp_path / "c.tar.gz", [*good_members(vcf), (_info(name), content)])


def test_the_current_release_major_is_the_catalogues(tmp_path: Path) -> None:
    from capillary.release.catalogue import load_catalogue

    current = load_catalogue().current.version
    assert int(current.split(".")[0]) == contract.CURRENT_RELEASE_MAJOR
    assert contract.release_major(None) == contract.release_major(current)


@pytest.mark.parametrize("major", [1, 2])
def test_each_release_takes_its_own_cna_columns(tmp_path: Path, vcf: bytes, major: int) -> None:
    release = {1: "1.4.1", 2: "2.3.2"}[major]
    other = 3 - major
    # GIVEN a CNA file in the layout of this release major WHEN validated for that release THEN ok
    mine = _with_cna(tmp_path, vcf, cna_text(major).encode())
    assert validate_tarball(mine, release=release).ok
    assert safe_extract(mine, tmp_path / f"out{major}", release=release).cna is not None
    # AND the other release's layout is refused, naming the columns this release requires
    theirs = _with_cna(tmp_path, vcf, cna_text(other).encode())
    problems = validate_tarball(theirs, release=release).problems
    assert [(p.code, p.member) for p in problems] == [("cna_invalid", "s/s.cna.tsv")]
    assert all(column in problems[0].message for column in contract.CNA_COLUMNS[major])


def test_the_default_release_is_the_current_one(tmp_path: Path, vcf: bytes) -> None:
    # GIVEN a PCGR 1.x segment file WHEN validated without a release THEN 2.x's columns are asked for
    problems = validate_tarball(_with_cna(tmp_path, vcf, cna_text(1).encode())).problems
    assert [p.code for p in problems] == ["cna_invalid"]
    assert "nMajor, nMinor" in problems[0].message


def test_an_unknown_release_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"PCGR release '9\.0\.0'"):
        validate_tarball(tmp_path / "none.tar.gz", release="9.0.0")


H2, R2 = CNA_HEADERS[2], CNA_ROWS[2]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (f"{H2}\n".encode() + b"chr7\t1\t2\t\xff\t1\n", "line 2 is not UTF-8"),
        (b"", "is empty"),
        (f"{H2}\n".encode(), "has no segments"),
        (f"{H2.replace(chr(9), ',')}\n{R2.replace(chr(9), ',')}\n".encode(), "not tab-separated"),
        (f"\ufeff{H2}\n{R2}\n".encode(), "byte-order mark"),
        (f"{H2.replace('nMinor', 'minor')}\n{R2}\n".encode(), "lacks the column(s) nMinor"),
        (f"{H2}\tnMajor\n{R2}\t1\n".encode(), "names column 'nMajor' more than once"),
        (f"{H2}\n{R2}\tx\n".encode(), "line 2 has 6 tab-separated fields; its header has 5"),
        (f"{H2}\n{R2}\n\tchr7\t1\t2\t3\t4\n".encode(), "line 3 has 6"),
        (f"{H2}\n\t1\t2\t1\t1\n".encode(), "line 2: Chromosome is empty"),
        (f"{H2}\n{R2.replace('55019017', '5.5e7')}\n".encode(), "line 2: Start must be a positive integer"),
        (f"{H2}\n{R2.replace('55019017', '0')}\n".encode(), "Start must be a positive integer"),
        (f"{H2}\n{R2.replace('55211628', '-4')}\n".encode(), "End must be a positive integer"),
        (f"{H2}\n{R2.replace('55211628', '55019016')}\n".encode(), "End is before Start"),
        (f"{H2}\nchr7\t1\t2\tNA\t1\n".encode(), "nMajor must be a number"),
        (f"{H2}\nchr7\t1\t2\tnan\t1\n".encode(), "nMajor must be a number"),
        (f"{H2}\nchr7\t1\t2\t1e999\t1\n".encode(), "nMajor must be a number"),
        (f"{H2}\nchr7\t1\t2\t2\t-1\n".encode(), "nMinor is a copy number and cannot be negative"),
        (f"{H2}\n{'chr7' * 20_000}\t1\t2\t2\t1\n".encode(), "longer than 64 KiB"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_cna_rules(tmp_path: Path, vcf: bytes, content: bytes, message: str) -> None:
    # GIVEN a sample whose CNA file breaks one rule WHEN validated THEN that rule is named, for it
    problems = validate_tarball(_with_cna(tmp_path, vcf, content)).problems
    assert [(p.code, p.member) for p in problems] == [("cna_invalid", "s/s.cna.tsv")]
    assert message in problems[0].message


def test_random_bytes_are_not_a_cna_file(tmp_path: Path, vcf: bytes) -> None:
    import random

    # GIVEN random bytes named like a CNA file (accepted before the file was checked at all)
    noise = random.Random(15).randbytes(4096)  # noqa: S311 - test data
    # WHEN validated THEN they are refused as a CNA file
    assert codes(_with_cna(tmp_path, vcf, noise)) == ["cna_invalid"]


def test_cna_files_people_write_are_accepted(tmp_path: Path, vcf: bytes) -> None:
    # GIVEN CRLF line ends, blank lines, extra columns and fractional copy numbers (PCGR rounds)
    text = f"{H2}\tsource\r\n\r\n{R2}\tpurple\r\nchr8\t10\t10\t2.6\t0.0\tpurple\r\n"
    assert codes(_with_cna(tmp_path, vcf, text.encode())) == []


def test_cna_problems_never_quote_its_values(tmp_path: Path, vcf: bytes) -> None:
    problems = validate_tarball(_with_cna(tmp_path, vcf, f"{H2}\nchr7\t1\t2\tSECRET-77\t1\n".encode()))
    assert not problems.ok and "SECRET-77" not in repr(problems.as_dict())


def test_only_the_first_rows_are_checked(tmp_path: Path, vcf: bytes) -> None:
    # GIVEN a bad row after CNA_ROWS_CHECKED good ones WHEN validated THEN it is not read (bounded)
    rows = [R2] * contract.CNA_ROWS_CHECKED + ["chr7\t1\t2\tbad\t1"]
    assert codes(_with_cna(tmp_path, vcf, cna_text(2, rows).encode())) == []


# -- member names: the safe vocabulary, shown escaped ---------------------------------------------


@pytest.mark.parametrize(
    "name", ["s/tu\nmor.vcf.gz", "s/tumor;rm -rf ~.vcf.gz", "s/$(id).toml", "s/a b.tsv", "s/.hidden.vcf.gz"]
)
def test_member_names_outside_the_vocabulary_are_refused_and_shown_escaped(
    tmp_path: Path, vcf: bytes, name: str
) -> None:
    # GIVEN a valid sample with one more member whose name could reach a shell
    tarball = build_tar(tmp_path / "s.tar.gz", [*good_members(vcf), (_info(name), b"x")])
    # WHEN validated THEN the vocabulary rule is named, and the name is printed escaped
    problems = validate_tarball(tarball).problems
    assert [p.code for p in problems] == ["bad_name"]
    assert problems[0].member == shown(name)
    assert "\n" not in str(problems[0])
    with pytest.raises(TarballError) as caught:
        safe_extract(tarball, tmp_path / "out")
    assert "\n  - " in str(caught.value) and "tu\nmor" not in str(caught.value)
