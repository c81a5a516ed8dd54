"""PCGR 2.2.5's interface, as facts.

Read from sigven/pcgr at tag v2.2.5:
- `pcgr/main.py`, `cli()`: every flag, its type, choices and default;
- `pcgr/arg_checker.py`, `verify_args()`, `verify_vep_options()` and `verify_required_args()`:
  the ranges and the cross-option rules (all checked unconditionally in this release);
- `pcgr/config.py`, `create_config()`: the sex / primary-site rule;
- `pcgr/pcgr_vars.py`: SAMPLE_ID_MIN_LENGTH 3 / SAMPLE_ID_MAX_LENGTH 40, VEP_MIN_FORKS 1 /
  VEP_MAX_FORKS 8 (this release refuses vep_n_forks <= VEP_MIN_FORKS, so 2-8), VEP_MIN_BUFFER_SIZE
  50 / VEP_MAX_BUFFER_SIZE 30000, VEP_PICK_CRITERIA, EXPRESSION_DB_SOURCES, CODING_EXOME_SIZE_MB
  34.0, MINIMUM_N_MUT_SIGNATURE 100, MAX_SIGNATURE_PREVALENCE 20, VCFANNO_MAX_PROC 15, tsites 0..30.

Compared with 2.3.2: gnomAD filters per population (`maf_gnomad_*`) instead of one popmax
threshold, `n_copy_gain` and `cna_overlap_pct` instead of the CNA threshold modes, `vcf2maf` as
an option, no fusion input, no OncoKB. Where Capillary is stricter than PCGR, the comment says so.
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

RELEASE = "2.2.5"
VEP_PICK_CRITERIA = (
    "mane_select",
    "mane_plus_clinical",
    "canonical",
    "biotype",
    "ccds",
    "rank",
    "tsl",
    "appris",
    "length",
)
EXPRESSION_DB_SOURCES = ("tcga", "depmap", "treehouse")
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
        length=(3, 40),
    ),
    # Sequencing assay and tumor sample
    choice("assay", "Type of DNA sequencing assay", ("WGS", "WES", "TARGETED"), default="WES"),
    number(
        "effective_target_size_mb",
        "Effective (coding) target size of the assay in Mb, for TMB",
        default=34.0,
        minimum=0,
        maximum=34,
    ),
    switch("tumor_only", "The VCF comes from tumor-only sequencing"),
    choice("sex", "Sex of the cancer case", ("FEMALE", "MALE", "UNKNOWN"), default="UNKNOWN"),
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
    integer("tumor_dp_min", "Minimum tumor depth for inclusion", minimum=1),
    integer("tumor_ad_min", "Minimum tumor allelic depth for inclusion", minimum=1),
    number("tumor_af_min", "Minimum tumor allelic fraction for inclusion", minimum=0, maximum=1),
    integer("control_dp_min", "Minimum control depth for inclusion", minimum=1),
    integer("control_ad_max", "Maximum control allelic depth for inclusion", minimum=0),
    number("control_af_max", "Maximum control allelic fraction for inclusion", minimum=0, maximum=1),
    # Tumor-only filtering options (PCGR checks the gnomAD ranges in tumor-only mode; Capillary always)
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
    switch("exclude_clinvar_germline", "Tumor-only: exclude ClinVar variants of germline origin"),
    switch("exclude_dbsnp_nonsomatic", "Tumor-only: exclude dbSNP variants not known as somatic"),
    switch("exclude_nonexonic", "Tumor-only: exclude non-exonic variants"),
    # VEP options
    integer(
        "vep_n_forks",
        "VEP --fork (the engine sets it from pcgr.threads unless the sample does)",
        default=4,
        minimum=2,
        maximum=8,
    ),
    integer("vep_buffer_size", "VEP --buffer_size", default=500, minimum=50, maximum=30000),
    item_list(
        "vep_pick_order",
        "Transcript properties, in order, for the primary consequence (VEP "
        "--pick_order); all of them, each once",
        VEP_PICK_CRITERIA,
        default="mane_select,mane_plus_clinical,canonical,biotype,ccds,rank,tsl,appris,length",
        permutation=True,
    ),
    switch("vep_no_intergenic", "Skip intergenic variants (VEP --no_intergenic)"),
    switch("vep_regulatory", "Add regulatory annotations (VEP --regulatory)"),
    switch("vep_gencode_basic", "Basic GENCODE transcripts only (VEP --gencode_basic)"),
    # TMB and MSI options (PCGR parses tmb_dp_min/tmb_af_min/tmb_ad_min as strings, then int/float)
    switch("estimate_tmb", "Estimate tumor mutational burden"),
    choice(
        "tmb_display",
        "TMB measure shown in the report",
        ("coding_and_silent", "coding_non_silent", "missense_only"),
        default="coding_and_silent",
    ),
    integer("tmb_dp_min", "Minimum tumor depth for TMB", minimum=1),
    number("tmb_af_min", "Minimum tumor allelic fraction for TMB", minimum=0, maximum=1),
    integer("tmb_ad_min", "Minimum tumor allelic depth for TMB", minimum=1),
    switch("estimate_msi", "Predict microsatellite instability (needs estimate_tmb)"),
    # Mutational signature options
    switch("estimate_signatures", "Estimate mutational signature contributions"),
    integer("min_mutations_signatures", "Minimum SNVs for signature re-fitting", default=200, minimum=100),
    switch("all_reference_signatures", "Use all reference signatures in re-fitting"),
    switch("include_artefact_signatures", "Include sequencing artefact signatures"),
    number(
        "prevalence_reference_signatures",
        "Minimum tumor-type prevalence (percent) of the reference signatures used in re-fitting",
        default=0.1,
        minimum=0,
        maximum=20,
    ),
    # Somatic CNA options
    integer("n_copy_gain", "Minimum total copy number for a gain/amplification", default=6, minimum=3),
    number(
        "cna_overlap_pct",
        "Mean percent overlap between a segment and gene transcripts",
        default=50.0,
        minimum=0,
        min_exclusive=True,
        maximum=100,
    ),
    # RNA expression options (the expression file is a path the engine owns)
    switch("expression_sim", "Compare the tumor's expression profile to known profiles"),
    item_list(
        "expression_sim_db",
        "Comma-separated databases for expression similarity",
        EXPRESSION_DB_SOURCES,
        default="tcga,depmap,treehouse",
    ),
    # Germline variant options
    switch("cpsr_ignore_vus", "Hide germline variants of uncertain significance in the report"),
    # Other options
    switch("vcf2maf", "Also write a MAF file"),
    # PCGR checks 1-15 for CPSR only; Capillary applies the same cap to PCGR.
    integer("vcfanno_n_proc", "vcfanno processes (-p)", default=4, minimum=1, maximum=15),
    switch("ignore_noncoding", "Leave non-coding variants out of the report"),
    OptionSpec(
        "retained_info_tags",
        "str",
        "Comma-separated VCF INFO tags kept in the output TSV",
        default="None",
        vocabulary="info_tags",
    ),
    switch("no_reporting", "Annotate only; skip classification and the report"),
    switch("no_html", "Do not write the HTML report"),
)

RULES = (
    # verify_args: a depth or fraction threshold needs the INFO tag it is read from
    rules.needs_tag("tumor_dp_min", "tumor_dp_tag"),
    rules.needs_tag("tumor_af_min", "tumor_af_tag"),
    rules.needs_tag("tumor_ad_min", "tumor_af_tag"),
    rules.needs_tag("control_dp_min", "control_dp_tag"),
    rules.needs_tag("control_af_max", "control_af_tag"),
    rules.needs_tag("control_ad_max", "control_af_tag"),
    # verify_args: allelic depths within depths, TMB filters at least the report's
    rules.compare("tumor_ad_min", "<=", "tumor_dp_min"),
    rules.compare("control_ad_max", "<=", "control_dp_min"),
    rules.compare("tmb_dp_min", ">=", "tumor_dp_min"),
    rules.compare("tmb_ad_min", ">=", "tumor_ad_min"),
    # As in 2.3.2: PCGR fails on an unset tmb_dp_min here; Capillary compares whenever both are set.
    rules.set_together("tmb_ad_min", "tmb_dp_min", when=("tumor_ad_min", "tumor_dp_min")),
    rules.compare("tmb_ad_min", "<=", "tmb_dp_min"),
    rules.compare("tmb_af_min", ">=", "tumor_af_min", only_above_zero=True),
    # verify_args: MSI needs TMB (checked always by Capillary, see 2.3.2); tumor-only rules
    rules.needs_switch("estimate_msi", "estimate_tmb"),
    rules.forbids_tag("tumor_only", "control_dp_tag"),
    rules.forbids_tag("tumor_only", "control_af_tag"),
    rules.switch_needs_tag("tumor_only", "exclude_likely_het_germline", "tumor_af_tag"),
    rules.switch_needs_tag("tumor_only", "exclude_likely_hom_germline", "tumor_af_tag"),
    # config.create_config: sex-specific primary sites
    rules.excludes_values("sex", "MALE", "tumor_site", (18, 29, 30), "a site not observed in males"),
    rules.excludes_values("sex", "FEMALE", "tumor_site", (23, 26), "a site not observed in females"),
)

_PATH = "a path: the engine sets it"
_SWITCH = "a run-time switch: the engine sets it"

TABLE = ReleaseTable(
    program="pcgr",
    release=RELEASE,
    source="sigven/pcgr v2.2.5: pcgr/main.py, pcgr/arg_checker.py, pcgr/config.py, pcgr/pcgr_vars.py",
    options=OPTIONS,
    rules=RULES,
    inputs={
        "vcf": "--input_vcf",
        "cna": "--input_cna",
        "vep": "--vep_dir",
        "refdata": "--refdata_dir",
        "output": "--output_dir",
    },
    not_sample_options={
        **dict.fromkeys(
            (
                "input_vcf",
                "input_cna",
                "input_rna_expression",
                "input_cpsr",
                "input_cpsr_yaml",
                "pon_vcf",
                "vep_dir",
                "refdata_dir",
                "output_dir",
            ),
            _PATH,
        ),
        **dict.fromkeys(("force_overwrite", "debug", "pcgrr_conda", "version"), _SWITCH),
    },
)
