"""The schema of a sample's PCGR options."""

from __future__ import annotations

from typing import Any

import pytest

from capillary.contract.pcgr_options import OPTIONS, validate_options, with_defaults


def test_every_option_has_a_2x_flag_and_a_described_type() -> None:
    for name, spec in OPTIONS.items():
        assert spec.name == name
        assert spec.flag == f"--{name}"
        assert spec.flag_v1 is None or spec.flag_v1.startswith("--")
        assert spec.type in {"str", "int", "float", "bool"} and spec.help
        if spec.default is not None:
            assert validate_options({"genome_assembly": "grch38", name: spec.default}) == [], name


def test_paths_and_run_switches_are_not_sample_options() -> None:
    for engine_owned in ("input_vcf", "input_cna", "refdata_dir", "vep_dir", "output_dir", "force_overwrite"):
        assert engine_owned not in OPTIONS


def test_flags_that_differ_in_pcgr_14() -> None:
    assert OPTIONS["estimate_msi"].flag_v1 == "--estimate_msi_status"
    assert OPTIONS["effective_target_size_mb"].flag_v1 == "--target_size_mb"
    assert OPTIONS["tmb_display"].flag_v1 is None
    assert OPTIONS["tumor_site"].flag_v1 == "--tumor_site"


def test_a_typical_sample_is_valid() -> None:
    options = {
        "genome_assembly": "grch38",
        "assay": "WGS",
        "tumor_site": 9,
        "tumor_purity": 0.6,
        "tumor_ploidy": 2,
        "estimate_tmb": True,
        "vep_pick_order": "canonical,rank",
        "sample_id": "PT-0042_T1",
    }
    assert validate_options(options) == []
    assert with_defaults(options)["vep_buffer_size"] == 500


@pytest.mark.parametrize(
    ("options", "code", "message"),
    [
        ({"tumour_site": 1}, "option_unknown", "unknown PCGR option 'tumour_site'"),
        ({"--assay": "WGS"}, "option_unknown", "without the leading '--'"),
        ({"pcgr": {"assay": "WGS"}}, "option_unknown", "flat: no tables"),
        ({"tumor_site": "9"}, "option_type", "tumor_site must be an integer (found str)"),
        ({"tumor_site": True}, "option_type", "tumor_site must be an integer (found bool)"),
        ({"tumor_site": 31}, "option_range", "tumor_site must be <= 30"),
        ({"tumor_purity": -0.1}, "option_range", "tumor_purity must be >= 0.0"),
        ({"tumor_purity": float("nan")}, "option_type", "tumor_purity must be a number"),
        ({"estimate_tmb": "yes"}, "option_type", "estimate_tmb must be true or false"),
        ({"assay": "wgs"}, "option_choice", "assay must be one of 'WGS', 'WES', 'TARGETED'"),
        ({"vep_pick_order": "canonical,best"}, "option_choice", "(unknown: best)"),
        ({"sample_id": "has space"}, "option_value", "sample_id must not contain whitespace"),
        ({"sample_id": "x" * 36}, "option_length", "sample_id must be 1 to 35 characters"),
        ({"min_mutations_signatures": 50}, "option_range", "min_mutations_signatures must be >= 100"),
        ({"cell_line": True}, "option_conflict", "cell_line = true needs tumor_only = true"),
    ],
)
def test_each_bad_option_is_named_with_its_reason(options: dict[str, Any], code: str, message: str) -> None:
    problems = validate_options({"genome_assembly": "grch38", **options})
    assert [p.code for p in problems] == [code]
    assert message in problems[0].message


def test_genome_assembly_is_required() -> None:
    problems = validate_options({"assay": "WGS"})
    assert [p.code for p in problems] == ["option_missing"]
    assert "genome_assembly is required" in problems[0].message
