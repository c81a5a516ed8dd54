"""What distinguishes GRCh37 from GRCh38 in a VCF: primary chromosome lengths and tell-tale contigs.

PCGR (`--genome_assembly grch37|grch38`) accepts chromosome names with or without the `chr`
prefix and normalises them itself, so the prefix alone does not identify the assembly. What does:
the `##contig=<ID=…,length=…>` lengths of the primary chromosomes (different in every build),
contigs that exist in one build only, and the `##reference=` line. The tarball validator checks
those against the assembly the sample's TOML declares.
"""

from __future__ import annotations

import re

# The genome builds PCGR knows (`--genome_assembly`), in PCGR's own order: the one list of them.
ASSEMBLIES: tuple[str, ...] = ("grch37", "grch38")

# Primary assembly lengths (GRC releases; identical in the UCSC hg19/hg38 and Ensembl/b37 flavours).
LENGTHS: dict[str, dict[str, int]] = {
    "grch37": {
        "1": 249250621, "2": 243199373, "3": 198022430, "4": 191154276, "5": 180915260,
        "6": 171115067, "7": 159138663, "8": 146364022, "9": 141213431, "10": 135534747,
        "11": 135006516, "12": 133851895, "13": 115169878, "14": 107349540, "15": 102531392,
        "16": 90354753, "17": 81195210, "18": 78077248, "19": 59128983, "20": 63025520,
        "21": 48129895, "22": 51304566, "X": 155270560, "Y": 59373566,
    },
    "grch38": {
        "1": 248956422, "2": 242193529, "3": 198295559, "4": 190214555, "5": 181538259,
        "6": 170805979, "7": 159345973, "8": 145138636, "9": 138394717, "10": 133797422,
        "11": 135086622, "12": 133275309, "13": 114364328, "14": 107043718, "15": 101991189,
        "16": 90338345, "17": 83257441, "18": 80373285, "19": 58617616, "20": 64444167,
        "21": 46709983, "22": 50818468, "X": 156040895, "Y": 57227415,
    },
}  # fmt: skip

# Contig names that exist in one build only (after removing a `chr` prefix).
_ONLY_IN: dict[str, re.Pattern[str]] = {
    "grch37": re.compile(r"^(GL0\d{5}(\.1)?|hs37d5|NC_007605|Un_gl\d+|\d+_gl\d+_random)$"),
    "grch38": re.compile(
        r"^(KI27\d{4}(v1|\.1)?|Un_KI\d+v1|Un_GL\d+v1|.*_alt|EBV|HLA-.*|\d+_KI\d+v1_random)$"
    ),
}
_REFERENCE_HINTS: dict[str, re.Pattern[str]] = {
    "grch37": re.compile(r"(grch37|hg19|b37|hs37|human_g1k_v37)", re.IGNORECASE),
    "grch38": re.compile(r"(grch38|hg38|hs38)", re.IGNORECASE),
}


def strip_chr(contig: str) -> str:
    """`chr1` → `1`, `chrM` → `MT`; other names unchanged."""
    bare = contig[3:] if contig.startswith("chr") else contig
    return "MT" if bare == "M" else bare


def contig_assembly(contig: str) -> str | None:
    """The only build a contig name can belong to, or None when it exists in both (or neither)."""
    bare = strip_chr(contig)
    for assembly, pattern in _ONLY_IN.items():
        if pattern.match(bare):
            return assembly
    return None


def length_assembly(contig: str, length: int) -> str | None:
    """The build whose primary chromosome `contig` has exactly `length` bases, if any."""
    bare = strip_chr(contig)
    for assembly, lengths in LENGTHS.items():
        if lengths.get(bare) == length:
            return assembly
    return None


def reference_assembly(reference: str) -> str | None:
    """The build a `##reference=` value names, when it names exactly one."""
    hits = [assembly for assembly, pattern in _REFERENCE_HINTS.items() if pattern.search(reference)]
    return hits[0] if len(hits) == 1 else None


def contig_name(assembly: str, bare: str) -> str:
    """The conventional name of a primary chromosome in a build: `chr1` (GRCh38), `1` (GRCh37)."""
    return f"chr{bare}" if assembly == "grch38" else bare
