"""PCGR 1.4.1's interface, as facts.

Read from sigven/pcgr at tag v1.4.1 (the argparse definitions are in `pcgr/main.py` there too):
- `pcgr/main.py`, `cli()`: every flag, its type, choices and default;
- `pcgr/arg_checker.py`, `check_args()`: the ranges and the cross-option rules, with the limits
  written inline (sample id 3-35 characters, vep_n_forks 1-4, vep_buffer_size 1-30000,
  target_size_mb 0-34, the eight VEP pick criteria); vcfanno's 1-15 is checked in
  `check_args_cpsr()` only and Capillary applies it to PCGR as well;
- `pcgr/pcgr_vars.py`: tsites 0..30.

Some options have a different flag in 1.4 and keep their (2.x) Capillary name, so one TOML means
the same in every release: `effective_target_size_mb` is `--target_size_mb`, `estimate_msi` is
`--estimate_msi_status`, `retained_info_tags` is `--preserved_info_tags` and `no_reporting` is
`--basic` (the same behaviour by their help texts). Options whose meaning differs keep their own
1.4 names: `show_noncoding` (2.x inverted it as `ignore_noncoding`) and `vep_gencode_all` (2.x:
`vep_gencode_basic`). The allelic thresholds have defaults here (0, 0, 0, 1) and need no tag.
"""

from __future__ import annotations

import capillary.contract.pcgr_options.rules as rules
from capillary.contract.assemblies import ASSEMBLIES
from capillary.contract.pcgr_options.spec import (
    OptionSpec,
    ReleaseTable,
    choice,
    info_tag,
    integer,
    item_list,
    number,
    options,
    switch,
)

