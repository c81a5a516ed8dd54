"""CPSR 2.2.5's interface, as facts.

CPSR ships in the PCGR package from 2.0 on (the `cpsr` command, same env, image, bundle and VEP
cache). Read from sigven/pcgr at tag v2.2.5:
- `pcgr/cpsr.py`, `get_args()`: every flag, its type, choices and default;
- `pcgr/arg_checker.py`, `verify_args_cpsr()` with `verify_required_args()` and
  `verify_vep_options()`: the ranges and rules (a panel or a custom list, not both; single panel
  0 to len(GE_panels) - 1, several panels 1 to len(GE_panels) - 1; maf_upper_threshold in (0, 1];
  this release refuses vep_n_forks <= VEP_MIN_FORKS, so 2-8);
- `pcgr/pcgr_vars.py`: GE_panels 0..44, SAMPLE_ID_MIN_LENGTH 3 / SAMPLE_ID_MAX_LENGTH 40,
  VEP_MIN_FORKS 1 / VEP_MAX_FORKS 8, VEP_MIN_BUFFER_SIZE 50 / VEP_MAX_BUFFER_SIZE 30000,
  VEP_PICK_CRITERIA, VCFANNO_MAX_PROC 15.

Compared with 2.3.2: `pop_gnomad` and `maf_upper_threshold` instead of `max_af_gnomad`,
`classify_all` instead of `clinvar_trust_level`, one more GE panel (44). CPSR forces VEP's
`--regulatory` itself (`vep_regulatory` is no CPSR option).

`--custom_list` is a path (a gene list file) that no sample carries yet, so a sample names its
panels with `panel_id`, which is required here: CPSR refuses a run with neither (its `-1` default
means "none given"). Where Capillary is stricter than CPSR, the comment says so.
"""

from __future__ import annotations

import capillary.contract.pcgr_options.rules as rules
from capillary.contract.assemblies import ASSEMBLIES
from capillary.contract.pcgr_options.spec import (
    OptionSpec,
    ReleaseTable,
    choice,
    integer,
    item_list,
    number,
    options,
    switch,
)

RELEASE = "2.2.5"
# pcgr_vars.GE_panels: 0 = CPSR's exploratory panel, 1-44 Genomics England PanelApp panels.
PANELS = tuple(str(panel) for panel in range(45))
GNOMAD_POPULATIONS = ("afr", "amr", "eas", "sas", "asj", "nfe", "fin", "global")
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

OPTIONS = options(
    # Required arguments (sample_id is required by CPSR; the engine derives one when unset)
    OptionSpec(
        "genome_assembly", "str", "Human genome assembly build of the VCF", choices=ASSEMBLIES, required=True
    ),
    OptionSpec(
        "sample_id",
        "str",
        "Sample identifier, the prefix of the output files (default: from the sample's name)",
        vocabulary="sample_id",
        length=(3, 40),
    ),
    # Panel options
    OptionSpec(
        "panel_id",
        "str",
        'Virtual gene panel(s): "0" (CPSR\'s exploratory panel, all genes) alone, or one or '
        'several comma-separated Genomics England PanelApp panels "1"-"44"',
        items=PANELS,
        required=True,
    ),
    switch("diagnostic_grade_only", "PanelApp panels: genes with a GREEN (diagnostic-grade) status only"),
    # Variant classification options
    switch("secondary_findings", "Include variants of the ACMG list for secondary findings"),
    switch("pgx_findings", "Report variants associated with chemotherapy toxicity (PgX, CPIC)"),
    switch("gwas_findings", "Report low to moderate cancer risk variants from GWAS (tag SNPs)"),
    choice(
        "pop_gnomad",
        "gnomAD (non-cancer subset) population for variant frequencies in the ACMG classification",
        GNOMAD_POPULATIONS,
        default="nfe",
    ),
    number(
        "maf_upper_threshold",
        "Leave out variants whose gnomAD global allele frequency is above this",
        default=0.9,
        minimum=0,
        min_exclusive=True,
        maximum=1,
    ),
    switch("classify_all", "CPSR's classification (TIER 1-5) also for variants ClinVar classifies"),
    switch("clinvar_report_noncancer", "Also report ClinVar variants for conditions not related to cancer"),
    # vcfanno options
    integer("vcfanno_n_proc", "vcfanno processes (-p)", default=4, minimum=1, maximum=15),
    # VEP options
    integer(
        "vep_n_forks",
        "VEP --fork (the engine sets it from pcgr.threads unless the sample does)",
        default=4,
        minimum=2,
        maximum=8,
    ),
    integer("vep_buffer_size", "VEP --buffer_size", default=500, minimum=50, maximum=30000),
    switch("vep_gencode_basic", "Basic GENCODE transcripts only (VEP --gencode_basic)"),
    item_list(
        "vep_pick_order",
        "Transcript properties, in order, for the primary consequence (VEP "
        "--pick_order); all of them, each once",
        VEP_PICK_CRITERIA,
        default="mane_select,mane_plus_clinical,canonical,biotype,ccds,rank,tsl,appris,length",
        permutation=True,
    ),
    switch("vep_no_intergenic", "Skip intergenic variants (VEP --no_intergenic)"),
    # Other options
    switch("no_reporting", "Annotate only; skip classification and the report"),
    switch("no_html", "Do not write the HTML report"),
    OptionSpec(
        "retained_info_tags",
        "str",
        "Comma-separated VCF INFO tags kept in the output TSV",
        default="None",
        vocabulary="info_tags",
    ),
    switch("ignore_noncoding", "Leave non-coding (not protein-altering) variants out of the report"),
)

RULES = (
    # verify_args_cpsr: several panels come from PanelApp (1-44); panel 0 is alone.
    rules.item_alone("panel_id", "0", "several panels are PanelApp panels 1-44"),
)

_PATH = "a path: the engine sets it"
_SWITCH = "a run-time switch: the engine sets it"
_CUSTOM = "a custom gene list is a file no sample carries yet: name the panels with panel_id"

TABLE = ReleaseTable(
    program="cpsr",
    release=RELEASE,
    source="sigven/pcgr v2.2.5: pcgr/cpsr.py, pcgr/arg_checker.py, pcgr/pcgr_vars.py",
    options=OPTIONS,
    rules=RULES,
    inputs={
        "vcf": "--input_vcf",
        "vep": "--vep_dir",
        "refdata": "--refdata_dir",
        "output": "--output_dir",
    },
    not_sample_options={
        **dict.fromkeys(("input_vcf", "vep_dir", "refdata_dir", "output_dir"), _PATH),
        **dict.fromkeys(("custom_list", "custom_list_name"), _CUSTOM),
        **dict.fromkeys(("force_overwrite", "debug", "pcgrr_conda", "version"), _SWITCH),
    },
)
