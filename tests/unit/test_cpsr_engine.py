"""Engines by kind: a `normal` sample runs CPSR where the deployment says so, a `somatic` one PCGR.

CPSR cannot run here. The engine's command is tested directly; the execution path runs the same
stand-in as the pcgr engine's tests, installed as the env's `bin/cpsr` (it stands in ONLY for the
external binary).
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from capillary.contract.pcgr_options import validate_options
from capillary.contract.tarball import ExtractedSample, safe_extract
from capillary.worker.config import ConfigError, ConsumerConfig, engine_for, engines_in_use, load_config
from capillary.worker.engines import EngineInputError, EngineSetupError, get_engine, run_process
from capillary.worker.engines.cpsr import CpsrEngine
from capillary.worker.engines.pcgr import PcgrConfig, PcgrEngine, build_args
from capillary.worker.pipeline import SamplePipeline
from tests.support.pcgr_standin import conda_layout, refdata_layout
from tests.support.samples import make_sample_tarball

QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/capillary-demo-work"
# A germline sample's CPSR options: the PCGR defaults of make_sample_tarball removed.
CPSR_OPTIONS: dict[str, Any] = {
    "assay": None,
    "tumor_site": None,
    "tumor_purity": None,
    "tumor_ploidy": None,
    "tumor_dp_tag": None,
    "tumor_af_tag": None,
    "estimate_tmb": None,
    "estimate_msi": None,
    "panel_id": "0",
    "secondary_findings": True,
}


def flag_value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def cpsr_env(base: Path) -> Path:
    """The pcgr env with the stand-in installed as `cpsr` too, as the PCGR package installs both."""
    prefix = conda_layout(base)
    shutil.copy2(prefix / "bin" / "pcgr", prefix / "bin" / "cpsr")
    return prefix


def config(prefix: Path, release: str = "2.3.2", **engines: str) -> ConsumerConfig:
    root = refdata_layout(prefix.parent / "data", "grch38")
    return ConsumerConfig(
        queue_url=QUEUE,
        engine=engines.pop("engine", "pcgr"),
        pcgr=PcgrConfig(release=release, conda_prefix=prefix, refdata_root=root, vep_dir=Path("/vep")),
        **engines,
    )


def normal_sample(tmp_path: Path, **kwargs: Any) -> ExtractedSample:
    options = {**CPSR_OPTIONS, **kwargs.pop("options", {})}
    tarball = make_sample_tarball(tmp_path / "src", batch="b1", kind="normal", options=options, **kwargs)
    return safe_extract(tarball, tmp_path / "input")


# -- which engine ---------------------------------------------------------------------------------


def test_each_kind_runs_on_its_configured_engine(tmp_path: Path) -> None:
    # GIVEN a deployment running PCGR for somatic samples and CPSR for normal ones
    cfg = load_config(
        _write(tmp_path, f'queue_url = "{QUEUE}"\nengine = "pcgr"\nengine_normal = "cpsr"\n'), env={}
    )
    # THEN each kind gets its engine, and the consumer builds both
    assert engine_for(cfg, "normal") == "cpsr"
    assert engine_for(cfg, "somatic") == "pcgr"
    assert engines_in_use(cfg) == ("pcgr", "cpsr")


def test_without_a_per_kind_engine_every_kind_runs_on_engine(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, f'queue_url = "{QUEUE}"\n'), env={})
    assert cfg.engine_normal == cfg.engine_somatic == ""
    assert {engine_for(cfg, kind) for kind in ("normal", "somatic")} == {"summary"}
    assert engines_in_use(cfg) == ("summary",)


def test_the_environment_sets_a_kinds_engine(tmp_path: Path) -> None:
    path = _write(tmp_path, f'queue_url = "{QUEUE}"\nengine = "pcgr"\n')
    cfg = load_config(path, env={"CAPILLARY_ENGINE_NORMAL": "cpsr"})
    assert engine_for(cfg, "normal") == "cpsr"


def test_an_unknown_per_kind_engine_is_refused_naming_the_field(tmp_path: Path) -> None:
    path = _write(tmp_path, f'queue_url = "{QUEUE}"\nengine_normal = "germline"\n')
    with pytest.raises(ConfigError, match=r"engine_normal: 'germline' is not one of .*cpsr"):
        load_config(path, env={})


def test_a_container_cpsr_needs_the_image(tmp_path: Path) -> None:
    path = _write(tmp_path, f'queue_url = "{QUEUE}"\nengine_normal = "cpsr"\n[pcgr]\nmethod = "container"\n')
    with pytest.raises(ConfigError, match=r"pcgr\.container_image"):
        load_config(path, env={})


def test_the_pipeline_asks_for_the_engine_of_the_items_kind(tmp_path: Path) -> None:
    # GIVEN a pipeline holding the engines of a pcgr + cpsr deployment
    cfg = config(cpsr_env(tmp_path), engine_normal="cpsr")
    engines = {name: get_engine(name, cfg) for name in engines_in_use(cfg)}
    pipeline = SamplePipeline(cfg, None, engines, None, threading.Event(), dict, lambda *_: None, None)  # type: ignore[arg-type]
    # WHEN it picks the engine for a normal and a somatic work item
    normal = SimpleNamespace(sample=SimpleNamespace(kind="normal"))
    somatic = SimpleNamespace(sample=SimpleNamespace(kind="somatic"))
    # THEN the normal one runs CPSR, the somatic one PCGR, each recording its own name
    assert isinstance(pipeline.engine_for(normal), CpsrEngine)  # type: ignore[arg-type]
    assert type(pipeline.engine_for(somatic)) is PcgrEngine  # type: ignore[arg-type]
    assert pipeline.versions(pipeline.engine_for(normal))["engine"] == "cpsr"  # type: ignore[arg-type]


# -- the command ----------------------------------------------------------------------------------


def test_cpsr_reads_the_pcgr_install_and_runs_its_cpsr(tmp_path: Path) -> None:
    # GIVEN a CPSR deployment's engine and a normal sample
    prefix = cpsr_env(tmp_path)
    engine = get_engine("cpsr", config(prefix, engine_normal="cpsr"))
    sample = normal_sample(tmp_path)
    outdir = tmp_path / "ws" / "out" / "b1-normal"
    # WHEN its command is built and run
    cmd = engine.command(sample, "b1-0a1b2c-normal", outdir)
    outcome = run_process(cmd, tmp_path / "engine.log", 30, [])
    # THEN the env's cpsr ran with the shared bundle and VEP cache, and CPSR's own options
    assert outcome.returncode == 0
    argv = cmd.argv
    assert argv[0] == str(prefix / "bin" / "cpsr")
    assert flag_value(argv, "--refdata_dir").endswith("/grch38") and flag_value(argv, "--vep_dir") == "/vep"
    assert flag_value(argv, "--panel_id") == "0" and "--secondary_findings" in argv
    assert "--input_cna" not in argv
    assert (outdir / "report.html").exists()


def test_a_missing_cpsr_executable_is_the_workers_problem(tmp_path: Path) -> None:
    prefix = conda_layout(tmp_path)  # bin/pcgr only
    engine = get_engine("cpsr", config(prefix))
    with pytest.raises(EngineSetupError, match="bin/cpsr is not an executable CPSR install"):
        engine.command(normal_sample(tmp_path), "s", tmp_path / "out" / "s")


def test_a_copy_number_file_is_refused_for_cpsr(tmp_path: Path) -> None:
    engine = get_engine("cpsr", config(cpsr_env(tmp_path)))
    with pytest.raises(EngineInputError, match=r"CPSR 2\.3\.2 takes no copy-number file"):
        engine.command(normal_sample(tmp_path, cna=True), "s", tmp_path / "out" / "s")


def test_pcgr_options_in_a_cpsr_sample_are_refused_naming_them(tmp_path: Path) -> None:
    # GIVEN a sample mixing PCGR's options into CPSR's (the upload check refuses it already: no
    # program takes both; the engine checks again on its own)
    engine = get_engine("cpsr", config(cpsr_env(tmp_path)))
    unpacked = normal_sample(tmp_path)
    sample = dataclasses.replace(unpacked, options={**unpacked.options, "estimate_tmb": True})
    with pytest.raises(EngineInputError) as refused:
        engine.command(sample, "s", tmp_path / "out" / "s")
    assert refused.value.problems == [
        "option estimate_tmb: unknown CPSR option 'estimate_tmb' (an option of PCGR, not of CPSR)"
    ]


def test_cpsr_needs_a_panel(tmp_path: Path) -> None:
    problems = validate_options({"genome_assembly": "grch38"}, "2.3.2", program="cpsr")
    assert [str(p) for p in problems] == ["panel_id is required"]


@pytest.mark.parametrize(
    ("release", "value", "accepted"),
    [
        ("2.3.2", "0", True),
        ("2.3.2", "43", True),
        ("2.3.2", "44", False),  # GE_panels holds 0-43 at 2.3.2
        ("2.2.5", "44", True),  # and 0-44 at 2.2.5
        ("1.4.1", "43", False),  # and 0-42 at 1.4.1
        ("2.3.2", "1,5,7", True),
        ("2.3.2", "0,5", False),  # several panels are PanelApp's 1-43
        ("2.3.2", "x", False),
    ],
)
def test_panel_ids_follow_each_releases_panels(release: str, value: str, accepted: bool) -> None:
    problems = validate_options({"genome_assembly": "grch38", "panel_id": value}, release, program="cpsr")
    assert (problems == []) is accepted, problems
    assert all(p.member == "option panel_id" and f"CPSR {release}" in p.message for p in problems)


def test_cpsr_1_4_1_is_installed_with_pcgr_and_takes_its_bundle_dir() -> None:
    # GIVEN a 1.4.1 worker (the pcgr-1.4.1 conda package declares the cpsr entry point)
    options = {
        "genome_assembly": "grch38",
        "panel_id": "3,5",
        "retained_info_tags": "TDP",
        "no_reporting": True,
        "clinvar_ignore_noncancer": True,
    }
    # WHEN its CPSR command is built
    argv = build_args(
        release="1.4.1",
        options=options,
        vcf="/w/in/g.vcf.gz",
        cna=None,
        output_dir="/w/out",
        refdata_dir="/ref/grch38",
        vep_dir="/vep",
        sample_id="b1-0a1b2c-normal",
        program="cpsr",
    )
    # THEN it has 1.4's one bundle directory and 1.4's flags for the renamed options
    assert flag_value(argv, "--pcgr_dir") == "/ref/grch38" and "--vep_dir" not in argv
    assert flag_value(argv, "--preserved_info_tags") == "TDP" and "--basic" in argv
    assert "--clinvar_ignore_noncancer" in argv
    # AND 2.x-only options are refused naming the release that has them
    [problem] = validate_options({**options, "pgx_findings": True}, "1.4.1", program="cpsr")
    assert problem.message == (
        "pgx_findings is not available in CPSR 1.4.1 (it is an option of CPSR 2.3.2, 2.2.5)"
    )


def test_the_tarball_check_takes_either_programs_options(tmp_path: Path) -> None:
    # A sample's tarball does not know its deployment's engine for its kind: both pass at upload.
    assert normal_sample(tmp_path).options["panel_id"] == "0"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "consumer.toml"
    path.write_text(text)
    return path


def test_the_upload_check_reports_the_program_a_sample_comes_closest_to() -> None:
    # GIVEN a germline sample with one bad CPSR value, checked without knowing its engine
    problems = validate_options({"genome_assembly": "grch38", "panel_id": "0,5"}, program=None)
    # THEN the problem shown is CPSR's, not every CPSR option PCGR lacks
    assert [p.member for p in problems] == ["option panel_id"] and "CPSR 2.3.2" in problems[0].message
    # AND a somatic sample's problems stay PCGR's
    [problem] = validate_options({"genome_assembly": "grch38", "tumour_site": 1}, program=None)
    assert problem.message == "unknown PCGR option 'tumour_site'"
