"""The schema of a sample's TOML: the PCGR options a user may set for one sample.

Written from PCGR 2.x's command line (`pcgr/main.py`, `pcgr/arg_checker.py` in sigven/pcgr).
The TOML is flat: each key is a PCGR option name without the leading `--`:

    genome_assembly = "grch38"
    assay = "WGS"
    tumor_site = 9
    tumor_purity = 0.6
    estimate_tmb = true

Paths (`--input_vcf`, `--input_cna`, `--refdata_dir`, `--vep_dir`, `--output_dir`, `--pon_vcf`, …)
and run-time switches (`--force_overwrite`, `--debug`, `--pcgrr_conda`) are not sample options:
the engine sets them. `flag` is the PCGR 2.x flag, `flag_v1` the PCGR 1.4 flag where it differs
in name, or None when 1.4 has no such option. Boolean options are switches: `true` passes the
flag, `false` omits it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from capillary.contract.assemblies import ASSEMBLIES
from capillary.contract.problems import Problem

OptionType = Literal["str", "int", "float", "bool"]

# The 1.4 and 2.x tumour site codes: 0 = any site, 1..30 = a primary site (pcgr_vars.tumor_sites).
TUMOR_SITES = range(0, 31)
VEP_PICK_CRITERIA = (
    "mane_select",
    "mane_plus_clinical",
    "canonical",
    "appris",
    "tsl",
    "biotype",
    "ccds",
    "rank",
    "length",
)
EXPRESSION_DATABASES = ("tcga", "depmap", "treehouse")


@dataclass(frozen=True)
class OptionSpec:
    name: str
    type: OptionType
    help: str
    default: Any = None
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    # A comma-separated list whose items must come from `items`.
    items: tuple[str, ...] | None = None
    required: bool = False
    flag: str = ""
    flag_v1: str | None = ""
    max_length: int | None = None
    no_whitespace: bool = False

    def __post_init__(self) -> None:
        # An empty flag means "the same name as the option"; set it once here so callers never guess.
        if not self.flag:
            object.__setattr__(self, "flag", f"--{self.name}")
        if self.flag_v1 == "":
            object.__setattr__(self, "flag_v1", self.flag)


def _specs(*specs: OptionSpec) -> dict[str, OptionSpec]:
    return {spec.name: spec for spec in specs}


_MAF = "exclude variants (tumor-only mode) with a gnomAD allele frequency above this value in"

OPTIONS: dict[str, OptionSpec] = _specs(
    # Required
    OptionSpec(
        "genome_assembly",
        "str",
        "Human genome assembly build of the VCF",
        choices=ASSEMBLIES,
        required=True,
    ),
    OptionSpec(
        "sample_id",
        "str",
        "Tumor sample identifier, the prefix of the output files (default: the sample's name)",
        max_length=35,
        no_whitespace=True,
    ),
    # Sequencing assay
    OptionSpec(
        "assay", "str", "Type of DNA sequencing assay", default="WES", choices=("WGS", "WES", "TARGETED")
    ),
    OptionSpec(
        "effective_target_size_mb",
        "float",
        "Effective (coding) target size of the assay in Mb, for TMB",
        default=34.0,
        minimum=0.0,
        maximum=3200.0,
        flag_v1="--target_size_mb",
    ),
    OptionSpec("tumor_only", "bool", "The VCF comes from tumor-only sequencing", default=False),
    OptionSpec("cell_line", "bool", "The VCF comes from a tumor cell line (needs tumor_only)", default=False),
    # Tumor sample
    OptionSpec(
        "tumor_site",
        "int",
        "Primary tumor site code (0 = any site; 1-30 as listed by `pcgr --help`)",
        default=0,
        minimum=TUMOR_SITES.start,
        maximum=TUMOR_SITES.stop - 1,
    ),
    OptionSpec("tumor_purity", "float", "Estimated tumor purity", minimum=0.0, maximum=1.0),
    OptionSpec("tumor_ploidy", "float", "Estimated tumor ploidy", minimum=0.0, maximum=10.0),
    # Allelic support
    OptionSpec("tumor_dp_tag", "str", "VCF INFO tag for tumor depth (Type=Integer)", default="_NA_"),
    OptionSpec("tumor_af_tag", "str", "VCF INFO tag for tumor allelic fraction (Type=Float)", default="_NA_"),
    OptionSpec("control_dp_tag", "str", "VCF INFO tag for control depth (Type=Integer)", default="_NA_"),
    OptionSpec(
        "control_af_tag", "str", "VCF INFO tag for control allelic fraction (Type=Float)", default="_NA_"
    ),
    OptionSpec("call_conf_tag", "str", "VCF INFO tag for somatic call confidence", default="_NA_"),
    OptionSpec("tumor_dp_min", "int", "Minimum tumor depth for inclusion", default=0, minimum=0),
    OptionSpec(
        "tumor_af_min",
        "float",
        "Minimum tumor allelic fraction for inclusion",
        default=0.0,
        minimum=0,
        maximum=1,
    ),
    OptionSpec("control_dp_min", "int", "Minimum control depth for inclusion", default=0, minimum=0),
    OptionSpec(
        "control_af_max",
        "float",
        "Maximum control allelic fraction for inclusion",
        default=1.0,
        minimum=0,
        maximum=1,
    ),
    # Tumor-only filtering
    *(
        OptionSpec(
            f"maf_gnomad_{pop}",
            "float",
            f"{_MAF} {label}",
            default=0.002,
            minimum=0,
            maximum=1,
            flag_v1=None,
        )
        for pop, label in (
            ("nfe", "European (non-Finnish)"),
            ("asj", "Ashkenazi Jewish"),
            ("fin", "European (Finnish)"),
            ("oth", "Other"),
            ("amr", "Latino/Admixed American"),
            ("afr", "African/African-American"),
            ("eas", "East Asian"),
            ("sas", "South Asian"),
            ("global", "the global population"),
        )
    ),
    OptionSpec("exclude_pon", "bool", "Exclude variants in the panel of normals", default=False),
    OptionSpec(
        "exclude_likely_hom_germline", "bool", "Exclude likely homozygous germline variants", default=False
    ),
    OptionSpec(
        "exclude_likely_het_germline", "bool", "Exclude likely heterozygous germline variants", default=False
    ),
    OptionSpec(
        "exclude_clinvar_germline",
        "bool",
        "Exclude variants found in ClinVar with germline origin",
        default=False,
        flag_v1=None,
    ),
    OptionSpec(
        "exclude_dbsnp_nonsomatic", "bool", "Exclude dbSNP variants not known as somatic", default=False
    ),
    OptionSpec("exclude_nonexonic", "bool", "Exclude non-exonic variants", default=False),
    # VEP
    OptionSpec("vep_n_forks", "int", "VEP --fork", default=4, minimum=1, maximum=64),
    OptionSpec("vep_buffer_size", "int", "VEP --buffer_size", default=500, minimum=1, maximum=1_000_000),
    OptionSpec(
        "vep_pick_order",
        "str",
        "Comma-separated transcript properties for choosing the primary consequence (VEP --pick_order)",
        default="mane_select,mane_plus_clinical,canonical,appris,tsl,biotype,ccds,rank,length",
        items=VEP_PICK_CRITERIA,
    ),
    OptionSpec("vep_no_intergenic", "bool", "Skip intergenic variants (VEP --no_intergenic)", default=False),
    OptionSpec("vep_regulatory", "bool", "Add regulatory annotations (VEP --regulatory)", default=False),
    OptionSpec(
        "vep_gencode_basic", "bool", "Basic GENCODE transcripts only (VEP --gencode_basic)", default=False
    ),
    # TMB and MSI
    OptionSpec("estimate_tmb", "bool", "Estimate tumor mutational burden", default=False),
    OptionSpec(
        "tmb_display",
        "str",
        "TMB measure shown in the report",
        default="coding_and_silent",
        choices=("coding_and_silent", "coding_non_silent", "missense_only"),
        flag_v1=None,
    ),
    OptionSpec("tmb_dp_min", "int", "Minimum tumor depth for TMB", default=0, minimum=0, flag_v1=None),
    OptionSpec(
        "tmb_af_min",
        "float",
        "Minimum tumor allelic fraction for TMB",
        default=0.0,
        minimum=0,
        maximum=1,
        flag_v1=None,
    ),
    OptionSpec(
        "estimate_msi",
        "bool",
        "Predict microsatellite instability",
        default=False,
        flag_v1="--estimate_msi_status",
    ),
    # Mutational signatures
    OptionSpec("estimate_signatures", "bool", "Estimate mutational signature contributions", default=False),
    OptionSpec(
        "min_mutations_signatures",
        "int",
        "Minimum SNVs for signature re-fitting",
        default=200,
        minimum=100,
    ),
    OptionSpec(
        "all_reference_signatures", "bool", "Use all reference signatures in re-fitting", default=False
    ),
    OptionSpec(
        "include_artefact_signatures", "bool", "Include sequencing artefact signatures", default=False
    ),
    OptionSpec(
        "prevalence_reference_signatures",
        "float",
        "Minimum tumor-type prevalence (percent) of reference signatures used in re-fitting",
        default=0.1,
        minimum=0,
        maximum=100,
    ),
    # Copy number
    OptionSpec(
        "n_copy_gain", "int", "Minimum total copy number for a gain/amplification", default=6, minimum=1
    ),
    OptionSpec(
        "cna_overlap_pct",
        "float",
        "Mean percent overlap between a segment and gene transcripts",
        default=50.0,
        minimum=0,
        maximum=100,
    ),
    # RNA expression (the expression file itself is a path the engine sets)
    OptionSpec(
        "expression_sim",
        "bool",
        "Compare the tumor's expression profile to known profiles",
        default=False,
        flag_v1=None,
    ),
    OptionSpec(
        "expression_sim_db",
        "str",
        "Comma-separated databases for expression similarity",
        default="tcga,depmap,treehouse",
        items=EXPRESSION_DATABASES,
        flag_v1=None,
    ),
    # Other
    OptionSpec("vcf2maf", "bool", "Also write a MAF file", default=False),
    OptionSpec("vcfanno_n_proc", "int", "vcfanno processes (-p)", default=4, minimum=1, maximum=15),
    OptionSpec("ignore_noncoding", "bool", "Leave non-coding variants out of the report", default=False),
    OptionSpec(
        "retained_info_tags",
        "str",
        "Comma-separated VCF INFO tags kept in the output TSV",
        default="None",
    ),
    OptionSpec(
        "no_reporting",
        "bool",
        "Annotate only; skip classification and the report",
        default=False,
    ),
)

_TYPE_NAMES = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false"}


def _type_ok(spec: OptionSpec, value: Any) -> bool:
    if spec.type == "bool":
        return isinstance(value, bool)
    if spec.type == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if spec.type == "float":
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, str)


def validate_option(spec: OptionSpec, value: Any) -> list[Problem]:
    """Every problem with one option's value, each naming the option and the rule."""
    code_member = f"option {spec.name}"
    if not _type_ok(spec, value):
        return [
            Problem(
                "option_type",
                f"{spec.name} must be {_TYPE_NAMES[spec.type]} (found {type(value).__name__})",
                code_member,
            )
        ]
    problems: list[Problem] = []
    if spec.choices is not None and value not in spec.choices:
        allowed = ", ".join(repr(c) for c in spec.choices)
        problems.append(Problem("option_choice", f"{spec.name} must be one of {allowed}", code_member))
    if spec.minimum is not None and value < spec.minimum:
        problems.append(Problem("option_range", f"{spec.name} must be >= {spec.minimum}", code_member))
    if spec.maximum is not None and value > spec.maximum:
        problems.append(Problem("option_range", f"{spec.name} must be <= {spec.maximum}", code_member))
    if isinstance(value, str):
        if spec.max_length is not None and not 1 <= len(value) <= spec.max_length:
            problems.append(
                Problem(
                    "option_length", f"{spec.name} must be 1 to {spec.max_length} characters", code_member
                )
            )
        if spec.no_whitespace and any(c.isspace() for c in value):
            problems.append(Problem("option_value", f"{spec.name} must not contain whitespace", code_member))
        if spec.items is not None:
            bad = [item for item in value.split(",") if item.strip() not in spec.items]
            if bad:
                problems.append(
                    Problem(
                        "option_choice",
                        f"{spec.name} items must come from {', '.join(spec.items)} "
                        f"(unknown: {', '.join(bad)})",
                        code_member,
                    )
                )
    return problems


