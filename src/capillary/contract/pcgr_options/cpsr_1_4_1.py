"""CPSR 1.4.1's interface, as facts.

At 1.4.1 the CPSR command line is part of the PCGR package too: its `setup.py` declares the
`cpsr = pcgr.cpsr:main` entry point beside `pcgr`, the package and `scripts/cpsr.R` come from the
same `pcgr` conda package the catalogue's lock file installs (`pcgr-1.4.1`), and the `pcgrr` lock
file holds CPSR's R half (`r-cpsr`); the Docker image builds both envs from those lock files.
(sigven/cpsr holds CPSR's R package and documentation.) So a 1.4.1 worker runs CPSR as it runs
PCGR, with the one `--pcgr_dir` bundle. Read from sigven/pcgr at tag v1.4.1:
- `pcgr/cpsr.py`, `get_args()`: every flag, its type, choices and default;
- `pcgr/arg_checker.py`, `check_args_cpsr()`, with the limits written inline: sample id more
  than two characters, single panel 0-42, several panels 1-42, maf_upper_threshold in (0, 1],
  vcfanno_n_proc 1-15, vep_n_forks 1-4, vep_buffer_size 1-30000, the eight VEP pick criteria;
- `pcgr/pcgr_vars.py`: GE_panels 0..42.

As in PCGR 1.4's table, options with another 1.4 flag keep their (2.x) Capillary name:
`retained_info_tags` is `--preserved_info_tags` and `no_reporting` is `--basic`. Options whose
meaning differs keep their own 1.4 names: `clinvar_ignore_noncancer` (2.x inverted it as
`clinvar_report_noncancer`) and `vep_gencode_all` (2.x: `vep_gencode_basic`). `panel_id` is
required, as in 2.x (a custom list is a file no sample carries yet).
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

RELEASE = "1.4.1"
# pcgr_vars.GE_panels: 0 = CPSR's exploratory panel, 1-42 Genomics England PanelApp panels.
PANELS = tuple(str(panel) for panel in range(43))
VEP_PICK_CRITERIA = ("canonical", "appris", "tsl", "biotype", "ccds", "rank", "length", "mane")
GNOMAD_POPULATIONS = ("afr", "amr", "eas", "sas", "asj", "nfe", "fin", "global")
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

OPTIONS = options(
    # Required arguments (sample_id is required by CPSR; the engine derives one when unset)
    OptionSpec(
        "genome_assembly", "str", "Human genome assembly build of the VCF", choices=ASSEMBLIES, required=True
    ),
    # CPSR 1.4.1 checks only "more than two characters"; Capillary caps it at 2.x's 40.
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
        'several comma-separated Genomics England PanelApp panels "1"-"42"',
        items=PANELS,
        required=True,
    ),
    switch("diagnostic_grade_only", "PanelApp panels: genes with a GREEN (diagnostic-grade) status only"),
    # Classification and report options (one "Other options" group in 1.4.1)
    switch("secondary_findings", "Include variants of the ACMG list for secondary findings"),
    switch("gwas_findings", "Report low to moderate cancer risk variants from GWAS (tag SNPs)"),
    # CPSR 1.4.1 does not check it; Capillary takes a p-value in (0, 1].
    number(
        "gwas_p_value",
        "Required p-value for variants listed as GWAS hits",
        default=0.000005,
        minimum=0,
        min_exclusive=True,
        maximum=1,
    ),
    choice(
        "pop_gnomad",
        "gnomAD population for variant frequencies in the ACMG classification",
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
    switch(
        "clinvar_ignore_noncancer",
        "Leave out ClinVar variants reported only for conditions not related to cancer",
    ),
    switch("ignore_noncoding", "Leave non-coding variants out of the report"),
    choice("report_theme", "Visual theme of the report (rmarkdown)", REPORT_THEMES, default="default"),
    switch("report_nonfloating_toc", "Do not float the report's table of contents"),
    choice(
        "report_table_display",
        "Detail of the report's interactive tables",
        ("full", "light"),
        default="light",
    ),
    switch("no_reporting", "Annotate only; skip classification and the report", flag="--basic"),
    switch("no_vcf_validate", "Skip validating the VCF with Ensembl's vcf-validator"),
    OptionSpec(
        "retained_info_tags",
        "str",
        "Comma-separated VCF INFO tags kept in the output TSV",
        flag="--preserved_info_tags",
        default="None",
        vocabulary="info_tags",
    ),
    # vcfanno options
    integer("vcfanno_n_proc", "vcfanno processes (-p)", default=4, minimum=1, maximum=15),
    # VEP options
    integer(
        "vep_n_forks",
        "VEP --fork (the engine sets it from pcgr.threads unless the sample does)",
        default=4,
        minimum=1,
        maximum=4,
    ),
    integer("vep_buffer_size", "VEP --buffer_size", default=500, minimum=1, maximum=30000),
    switch("vep_gencode_all", "All GENCODE transcripts (1.4 uses VEP --gencode_basic by default)"),
    # CPSR 1.4.1 counts the known criteria (8 needed); Capillary asks for each exactly once.
    item_list(
        "vep_pick_order",
        "Transcript properties, in order, for the primary consequence (VEP "
        "--pick_order); all of them, each once",
        VEP_PICK_CRITERIA,
        default="canonical,appris,biotype,ccds,rank,tsl,length,mane",
        permutation=True,
    ),
    switch("vep_no_intergenic", "Skip intergenic variants (VEP --no_intergenic)"),
)

RULES = (
    # check_args_cpsr: several panels come from PanelApp (1-42); panel 0 is alone.
    rules.item_alone("panel_id", "0", "several panels are PanelApp panels 1-42"),
)

_PATH = "a path: the engine sets it"
_SWITCH = "a run-time switch: the engine sets it"
_CUSTOM = "a custom gene list is a file no sample carries yet: name the panels with panel_id"

TABLE = ReleaseTable(
    program="cpsr",
    release=RELEASE,
    source="sigven/pcgr v1.4.1: pcgr/cpsr.py, pcgr/arg_checker.py, pcgr/pcgr_vars.py, setup.py",
    options=OPTIONS,
    rules=RULES,
    inputs={
        "vcf": "--input_vcf",
        "refdata": "--pcgr_dir",
        "output": "--output_dir",
    },
    not_sample_options={
        **dict.fromkeys(("input_vcf", "pcgr_dir", "output_dir"), _PATH),
        **dict.fromkeys(("custom_list", "custom_list_name"), _CUSTOM),
        **dict.fromkeys(("force_overwrite", "debug", "pcgrr_conda", "version"), _SWITCH),
    },
)
