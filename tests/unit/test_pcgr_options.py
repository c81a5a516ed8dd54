"""The sample TOML's options: one table per PCGR release, facts read from PCGR's source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from capillary.contract.pcgr_options import (
    DEFAULT_RELEASE,
    OPTIONS,
    PCGR_RELEASES,
    TABLES,
    UnknownReleaseError,
    releases_with,
    table,
    validate_options,
    with_defaults,
)
from capillary.release.catalogue import load_catalogue
from tests.support.pcgr_facts import DOC_BEGIN, DOC_END, doc_markers, options_markdown

GRCH38 = {"genome_assembly": "grch38"}
TAGS = {"tumor_dp_tag": "TDP", "tumor_af_tag": "TAF"}


def test_every_catalogue_release_has_a_table_and_the_default_is_the_current_one() -> None:
    catalogue = load_catalogue()
    assert set(catalogue.versions) <= set(PCGR_RELEASES)
    assert catalogue.current.version == DEFAULT_RELEASE
    assert OPTIONS is table().options


@pytest.mark.parametrize("release", PCGR_RELEASES)
def test_every_option_has_a_flag_a_type_a_help_and_valid_defaults(release: str) -> None:
    spec_table = table(release)
    assert spec_table.source.startswith(f"sigven/pcgr v{release}:")
    for name, spec in spec_table.options.items():
        assert spec.name == name and spec.flag.startswith("--") and spec.help
        assert spec.type in {"str", "int", "float", "bool"}
        assert spec.type != "str" or spec.vocabulary is not None, name
    # The release's defaults, all at once, are a valid sample (with and without a CNA file)
    assert validate_options({**GRCH38, **spec_table.defaults()}, release) == []
    assert validate_options({**GRCH38, **spec_table.defaults()}, release, cna=True) == []
    flags = [spec.flag for spec in spec_table.options.values()] + list(spec_table.inputs.values())
    assert len(flags) == len(set(flags)), "two options share a flag"
    assert not set(spec_table.options) & set(spec_table.not_sample_options)


@pytest.mark.parametrize("release", PCGR_RELEASES)
def test_paths_run_switches_and_secrets_are_not_sample_options(release: str) -> None:
    for engine_owned in ("input_vcf", "input_cna", "output_dir", "force_overwrite", "debug", "pcgrr_conda"):
        problems = validate_options({**GRCH38, engine_owned: "x"}, release)
        assert [p.code for p in problems] == ["option_unknown"]
        assert "is not a sample option" in problems[0].message
    assert validate_options({**GRCH38, "oncokb_api_token": "x"}, "2.3.2")[0].code == "option_unknown"


# -- facts that differ between releases (each read from that tag's main.py / arg_checker.py) ------


@pytest.mark.parametrize(
    ("name", "releases"),
    [
        ("cell_line", ["1.4.1"]),
        ("maf_gnomad_nfe", ["2.2.5", "1.4.1"]),
        ("maf_onekg_eur", ["1.4.1"]),
        ("gnomad_popmax_af_tolerated", ["2.3.2"]),
        ("n_copy_gain", ["2.2.5"]),
        ("cna_overlap_pct", ["2.2.5", "1.4.1"]),
        ("cna_transcript_overlap_pct", ["2.3.2"]),
        ("vcf2maf", ["2.2.5", "1.4.1"]),
        ("tmb_display", ["2.3.2", "2.2.5"]),
        ("sex", ["2.3.2", "2.2.5"]),
        ("fusion_min_split_reads", ["2.3.2"]),
        ("cna_threshold_mode", ["2.3.2"]),
        ("exclude_clinvar_germline", ["2.3.2", "2.2.5"]),
        ("ignore_noncoding", ["2.3.2", "2.2.5"]),
        ("show_noncoding", ["1.4.1"]),
        ("estimate_msi", ["2.3.2", "2.2.5", "1.4.1"]),
    ],
)
def test_which_releases_have_an_option(name: str, releases: list[str]) -> None:
    assert releases_with(name) == releases


def test_flags_that_pcgr_14_names_differently() -> None:
    v1 = table("1.4.1").options
    assert v1["estimate_msi"].flag == "--estimate_msi_status"
    assert v1["effective_target_size_mb"].flag == "--target_size_mb"
    assert v1["retained_info_tags"].flag == "--preserved_info_tags"
    assert v1["no_reporting"].flag == "--basic"
    assert table("2.3.2").options["estimate_msi"].flag == "--estimate_msi"


@pytest.mark.parametrize(
    ("release", "name", "low", "high"),
    [
        ("2.3.2", "vep_n_forks", 1, 8),
        ("2.2.5", "vep_n_forks", 2, 8),  # 2.2.5 refuses vep_n_forks <= VEP_MIN_FORKS
        ("1.4.1", "vep_n_forks", 1, 4),
        ("2.3.2", "vep_buffer_size", 50, 30000),
        ("1.4.1", "vep_buffer_size", 1, 30000),
        ("2.3.2", "effective_target_size_mb", 0, 34),
        ("2.3.2", "prevalence_reference_signatures", 0, 20),
        ("2.3.2", "cna_amp_threshold_absolute", 3, 20),
    ],
)
def test_ranges_are_the_releases_own(release: str, name: str, low: float, high: float) -> None:
    assert validate_options({**GRCH38, name: low}, release) == []
    assert validate_options({**GRCH38, name: high}, release) == []
    step = 1 if isinstance(low, int) and table(release).options[name].type == "int" else 0.5
    for outside in (low - step, high + step):
        problems = validate_options({**GRCH38, name: outside}, release)
        assert [p.code for p in problems] == ["option_range"], (name, outside)
        assert f"in PCGR {release}" in problems[0].message


@pytest.mark.parametrize(("release", "low", "high"), [("2.3.2", 3, 40), ("2.2.5", 3, 40), ("1.4.1", 3, 35)])
def test_sample_id_length_is_the_releases(release: str, low: int, high: int) -> None:
    assert validate_options({**GRCH38, "sample_id": "x" * low}, release) == []
    assert validate_options({**GRCH38, "sample_id": "x" * high}, release) == []
    for length in (low - 1, high + 1):
        problems = validate_options({**GRCH38, "sample_id": "x" * length}, release)
        assert [p.code for p in problems] == ["option_length"]
        assert f"{low} to {high} characters" in problems[0].message


def test_pcgr_14_takes_prevalence_as_one_of_its_integers() -> None:
    assert validate_options({**GRCH38, "prevalence_reference_signatures": 5}, "1.4.1") == []
    problems = validate_options({**GRCH38, "prevalence_reference_signatures": 0.1}, "1.4.1")
    assert [p.code for p in problems] == ["option_type"]
    not_a_choice = validate_options({**GRCH38, "prevalence_reference_signatures": 3}, "1.4.1")
    assert [p.code for p in not_a_choice] == ["option_choice"]
    assert validate_options({**GRCH38, "prevalence_reference_signatures": 0.1}, "2.3.2") == []


def test_vep_pick_order_must_name_every_criterion_once() -> None:
    full = "mane_select,mane_plus_clinical,canonical,biotype,ccds,rank,tsl,appris,length"
    assert validate_options({**GRCH38, "vep_pick_order": ",".join(reversed(full.split(",")))}) == []
    for partial in ("canonical,rank", full + ",rank", full.replace("rank", "canonical")):
        problems = validate_options({**GRCH38, "vep_pick_order": partial}, "2.3.2")
        assert [p.code for p in problems] == ["option_choice"]
        assert "exactly once" in problems[0].message
    v1 = "canonical,appris,biotype,ccds,rank,tsl,length,mane"
    assert validate_options({**GRCH38, "vep_pick_order": v1}, "1.4.1") == []
    assert validate_options({**GRCH38, "vep_pick_order": v1}, "2.3.2")[0].code == "option_choice"


# -- cross-option rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("release", "options", "needle"),
    [
        ("2.3.2", {"estimate_msi": True}, "estimate_msi = true needs estimate_tmb = true"),
        ("1.4.1", {"estimate_msi": True}, "estimate_msi = true needs estimate_tmb = true"),
        ("2.3.2", {"tumor_dp_min": 10}, "tumor_dp_min needs tumor_dp_tag"),
        ("2.2.5", {"control_ad_max": 2}, "control_ad_max needs control_af_tag"),
        ("2.3.2", {"tumor_only": True, "control_dp_tag": "NDP"}, "does not allow control_dp_tag"),
        (
            "2.3.2",
            {"tumor_only": True, "exclude_likely_het_germline": True},
            "exclude_likely_het_germline = true with tumor_only = true needs tumor_af_tag",
        ),
        (
            "2.3.2",
            {"tumor_dp_tag": "TDP", "tumor_af_tag": "TAF", "tumor_dp_min": 10, "tumor_ad_min": 11},
            "tumor_ad_min (11) must be at most tumor_dp_min (10)",
        ),
        (
            "2.3.2",
            {"tumor_dp_tag": "TDP", "tumor_dp_min": 20, "tmb_dp_min": 10},
            "tmb_dp_min (10) must be at least tumor_dp_min (20)",
        ),
        (
            "2.3.2",
            {**TAGS, "tumor_dp_min": 20, "tumor_ad_min": 3, "tmb_ad_min": 4},
            "tmb_ad_min with tumor_ad_min and tumor_dp_min set needs tmb_dp_min",
        ),
        ("2.3.2", {"sex": "MALE", "tumor_site": 18}, "tumor_site = 18 is not allowed with sex = 'MALE'"),
        ("2.2.5", {"sex": "FEMALE", "tumor_site": 23}, "tumor_site = 23 is not allowed with sex = 'FEMALE'"),
        ("1.4.1", {"cell_line": True}, "cell_line = true needs tumor_only = true"),
    ],
)
def test_each_cross_option_rule_is_named_with_the_release(
    release: str, options: dict[str, Any], needle: str
) -> None:
    problems = validate_options({**GRCH38, **options}, release)
    assert [p.code for p in problems] == ["option_conflict"], problems
    assert needle in problems[0].message and f"(PCGR {release})" in problems[0].message


def test_cna_rules_apply_only_with_a_cna_file() -> None:
    # GIVEN a triploid-and-a-half tumour: the default gain threshold (3) is below the ploidy
    options = {**GRCH38, "tumor_ploidy": 3.5}
    # THEN PCGR 2.3.2 accepts it without a CNA file, and refuses it with one, as PCGR does
    assert validate_options(options, "2.3.2") == []
    problems = validate_options(options, "2.3.2", cna=True)
    assert [p.member for p in problems] == ["option tumor_ploidy"]
    assert "cna_gain_threshold_absolute (3) must be above tumor_ploidy (3.5)" in problems[0].message
    assert validate_options({**options, "cna_gain_threshold_absolute": 4}, "2.3.2", cna=True) == []
    assert validate_options({**options, "cna_threshold_mode": "relative"}, "2.3.2", cna=True) == []
    too_high = validate_options({**GRCH38, "tumor_ploidy": 9.0}, "2.3.2", cna=True)
    assert "must be within [1, 8]" in str(too_high[0])


# -- messages --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "code", "message"),
    [
        ({"tumour_site": 1}, "option_unknown", "unknown PCGR option 'tumour_site'"),
        ({"--assay": "WGS"}, "option_unknown", "without the leading '--'"),
        ({"pcgr": {"assay": "WGS"}}, "option_unknown", "flat: no tables"),
        ({"tumor_site": "9"}, "option_type", "tumor_site must be an integer (found str)"),
        ({"tumor_site": True}, "option_type", "tumor_site must be an integer (found bool)"),
        ({"tumor_site": 31}, "option_range", "tumor_site must be within [0, 30] in PCGR 2.3.2 (found 31)"),
        ({"tumor_purity": 0}, "option_range", "tumor_purity must be within (0, 1] in PCGR 2.3.2 (found 0)"),
        ({"tumor_purity": float("nan")}, "option_type", "tumor_purity must be a finite number (found nan)"),
        ({"tumor_ploidy": float("inf")}, "option_type", "tumor_ploidy must be a finite number (found inf)"),
        ({"estimate_tmb": "yes"}, "option_type", "estimate_tmb must be true or false"),
        ({"assay": "wgs"}, "option_choice", "assay must be one of 'WGS', 'WES', 'TARGETED' in PCGR 2.3.2"),
        ({"sample_id": "has space"}, "option_value", "sample_id: 'has space' may hold only"),
        ({"tumor_dp_tag": "DP;id"}, "option_value", "is not a VCF INFO tag name"),
        ({"retained_info_tags": "AF,$(id)"}, "option_value", "item '$(id)' is not a VCF INFO tag name"),
        ({"min_mutations_signatures": 50}, "option_range", "min_mutations_signatures must be >= 100"),
        ({"cell_line": True}, "option_unavailable", "cell_line is not available in PCGR 2.3.2"),
    ],
)
def test_each_bad_option_is_named_with_its_reason(options: dict[str, Any], code: str, message: str) -> None:
    problems = validate_options({**GRCH38, **options}, "2.3.2")
    assert [p.code for p in problems] == [code]
    assert message in problems[0].message


def test_a_refused_value_or_name_is_printed_escaped() -> None:
    problems = validate_options({**GRCH38, "assay": "WGS\n\x1b[2J", "bad\nname": 1}, "2.3.2")
    for problem in problems:
        assert "\n" not in str(problem) and "\x1b" not in str(problem)
    assert any("'bad\\nname'" in str(p) for p in problems)


def test_a_1_4_flag_name_in_the_toml_gets_the_capillary_name() -> None:
    problems = validate_options({**GRCH38, "target_size_mb": 30}, "1.4.1")
    assert "write effective_target_size_mb" in problems[0].message


def test_genome_assembly_is_required() -> None:
    problems = validate_options({"assay": "WGS"}, "2.3.2")
    assert [p.code for p in problems] == ["option_missing"]
    assert "genome_assembly is required" in problems[0].message


# -- without a release: valid when some release takes it -------------------------------------------


def test_without_a_release_any_release_that_accepts_the_sample_will_do() -> None:
    # A 1.4.1-only option: valid for the tarball validator, refused for 2.3.2
    only_v1 = {**GRCH38, "tumor_only": True, "cell_line": True}
    assert validate_options(only_v1) == []
    assert validate_options(only_v1, "2.3.2")[0].code == "option_unavailable"
    # Options no single release has together: the default release's problems
    mixed = {**GRCH38, "cell_line": True, "tumor_only": True, "tmb_display": "missense_only"}
    assert [p.code for p in validate_options(mixed)] == ["option_unavailable"]


def test_an_unknown_release_has_no_table() -> None:
    with pytest.raises(UnknownReleaseError, match=r"no option table for this release \(tables: 2.3.2"):
        validate_options(GRCH38, "2.3.0")
    assert table("v2.3.2") is TABLES[("pcgr", "2.3.2")]


def test_with_defaults_fills_the_releases_defaults() -> None:
    assert with_defaults(GRCH38)["vep_buffer_size"] == 500
    assert with_defaults(GRCH38, "1.4.1")["vep_buffer_size"] == 100
    assert "tumor_dp_min" not in with_defaults(GRCH38, "2.3.2")


def test_the_contract_docs_show_the_tables_as_they_are() -> None:
    # docs/sample-contract.md carries the options table generated from the tables; regenerate it
    # with `python -c "from tests.support.pcgr_facts import options_markdown; print(options_markdown())"`
    docs = (Path(__file__).resolve().parents[2] / "docs" / "sample-contract.md").read_text()
    start, end = docs.index(DOC_BEGIN), docs.index(DOC_END) + len(DOC_END)
    assert docs[start:end] == options_markdown()


def test_the_contract_docs_show_cpsrs_tables_as_they_are() -> None:
    # docs/sample-contract.md's CPSR table, regenerated as the PCGR one is, with
    # `options_markdown("cpsr")`
    docs = (Path(__file__).resolve().parents[2] / "docs" / "sample-contract.md").read_text()
    begin, end = doc_markers("cpsr")
    start, stop = docs.index(begin), docs.index(end) + len(end)
    assert docs[start:stop] == options_markdown("cpsr")