RELEASE = "1.4.1"
VEP_PICK_CRITERIA = ("canonical", "appris", "tsl", "biotype", "ccds", "rank", "length", "mane")
REPORT_THEMES = (
    "default",
    "cerulean",
    "journal",
    "flatly",
    "readable",
    "spacelab",
    "united",
    "cosmo",
    "lumen",
    "paper",
    "sandstone",
    "simplex",
    "yeti",
)
ONEKG_POPULATIONS = (
    ("eur", "European"),
    ("amr", "Ad Mixed American"),
    ("afr", "African"),
    ("eas", "East Asian"),
    ("sas", "South Asian"),
    ("global", "the global population"),
)
GNOMAD_POPULATIONS = (
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

OPTIONS = options(
    # Required arguments (sample_id is required by PCGR; the engine derives one when unset)
    OptionSpec(
        "genome_assembly", "str", "Human genome assembly build of the VCF", choices=ASSEMBLIES, required=True
    ),
    OptionSpec(
        "sample_id",
        "str",
        "Tumor sample identifier, the prefix of the output files (default: from the sample's name)",
        vocabulary="sample_id",
        length=(3, 35),
    ),
    # Copy number and tumor sample ("Other options" in 1.4.1's help)
    number(
        "logr_gain",
        "Minimum log ratio of a segment with a gain/amplification",
        default=0.8,
        minimum=0,
        min_exclusive=True,
    ),
    number(
        "logr_homdel",
        "Maximum log ratio of a segment with a homozygous deletion",
        default=-0.8,
        maximum=0,
        max_exclusive=True,
    ),
    number(
        "cna_overlap_pct",
        "Mean percent overlap between a segment and gene transcripts",
        default=50.0,
        minimum=0,
        min_exclusive=True,
        maximum=100,
    ),
    integer(
        "tumor_site",
        "Primary tumor site code (0 = any site; 1-30 as `pcgr --help` lists)",
        default=0,
        minimum=0,
        maximum=30,
    ),
    number("tumor_purity", "Estimated tumor purity", minimum=0, min_exclusive=True, maximum=1),
    number("tumor_ploidy", "Estimated tumor ploidy", minimum=0, min_exclusive=True),
    # Allelic support options
    info_tag("tumor_dp_tag", "VCF INFO tag for tumor depth (Type=Integer)"),
    info_tag("tumor_af_tag", "VCF INFO tag for tumor allelic fraction (Type=Float)"),
    info_tag("control_dp_tag", "VCF INFO tag for control depth (Type=Integer)"),
    info_tag("control_af_tag", "VCF INFO tag for control allelic fraction (Type=Float)"),
    info_tag("call_conf_tag", "VCF INFO tag for somatic call confidence (categorical)"),
    integer("tumor_dp_min", "Minimum tumor depth for inclusion", default=0, minimum=0),
    number("tumor_af_min", "Minimum tumor allelic fraction for inclusion", default=0.0, minimum=0, maximum=1),
    integer("control_dp_min", "Minimum control depth for inclusion", default=0, minimum=0),
    number(
        "control_af_max", "Maximum control allelic fraction for inclusion", default=1.0, minimum=0, maximum=1
    ),
    # TMB and MSI options
    number(
        "effective_target_size_mb",
        "Protein-coding target size of the assay in Mb, for TMB",
        default=34.0,
        minimum=0,
        maximum=34,
        flag="--target_size_mb",
    ),
    switch("estimate_tmb", "Estimate tumor mutational burden"),
    switch(
        "estimate_msi",
        "Predict microsatellite instability (needs estimate_tmb)",
        flag="--estimate_msi_status",
    ),
    choice(
        "tmb_algorithm",
        "TMB from all coding variants or non-synonymous ones only",
        ("all_coding", "nonsyn"),
        default="all_coding",
    ),
    # Mutational signature options
    switch("estimate_signatures", "Estimate mutational signature contributions"),
    integer(
        "min_mutations_signatures", "Minimum SNVs for signature reconstruction", default=200, minimum=100
    ),
    switch("all_reference_signatures", "Use all reference signatures in reconstruction"),
    switch("include_artefact_signatures", "Include sequencing artefact signatures"),
    integer(
        "prevalence_reference_signatures",
        "Minimum tumor-type prevalence (percent) of the reference signatures used in re-fitting",
        default=5,
        choices=(1, 2, 5, 10, 15, 20),
    ),
    # Other options
    switch("vcf2maf", "Also write a MAF file"),
    switch("show_noncoding", "List non-coding variants in the report"),
    choice("assay", "Type of DNA sequencing assay", ("WES", "WGS", "TARGETED"), default="WES"),
    switch("include_trials", "(Beta) Include relevant clinical trials"),
    OptionSpec(
        "retained_info_tags",
        "str",
        "Comma-separated VCF INFO tags kept in the output TSV",
        default="None",
        vocabulary="info_tags",
        flag="--preserved_info_tags",
    ),
    choice("report_theme", "Visual theme of the report (rmarkdown)", REPORT_THEMES, default="default"),
    switch("report_nonfloating_toc", "Do not float the report's table of contents"),
    switch("no_reporting", "Annotate only; skip classification and the report", flag="--basic"),
    switch("no_vcf_validate", "Skip validating the VCF with Ensembl's vcf-validator"),
    # vcfanno and VEP options
    integer("vcfanno_n_proc", "vcfanno processes (-p)", default=4, minimum=1, maximum=15),
    integer(
        "vep_n_forks",
        "VEP --fork (the engine sets it from pcgr.threads unless the sample does)",
        default=4,
        minimum=1,
        maximum=4,
    ),
    integer("vep_buffer_size", "VEP --buffer_size", default=100, minimum=1, maximum=30000),
    item_list(
        "vep_pick_order",
        "Transcript properties, in order, for the primary consequence (VEP "
        "--pick_order); all of them, each once",
        VEP_PICK_CRITERIA,
        default="canonical,appris,biotype,ccds,rank,tsl,length,mane",
        permutation=True,
    ),
    switch("vep_no_intergenic", "Skip intergenic variants (VEP --no_intergenic)"),
    switch("vep_regulatory", "Add regulatory annotations (VEP --regulatory)"),
    switch("vep_gencode_all", "All GENCODE transcripts (1.4 uses VEP --gencode_basic by default)"),
    # Tumor-only options (PCGR checks the frequency ranges in tumor-only mode; Capillary always)
    switch("tumor_only", "The VCF comes from tumor-only sequencing"),
    switch("cell_line", "The VCF comes from a tumor cell line (needs tumor_only)"),
    *(
        number(
            f"maf_onekg_{pop}",
            f"Tumor-only: exclude variants with a 1000 Genomes allele frequency above this in {label}",
            default=0.002,
            minimum=0,
            maximum=1,
        )
        for pop, label in ONEKG_POPULATIONS
    ),
    *(
        number(
            f"maf_gnomad_{pop}",
            f"Tumor-only: exclude variants with a gnomAD allele frequency above this in {label}",
            default=0.002,
            minimum=0,
            maximum=1,
        )
        for pop, label in GNOMAD_POPULATIONS
    ),
    switch("exclude_pon", "Tumor-only: exclude variants in the panel of normals"),
    switch("exclude_likely_hom_germline", "Tumor-only: exclude likely homozygous germline variants"),
    switch("exclude_likely_het_germline", "Tumor-only: exclude likely heterozygous germline variants"),
    switch("exclude_dbsnp_nonsomatic", "Tumor-only: exclude dbSNP variants not known as somatic"),
    switch("exclude_nonexonic", "Tumor-only: exclude non-exonic variants"),
)

RULES = (
    # check_args: a cell line is analysed tumor-only; MSI needs TMB (checked always by Capillary;
    # PCGR drops estimate_msi first for TARGETED or tumor-only); tumor-only germline filters need AF
    rules.needs_switch("cell_line", "tumor_only"),
    rules.needs_switch("estimate_msi", "estimate_tmb"),
    rules.switch_needs_tag("tumor_only", "exclude_likely_het_germline", "tumor_af_tag"),
    rules.switch_needs_tag("tumor_only", "exclude_likely_hom_germline", "tumor_af_tag"),
)

_PATH = "a path: the engine sets it"
_SWITCH = "a run-time switch: the engine sets it"

TABLE = ReleaseTable(
    program="pcgr",
    release=RELEASE,
    source="sigven/pcgr v1.4.1: pcgr/main.py, pcgr/arg_checker.py, pcgr/pcgr_vars.py",
    options=OPTIONS,
    rules=RULES,
    inputs={
        "vcf": "--input_vcf",
        "cna": "--input_cna",
        "refdata": "--pcgr_dir",
        "output": "--output_dir",
    },
    not_sample_options={
        **dict.fromkeys(
            ("input_vcf", "input_cna", "pcgr_dir", "output_dir", "pon_vcf", "cpsr_report"), _PATH
        ),
        **dict.fromkeys(("force_overwrite", "debug", "pcgrr_conda", "version"), _SWITCH),
    },
)