def validate_options(mapping: Mapping[str, Any]) -> list[Problem]:
    """All problems with a sample's options: unknown names, missing required ones, bad values."""
    problems: list[Problem] = []
    for name, value in mapping.items():
        spec = OPTIONS.get(name)
        if spec is None:
            hint = ""
            if name.startswith("-"):
                hint = " (write option names without the leading '--')"
            elif name in _ENGINE_OWNED:
                hint = " (the engine sets paths and run-time switches itself)"
            elif isinstance(value, dict):
                hint = " (the sample TOML is flat: no tables)"
            problems.append(
                Problem("option_unknown", f"unknown PCGR option {name!r}{hint}", f"option {name}")
            )
            continue
        problems.extend(validate_option(spec, value))
    for spec in OPTIONS.values():
        if spec.required and spec.name not in mapping:
            problems.append(
                Problem(
                    "option_missing", f"{spec.name} is required (one of: {', '.join(spec.choices or ())})"
                )
            )
    if mapping.get("cell_line") is True and mapping.get("tumor_only") is not True:
        problems.append(
            Problem("option_conflict", "cell_line = true needs tumor_only = true", "option cell_line")
        )
    return problems


def with_defaults(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The sample's options completed with PCGR's defaults (options without one stay absent)."""
    merged = {name: spec.default for name, spec in OPTIONS.items() if spec.default is not None}
    merged.update(mapping)
    return merged


_ENGINE_OWNED = frozenset(
    {
        "input_vcf",
        "input_cna",
        "input_rna_expression",
        "input_rna_fusion",
        "input_germline",
        "pon_vcf",
        "refdata_dir",
        "vep_dir",
        "output_dir",
        "pcgr_dir",
        "force_overwrite",
        "debug",
        "pcgrr_conda",
    }
)
__all__ = ["OPTIONS", "OptionSpec", "Problem", "validate_option", "validate_options", "with_defaults"]
