"""PCGR 2.3.2's interface, as facts.

Read from sigven/pcgr at tag v2.3.2:
- `pcgr/main.py`, `cli()`: every flag, its type, choices and default;
- `pcgr/arg_checker.py`, `verify_args()`, `verify_vep_options()`, `verify_required_args()` and
  `validate_cna_thresholds()`: the ranges and the cross-option rules;
- `pcgr/config.py`, `create_config()`: the sex / primary-site rule;
- `pcgr/pcgr_vars.py`: SAMPLE_ID_MIN_LENGTH 3 / SAMPLE_ID_MAX_LENGTH 40, VEP_MIN_FORKS 1 /
  VEP_MAX_FORKS 8, VEP_MIN_BUFFER_SIZE 50 / VEP_MAX_BUFFER_SIZE 30000, VEP_PICK_CRITERIA,
  EXPRESSION_DB_SOURCES, CODING_EXOME_SIZE_MB 34.0, MINIMUM_N_MUT_SIGNATURE 100,
  MAX_SIGNATURE_PREVALENCE 20, VCFANNO_MAX_PROC 15, tsites 0..30.

Where Capillary is stricter than PCGR, the comment says so; it is never looser. PCGR checks the
SNV options only with `--input_vcf` (Capillary always passes one) and the CNA thresholds only with
`--input_cna`: the ranges of the CNA options are applied always, the rules tying them to each
other and to the ploidy only when the sample carries a CNA file, as PCGR does.
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

RELEASE = "2.3.2"
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
CNA_MODES = ("absolute", "relative", "combined")
_ABSOLUTE = ("cna_threshold_mode", ("absolute", "combined"))
_RELATIVE = ("cna_threshold_mode", ("relative", "combined"))

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
    # Tumor sample options
    choice("sex", "Sex of the cancer case", ("FEMALE", "MALE", "UNKNOWN"), default="UNKNOWN"),
    integer(
        "tumor_site",
        "Primary tumor site code (0 = any site; 1-30 as `pcgr --help` lists)",
        default=0,
        minimum=0,
        maximum=30,
    ),
    number("tumor_purity", "Estimated tumor purity", minimum=0, min_exclusive=True, maximum=1),
    number("tumor_ploidy", "Estimated tumor ploidy (1-8 with a CNA file)", minimum=0, min_exclusive=True),
    # Somatic SNV/InDel options
    choice("assay", "Type of DNA sequencing assay", ("WGS", "WES", "TARGETED"), default="WES"),
    number(
        "effective_target_size_mb",
        "Effective (coding) target size of the assay in Mb, for TMB",
        default=34.0,
        minimum=0,
        maximum=34,
    ),
    switch("tumor_only", "The VCF comes from tumor-only sequencing"),
    # PCGR checks 1-15 for CPSR only; Capillary applies the same cap to PCGR.
    integer("vcfanno_n_proc", "vcfanno processes (-p)", default=4, minimum=1, maximum=15),
    OptionSpec(
        "retained_info_tags",
        "str",
        "Comma-separated VCF INFO tags kept in the output TSV",
        default="None",
        vocabulary="info_tags",
    ),
    switch("ignore_noncoding", "Leave non-coding variants out of the report"),
    integer(
        "vep_n_forks",
        "VEP --fork (the engine sets it from pcgr.threads unless the sample does)",
        default=4,
        minimum=1,
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
    # Tumor-only filtering options (PCGR checks the range in tumor-only mode; Capillary always)
    number(
        "gnomad_popmax_af_tolerated",
        "Tumor-only: exclude variants with a gnomAD popmax allele frequency above this",
        default=0.001,
        minimum=0,
        maximum=1,
    ),
    switch("exclude_pon", "Tumor-only: exclude variants in the panel of normals"),
    switch("exclude_likely_hom_germline", "Tumor-only: exclude likely homozygous germline variants"),
    switch("exclude_likely_het_germline", "Tumor-only: exclude likely heterozygous germline variants"),
    switch("exclude_clinvar_germline", "Tumor-only: exclude ClinVar variants of germline origin"),
    switch("exclude_dbsnp_nonsomatic", "Tumor-only: exclude dbSNP variants not known as somatic"),
    switch("exclude_nonexonic", "Tumor-only: exclude non-exonic variants"),
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
    # Somatic CNA options (PCGR checks each range in the modes that use it; Capillary always)
    choice(
        "cna_threshold_mode",
        "CNA thresholds: absolute copy number, relative to ploidy, or both",
        CNA_MODES,
        default="absolute",
    ),
    integer(
        "cna_amp_threshold_absolute",
        "Total copy number for an amplification",
        default=5,
        minimum=3,
        maximum=20,
    ),
    number(
        "cna_amp_threshold_relative",
        "Fold change over ploidy for an amplification",
        default=2.5,
        minimum=1.5,
        maximum=10,
    ),
    integer("cna_gain_threshold_absolute", "Total copy number for a gain", default=3, minimum=2),
    number("cna_gain_threshold_relative", "Fold change over ploidy for a gain", default=1.5, minimum=1),
    integer(
        "cna_del_threshold_absolute", "Total copy number for a heterozygous deletion", default=1, minimum=1
    ),
    number(
        "cna_del_threshold_relative",
        "Fold change below ploidy for a heterozygous deletion",
        default=0.5,
        minimum=0,
        min_exclusive=True,
        maximum=1,
        max_exclusive=True,
    ),
    number(
        "cna_transcript_overlap_pct",
        "Mean percent overlap between a segment and gene transcripts",
        default=50.0,
        minimum=0,
        min_exclusive=True,
        maximum=100,
    ),
    # RNA expression and fusion options (the input files are paths the engine owns)
    # PCGR raises values below 2 to 2 with a warning; Capillary refuses them.
    integer("fusion_min_split_reads", "Minimum split reads supporting a fusion", default=3, minimum=2),
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
    # PCGR compares tmb_ad_min to tmb_dp_min when tumor_ad_min and tumor_dp_min are set, and fails
    # (reading an unset tmb_dp_min) without one; Capillary compares whenever both are set.
    rules.set_together("tmb_ad_min", "tmb_dp_min", when=("tumor_ad_min", "tumor_dp_min")),
    rules.compare("tmb_ad_min", "<=", "tmb_dp_min"),
    rules.compare("tmb_af_min", ">=", "tumor_af_min", only_above_zero=True),
    # verify_args: MSI needs TMB; tumor-only has no control tags; its germline filters need AF.
    # (PCGR drops estimate_msi with a warning for TARGETED or tumor-only before this check;
    # Capillary checks it always.)
    rules.needs_switch("estimate_msi", "estimate_tmb"),
    rules.forbids_tag("tumor_only", "control_dp_tag"),
    rules.forbids_tag("tumor_only", "control_af_tag"),
    rules.switch_needs_tag("tumor_only", "exclude_likely_het_germline", "tumor_af_tag"),
    rules.switch_needs_tag("tumor_only", "exclude_likely_hom_germline", "tumor_af_tag"),
    # config.create_config: sex-specific primary sites
    rules.excludes_values("sex", "MALE", "tumor_site", (18, 29, 30), "a site not observed in males"),
    rules.excludes_values("sex", "FEMALE", "tumor_site", (23, 26), "a site not observed in females"),
    # validate_cna_thresholds, with --input_cna only
    rules.within("tumor_ploidy", 1, 8, needs_cna=True, why="with a CNA file"),
    rules.compare("cna_amp_threshold_absolute", ">", "tumor_ploidy", when=_ABSOLUTE, needs_cna=True),
    rules.compare("cna_gain_threshold_absolute", ">", "tumor_ploidy", when=_ABSOLUTE, needs_cna=True),
    rules.compare(
        "cna_gain_threshold_absolute", "<", "cna_amp_threshold_absolute", when=_ABSOLUTE, needs_cna=True
    ),
    rules.compare(
        "cna_del_threshold_absolute", "<", "cna_gain_threshold_absolute", when=_ABSOLUTE, needs_cna=True
    ),
    rules.compare("cna_del_threshold_absolute", "<=", "tumor_ploidy", when=_ABSOLUTE, needs_cna=True),
    rules.compare(
        "cna_gain_threshold_relative", "<", "cna_amp_threshold_relative", when=_RELATIVE, needs_cna=True
    ),
)

_PATH = "a path: the engine sets it"
_SWITCH = "a run-time switch: the engine sets it"
_ONCOKB = "OncoKB runs only with an API token, a deployment secret that no sample carries"

TABLE = ReleaseTable(
    program="pcgr",
    release=RELEASE,
    source="sigven/pcgr v2.3.2: pcgr/main.py, pcgr/arg_checker.py, pcgr/config.py, pcgr/pcgr_vars.py",
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
                "input_rna_fusion",
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
        **dict.fromkeys(
            ("oncokb_api_token", "oncokb_oncotree_code", "oncokb_exclusive", "oncokb_maf_query_all"), _ONCOKB
        ),
    },
)
