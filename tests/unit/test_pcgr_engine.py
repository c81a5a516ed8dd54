"""The pcgr engine: the PCGR command built from a sample's TOML and the release's table, 2.x and 1.4.

PCGR and its bundles cannot run here. Command construction is tested directly; the execution
path (conda env layout, environment, process group, outputs) runs a fake `pcgr` executable that
stands in ONLY for the external binary — the code under test is ours.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from pathlib import Path

import pytest

from capillary.contract.tarball import ExtractedSample, safe_extract
from capillary.worker.config import ConsumerConfig
from capillary.worker.engines import EngineInputError, EngineSetupError, get_engine, run_process
from capillary.worker.engines.pcgr import (
    PcgrConfig,
    build_args,
    default_sample_id,
    invocation,
    option_args,
    select_refdata,
)
from tests.support.pcgr_standin import conda_layout, refdata_layout
from tests.support.samples import make_sample_tarball

QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/capillary-demo-work"


def args_for(release: str, options: dict[str, object], cna: str | None = None) -> list[str]:
    return build_args(
        release=release,
        options=options,
        vcf="/w/in/t.vcf.gz",
        cna=cna,
        output_dir="/w/out",
        refdata_dir="/ref",
        vep_dir="/vep",
        sample_id="b1-abc123-somatic",
    )


def flag_value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_pcgr_2x_command_uses_separate_refdata_and_vep_dirs() -> None:
    # GIVEN a sample's options for PCGR 2.3
    options = {
        "genome_assembly": "grch38",
        "assay": "WGS",
        "tumor_site": 9,
        "tumor_dp_tag": "TDP",
        "estimate_tmb": True,
    }
    # WHEN the command is built
    argv = args_for("2.3.2", options, cna="/w/in/c.tsv")
    # THEN it has the 2.x structural flags and each option once
    assert flag_value(argv, "--input_vcf") == "/w/in/t.vcf.gz"
    assert flag_value(argv, "--input_cna") == "/w/in/c.tsv"
    assert flag_value(argv, "--vep_dir") == "/vep"
    assert flag_value(argv, "--refdata_dir") == "/ref"
    assert flag_value(argv, "--output_dir") == "/w/out"
    assert flag_value(argv, "--genome_assembly") == "grch38"
    assert flag_value(argv, "--sample_id") == "b1-abc123-somatic"
    assert flag_value(argv, "--assay") == "WGS"
    assert flag_value(argv, "--tumor_site") == "9"
    assert flag_value(argv, "--tumor_dp_tag") == "TDP"
    assert "--estimate_tmb" in argv
    assert "--pcgr_dir" not in argv
    assert argv.count("--genome_assembly") == 1


def test_pcgr_14_command_uses_pcgr_dir_and_renamed_flags() -> None:
    options = {"genome_assembly": "grch37", "effective_target_size_mb": 30.5, "estimate_msi": True}
    argv = args_for("1.4.1", {**options, "estimate_tmb": True})
    assert flag_value(argv, "--pcgr_dir") == "/ref"
    assert "--refdata_dir" not in argv and "--vep_dir" not in argv
    assert flag_value(argv, "--target_size_mb") == "30.5"
    assert "--effective_target_size_mb" not in argv
    assert "--estimate_msi_status" in argv
    assert "--input_cna" not in argv


def test_false_switches_are_omitted_and_sample_id_option_wins() -> None:
    argv = args_for("2.2.5", {"genome_assembly": "grch38", "vcf2maf": False, "sample_id": "PATIENT_X"})
    assert "--vcf2maf" not in argv
    assert flag_value(argv, "--sample_id") == "PATIENT_X"


@pytest.mark.parametrize(
    ("release", "options", "needle"),
    [
        ("2.3.2", {"genome_assembly": "grch38", "turbo": True}, "unknown PCGR option 'turbo'"),
        ("2.3.2", {"genome_assembly": "hg19"}, "genome_assembly must be one of"),
        ("2.3.2", {"assay": "WGS"}, "genome_assembly is required"),
        ("2.3.2", {"genome_assembly": "grch38", "tumor_purity": 1.5}, "tumor_purity must be within (0, 1]"),
        ("2.3.2", {"genome_assembly": "grch38", "output_dir": "/etc"}, "a path: the engine sets it"),
        (
            "2.3.2",
            {"genome_assembly": "grch38", "cell_line": True},
            "cell_line is not available in PCGR 2.3.2",
        ),
        ("2.3.2", {"genome_assembly": "grch38", "vep_n_forks": 9}, "vep_n_forks must be within [1, 8]"),
        (
            "2.3.2",
            {"genome_assembly": "grch38", "sample_id": "x;rm -rf ~"},
            "sample_id: 'x;rm -rf ~' may hold",
        ),
        (
            "1.4.1",
            {"genome_assembly": "grch38", "tmb_display": "missense_only"},
            "tmb_display is not available in PCGR 1.4.1",
        ),
    ],
)
def test_invalid_options_are_rejected_before_the_run(
    release: str, options: dict[str, object], needle: str
) -> None:
    with pytest.raises(EngineInputError) as err:
        option_args(options, release)
    assert needle in str(err.value)


def test_values_are_formatted_as_the_release_parses_them() -> None:
    # GIVEN integers, whole-number floats, negative floats and switches
    argv = args_for(
        "1.4.1",
        {
            "genome_assembly": "grch38",
            "prevalence_reference_signatures": 10,
            "effective_target_size_mb": 30,
            "logr_homdel": -1.5,
            "tumor_only": True,
            "vcf2maf": False,
        },
    )
    # THEN an int stays an int, a number keeps its value, a switch has no value
    assert flag_value(argv, "--prevalence_reference_signatures") == "10"
    assert flag_value(argv, "--target_size_mb") == "30"
    assert flag_value(argv, "--logr_homdel") == "-1.5"
    assert "--tumor_only" in argv
    following = argv[argv.index("--tumor_only") + 1 :]
    assert not following or following[0].startswith("--")
    assert "--vcf2maf" not in argv


def test_a_release_without_a_table_is_the_workers_problem(tmp_path: Path) -> None:
    prefix = conda_layout(tmp_path)
    with pytest.raises(EngineSetupError, match=r"pcgr.release: PCGR '2.3.0': no option table"):
        get_engine("pcgr", config(prefix, release="2.3.0")).command(
            extracted(tmp_path), "s", tmp_path / "o" / "s"
        )


def test_a_derived_sample_id_that_pcgr_would_refuse_is_refused_first() -> None:
    with pytest.raises(EngineInputError, match="sample id sample_id must be 3 to 40 characters"):
        build_args(
            release="2.3.2",
            options={"genome_assembly": "grch38"},
            vcf="/w/t.vcf.gz",
            cna=None,
            output_dir="/w/out",
            refdata_dir="/ref",
            vep_dir="/vep",
            sample_id="ab",
        )


def test_member_paths_reaching_the_command_line_are_checked_again(tmp_path: Path) -> None:
    # GIVEN an unpacked sample whose VCF name carries shell characters (the tarball check missed it)
    prefix = conda_layout(tmp_path)
    sample = extracted(tmp_path)
    hostile = sample.root / "s" / "x;id.vcf.gz"
    # WHEN the engine builds the command THEN it refuses, naming the member, and builds nothing
    with pytest.raises(EngineInputError, match=r"member name 's/x;id.vcf.gz' may hold only"):
        get_engine("pcgr", config(prefix)).command(
            dataclasses.replace(sample, vcfs=[hostile]), "s", tmp_path / "ws" / "out" / "s"
        )


@pytest.mark.parametrize("method", ["conda", "container"])
def test_the_preview_is_the_command_the_worker_runs(tmp_path: Path, method: str) -> None:
    # GIVEN a sample and a worker
    prefix = conda_layout(tmp_path)
    sample = extracted(tmp_path, cna=True, options={"tumor_ploidy": 2.1, "estimate_signatures": True})
    engine = get_engine("pcgr", config(prefix, method=method))
    outdir = tmp_path / "ws" / "out" / "s"
    # WHEN the worker builds its command and `validate --show-command` previews it
    argv = engine.command(sample, "b1-abc123-somatic", outdir).argv
    preview = engine.preview(  # type: ignore[attr-defined]
        sample.root,
        sample.vcfs,
        sample.cna,
        sample.options,
        "b1-abc123-somatic",
        outdir,
        user=f"{os.getuid()}:{os.getgid()}",
    )
    # THEN the two are the same argv
    assert preview == argv


def test_sample_id_from_a_long_name_keeps_uuid_and_kind() -> None:
    sid = default_sample_id("a very long batch name with spaces-2024-11-abc123-somatic")
    assert len(sid) <= 35
    assert sid.endswith("abc123-somatic")
    assert " " not in sid
    # AND every release takes it as its sample id
    for release in ("2.3.2", "2.2.5", "1.4.1"):
        assert option_args({"genome_assembly": "grch38", "sample_id": sid}, release) == []


# -- the execution path, with a fake `pcgr` standing in for the external binary ----------------
# (tests/support/pcgr_standin.py: the stand-in, the conda layout and pcgr_refdata's layout)


def extracted(tmp_path: Path, **kwargs: object) -> ExtractedSample:
    tarball = make_sample_tarball(tmp_path / "src", batch="b1", **kwargs)  # type: ignore[arg-type]
    return safe_extract(tarball, tmp_path / "input")


def config(
    prefix: Path,
    release: str = "2.3.2",
    method: str = "conda",
    assemblies: tuple[str, ...] = ("grch38",),
    root: Path | None = None,
) -> ConsumerConfig:
    """A pcgr configuration with the reference data of `assemblies` installed beside `prefix`."""
    if root is None:
        root = refdata_layout(prefix.parent / f"data-{prefix.name}", *assemblies)
    return ConsumerConfig(
        queue_url=QUEUE,
        engine="pcgr",
        pcgr=PcgrConfig(
            release=release,
            conda_prefix=prefix,
            refdata_root=root,
            assemblies=assemblies,
            vep_dir=Path("/vep"),
            method=method,
            container_image="localhost/pcgr:2.3.0",
        ),
    )


def test_conda_run_sets_the_env_and_produces_outputs(tmp_path: Path) -> None:
    # GIVEN a pcgr env with its pcgrr sibling, and an unpacked sample with a CNA file
    prefix = conda_layout(tmp_path)
    sample = extracted(tmp_path, cna=True, options={"assay": "WGS"})
    engine = get_engine("pcgr", config(prefix))
    outdir = tmp_path / "ws" / "out" / "b1-sample"
    # WHEN the engine's command runs through the consumer's process runner
    cmd = engine.command(sample, "b1-sample", outdir)
    outcome = run_process(cmd, tmp_path / "engine.log", timeout_s=30, stops=(threading.Event(),))
    # THEN PCGR ran from the env, in its own process group, writing into the output dir
    assert outcome.returncode == 0 and not outcome.timed_out, (tmp_path / "engine.log").read_text()
    call = json.loads((outdir / "fake-pcgr-call.json").read_text())
    assert call["conda_prefix"] == str(prefix)
    assert call["xdg_cache_home"].startswith(str(tmp_path / "ws"))
    assert call["pgid"] == call["pid"]
    assert f"--input_vcf {sample.vcfs[0]}" in call["argv"]
    assert f"--input_cna {sample.cna}" in call["argv"]
    assert "--assay WGS" in call["argv"]
    assert "--vep_n_forks 2 " in call["argv"]  # from pcgr.threads, as the sample set none
    assert (outdir / "report.html").exists()


def test_engine_failure_status_reaches_the_outcome(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = conda_layout(tmp_path)
    sample = extracted(tmp_path)
    monkeypatch.setenv("FAKE_PCGR_EXIT", "3")
    cmd = get_engine("pcgr", config(prefix)).command(sample, "s", tmp_path / "ws" / "out" / "s")
    outcome = run_process(cmd, tmp_path / "engine.log", timeout_s=30, stops=(threading.Event(),))
    assert outcome.returncode == 3
    assert not outcome.timed_out and not outcome.stopped


def test_missing_pcgrr_sibling_is_a_setup_error(tmp_path: Path) -> None:
    prefix = conda_layout(tmp_path)
    (prefix.parent / "pcgrr").rmdir()
    sample = extracted(tmp_path)
    with pytest.raises(EngineSetupError, match="pcgrr env must sit beside"):
        get_engine("pcgr", config(prefix)).command(sample, "s", tmp_path / "out" / "s")


def test_two_vcfs_are_refused_for_pcgr(tmp_path: Path) -> None:
    prefix = conda_layout(tmp_path)
    # safe_extract already refuses a second VCF (contract.tarball.MAX_VCFS): hand the engine one anyway
    one = extracted(tmp_path)
    sample = dataclasses.replace(one, vcfs=[one.vcfs[0], one.vcfs[0]])
    with pytest.raises(EngineInputError, match="exactly one VCF"):
        get_engine("pcgr", config(prefix)).command(sample, "s", tmp_path / "out" / "s")


def test_container_method_runs_as_this_user_with_a_writable_cache(tmp_path: Path) -> None:
    sample = extracted(tmp_path, cna=True)
    outdir = tmp_path / "ws" / "out" / "s"
    cmd = get_engine("pcgr", config(tmp_path, method="container")).command(sample, "s", outdir)
    argv = cmd.argv
    assert argv[:2] == ["podman", "run"]
    assert f"--user={os.getuid()}:{os.getgid()}" in argv
    assert "--env=XDG_CACHE_HOME=/tmp/.cache" in argv
    assert "--network=none" in argv
    assert f"--volume={sample.root}:/mnt/input:ro" in argv
    refdata = cmd_refdata_root(argv) / "grch38"
    assert f"--volume={refdata}:/mnt/refdata:ro" in argv
    assert f"--volume={outdir}:/mnt/output:rw" in argv
    image = argv.index("localhost/pcgr:2.3.0")
    assert argv[image + 1] == "pcgr"
    inner = argv[image + 2 :]
    assert flag_value(inner, "--input_vcf").startswith("/mnt/input/")
    assert flag_value(inner, "--input_cna").startswith("/mnt/input/")
    assert flag_value(inner, "--refdata_dir") == "/mnt/refdata"
    assert flag_value(inner, "--output_dir") == "/mnt/output"


def test_the_engine_runs_the_argv_the_pcgr_role_smoke_checks(tmp_path: Path) -> None:
    # GIVEN the shape the pcgr role checks an install with (`pcgr --version`, no mounts)
    cfg = config(tmp_path, method="container")
    smoke, _ = invocation(cfg.pcgr, ["--version"], user="65534:65534", cache=tmp_path)
    # WHEN the engine builds a sample's command
    sample = extracted(tmp_path, cna=True)
    argv = get_engine("pcgr", cfg).command(sample, "s", tmp_path / "ws" / "out" / "s").argv

    # THEN the two differ only in the user, the mounts and PCGR's own arguments
    def shape(a: list[str]) -> list[str]:
        return [x for x in a[: a.index("pcgr") + 1] if not x.startswith(("--user=", "--volume="))]

    assert shape(argv) == shape(smoke)
    assert smoke[-2:] == ["pcgr", "--version"] and "--user=65534:65534" in smoke


def test_conda_env_defaults_to_the_pcgr_roles_layout_for_the_release(tmp_path: Path) -> None:
    # GIVEN no conda_prefix: the env is where the pcgr role installs the configured release
    pcgr = PcgrConfig(release="2.2.5", method="conda")
    argv, env = invocation(pcgr, ["--version"], user="", cache=tmp_path / ".cache", environ={"PATH": "/bin"})
    # THEN PCGR runs from that env, with CONDA_PREFIX (its pcgrr sibling is found from it) and a cache
    assert argv == ["/opt/pcgr/2.2.5/envs/pcgr/bin/pcgr", "--version"]
    assert env["CONDA_PREFIX"] == "/opt/pcgr/2.2.5/envs/pcgr"
    assert env["PATH"] == "/opt/pcgr/2.2.5/envs/pcgr/bin:/bin"
    assert env["XDG_CACHE_HOME"] == str(tmp_path / ".cache") and env["HOME"] == str(tmp_path)


def cmd_refdata_root(argv: list[str]) -> Path:
    """The refdata root behind the `/mnt/refdata` mount of a container command."""
    mount = next(a for a in argv if a.endswith(":/mnt/refdata:ro"))
    return Path(mount.removeprefix("--volume=").split(":")[0]).parent


# -- the reference data of the sample's own assembly -------------------------------------------


def test_each_assembly_gets_its_own_reference_data(tmp_path: Path) -> None:
    # GIVEN a worker with bundles for both assemblies
    root = refdata_layout(tmp_path, "grch37", "grch38")
    pcgr = PcgrConfig(refdata_root=root, assemblies=("grch38", "grch37"))
    # WHEN a sample of each assembly asks for its reference data
    # THEN each gets the directory of its own assembly
    assert select_refdata(pcgr, "grch37", "b1-abc123-somatic") == root / "grch37"
    assert select_refdata(pcgr, "grch38", "b1-abc123-somatic") == root / "grch38"


def test_an_assembly_not_installed_is_rejected_naming_sample_assembly_and_what_is_installed(
    tmp_path: Path,
) -> None:
    # GIVEN a worker with GRCh38 data only
    pcgr = PcgrConfig(refdata_root=refdata_layout(tmp_path, "grch38"), assemblies=("grch38",))
    # WHEN a GRCh37 sample asks for its reference data
    with pytest.raises(EngineInputError) as err:
        select_refdata(pcgr, "grch37", "b1-abc123-somatic")
    # THEN it is a problem of the sample, which the message spells out
    message = str(err.value)
    assert "sample b1-abc123-somatic" in message
    assert "genome_assembly 'grch37' is not installed on this worker" in message
    assert "reference data installed: grch38" in message


def test_an_assembly_listed_but_missing_on_disk_is_a_worker_problem(tmp_path: Path) -> None:
    # GIVEN a configuration listing GRCh37 while only the GRCh38 bundle is on disk
    pcgr = PcgrConfig(refdata_root=refdata_layout(tmp_path, "grch38"), assemblies=("grch38", "grch37"))
    # WHEN a GRCh37 sample asks for it THEN the worker, not the sample, is at fault
    with pytest.raises(EngineSetupError, match=r"grch37 is missing although the configuration lists"):
        select_refdata(pcgr, "grch37", "s")


def test_a_per_assembly_refdata_dir_serves_its_own_assembly_only(tmp_path: Path) -> None:
    # GIVEN an older configuration naming one assembly's directory
    root = refdata_layout(tmp_path, "grch37", "grch38")
    pcgr = PcgrConfig(refdata_dir=root / "grch38")
    # WHEN samples of both assemblies ask
    # THEN the one it names runs there, and the other is rejected even though its files exist
    assert select_refdata(pcgr, "grch38", "s") == root / "grch38"
    with pytest.raises(EngineInputError, match=r"reference data installed: grch38\)"):
        select_refdata(pcgr, "grch37", "s")


@pytest.mark.parametrize(("release", "flag"), [("2.3.2", "--refdata_dir"), ("1.4.1", "--pcgr_dir")])
def test_two_assemblies_installed_each_sample_runs_pcgr_on_its_own(
    tmp_path: Path, release: str, flag: str
) -> None:
    # GIVEN a worker with both assemblies' bundles and a GRCh37 and a GRCh38 sample
    prefix = conda_layout(tmp_path)
    engine = get_engine("pcgr", config(prefix, release=release, assemblies=("grch38", "grch37")))
    samples = {a: extracted(tmp_path / a, assembly=a, options={"assay": "WGS"}) for a in ("grch37", "grch38")}
    for assembly, sample in samples.items():
        outdir = tmp_path / "ws" / assembly / "out" / "s"
        # WHEN each runs through the stand-in PCGR
        cmd = engine.command(sample, f"b1-abc123-{assembly}", outdir)
        outcome = run_process(cmd, tmp_path / f"{assembly}.log", timeout_s=30, stops=(threading.Event(),))
        assert outcome.returncode == 0, (tmp_path / f"{assembly}.log").read_text()
        # THEN PCGR was given the bundle of the sample's own assembly, and that assembly
        argv = json.loads((outdir / "fake-pcgr-call.json").read_text())["argv"].split()
        assert Path(flag_value(argv, flag)).parts[-1] == assembly
        assert Path(flag_value(argv, flag)).is_dir()
        assert flag_value(argv, "--genome_assembly") == assembly


def test_an_uninstalled_assembly_never_starts_pcgr(tmp_path: Path) -> None:
    # GIVEN a GRCh38-only worker and a GRCh37 sample
    prefix = conda_layout(tmp_path)
    engine = get_engine("pcgr", config(prefix, assemblies=("grch38",)))
    sample = extracted(tmp_path, assembly="grch37")
    outdir = tmp_path / "ws" / "out" / "s"
    # WHEN the engine is asked for its command
    with pytest.raises(EngineInputError, match=r"genome_assembly 'grch37' is not installed"):
        engine.command(sample, "b1-abc123-somatic", outdir)
    # THEN there is no command to run, so PCGR never started
    assert not (outdir / "fake-pcgr-call.json").exists()


def test_option_problems_come_before_the_assembly_check(tmp_path: Path) -> None:
    # GIVEN a sample whose options lost genome_assembly after extraction checked them
    prefix = conda_layout(tmp_path)
    sample = dataclasses.replace(extracted(tmp_path), options={"assay": "WGS"})
    # WHEN the command is built THEN the option is reported, not a missing assembly
    with pytest.raises(EngineInputError, match="genome_assembly is required"):
        get_engine("pcgr", config(prefix)).command(sample, "s", tmp_path / "out" / "s")


def test_container_method_mounts_the_samples_assembly_only(tmp_path: Path) -> None:
    sample = extracted(tmp_path, assembly="grch37")
    cfg = config(tmp_path / "p", method="container", assemblies=("grch37", "grch38"))
    cmd = get_engine("pcgr", cfg).command(sample, "s", tmp_path / "ws" / "out" / "s")
    assert f"--volume={cfg.pcgr.refdata_root / 'grch37'}:/mnt/refdata:ro" in cmd.argv
    assert flag_value(cmd.argv, "--genome_assembly") == "grch37"


def test_stop_event_kills_the_whole_process_group(tmp_path: Path) -> None:
    # GIVEN a command that starts a grandchild which ignores nothing but outlives its parent
    script = tmp_path / "tree.sh"
    script.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {tmp_path}/child.pid\nwait\n")
    script.chmod(0o755)
    from capillary.worker.engines import EngineCommand

    stop = threading.Event()
    timer = threading.Timer(1.0, stop.set)
    timer.start()
    # WHEN the stop event fires
    outcome = run_process(
        EngineCommand([str(script)], tmp_path), tmp_path / "log", timeout_s=60, stops=(stop,)
    )
    # THEN the run reports it was stopped and the grandchild is gone too
    assert outcome.stopped
    child = int((tmp_path / "child.pid").read_text())
    assert not alive(child)


def alive(pid: int) -> bool:
    """Running (a reaped or zombie process is not), allowing init a moment to reap it."""
    import time

    for _ in range(50):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        if state == "Z":
            return False
        time.sleep(0.1)
    return True


def test_timeout_kills_the_group(tmp_path: Path) -> None:
    from capillary.worker.engines import EngineCommand

    outcome = run_process(
        EngineCommand(["sleep", "30"], tmp_path), tmp_path / "log", timeout_s=0.5, stops=(threading.Event(),)
    )
    assert outcome.timed_out
    assert outcome.duration_s < 10
