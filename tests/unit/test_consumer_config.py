"""The consumer's configuration: one TOML file plus CAPILLARY_* overrides, checked at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from capillary.worker.config import ConfigError, ConsumerConfig, load_config

QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/capillary-demo-work"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "consumer.toml"
    path.write_text(text)
    return path


def test_minimal_file_gets_the_documented_defaults(tmp_path: Path) -> None:
    # GIVEN a file with only the queue URL
    path = write(tmp_path, f'queue_url = "{QUEUE}"\n')
    # WHEN it is loaded with no overrides
    cfg = load_config(path, env={})
    # THEN the defaults apply
    assert cfg.queue_url == QUEUE
    assert cfg.engine == "summary"
    assert cfg.workdir == Path("/srv/capillary/work")
    assert cfg.poll_wait_s == 20
    assert cfg.spot_poll_s == 5.0
    assert cfg.imds_url == "http://169.254.169.254"
    assert cfg.pcgr.release == "2.3.2"
    assert cfg.pcgr.method == "conda"
    assert cfg.pcgr.refdata_root == Path("/srv/capillary/refdata/current")
    assert cfg.pcgr.installed_assemblies == ("grch38",)
    assert cfg.pcgr.assembly_refdata_dir("grch38") == Path("/srv/capillary/refdata/current/grch38")
    assert cfg.pcgr.vep_dir == Path("/srv/capillary/vep/current")
    assert cfg.state_file == Path("/run/capillary/state.json")
    # AND a message is held five minutes at a time, whatever the queue's own visibility
    assert cfg.visibility_extension_s == 300
    assert cfg.heartbeat_s == 60
    assert cfg.visibility_timeout_s == 0
    assert cfg.upload_retry_s == 600
    assert cfg.require_sandbox is False
    # AND the conda env is where the pcgr role installs the configured release
    assert cfg.pcgr.conda_env == Path("/opt/pcgr/2.3.2/envs/pcgr")


def test_file_values_and_tables_are_typed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f'queue_url = "{QUEUE}"\nengine = "pcgr"\nidle_minutes = 0.5\nworkdir = "/data/w"\n'
        '[pcgr]\nrelease = "1.4.1"\nrefdata_root = "/ref"\nassemblies = ["grch37", "grch38"]\n'
        '[summary]\nbcftools = "/opt/bcftools/bin/bcftools"\n',
    )
    cfg = load_config(path, env={})
    assert cfg.engine == "pcgr"
    assert cfg.idle_minutes == 0.5
    assert cfg.workdir == Path("/data/w")
    assert cfg.pcgr.release == "1.4.1"
    assert cfg.pcgr.refdata_root == Path("/ref")
    assert cfg.pcgr.assemblies == ("grch37", "grch38")
    assert cfg.summary.bcftools == "/opt/bcftools/bin/bcftools"


def test_each_installed_assembly_has_its_directory_under_the_refdata_root(tmp_path: Path) -> None:
    # GIVEN the layout pcgr_refdata installs for two assemblies, as the role writes it
    path = write(
        tmp_path,
        f'queue_url = "{QUEUE}"\n[pcgr]\nrefdata_root = "/srv/capillary/refdata/current"\n'
        'assemblies = ["grch38", "grch37"]\n',
    )
    # WHEN it is loaded
    pcgr = load_config(path, env={}).pcgr
    # THEN both assemblies are served, each from its own directory
    assert pcgr.installed_assemblies == ("grch38", "grch37")
    assert pcgr.assembly_refdata_dir("grch37") == Path("/srv/capillary/refdata/current/grch37")
    assert pcgr.assembly_refdata_dir("grch38") == Path("/srv/capillary/refdata/current/grch38")


def test_assemblies_from_the_environment_are_comma_separated(tmp_path: Path) -> None:
    path = write(tmp_path, f'queue_url = "{QUEUE}"\n')
    cfg = load_config(path, env={"CAPILLARY_PCGR_ASSEMBLIES": "grch37, grch38"})
    assert cfg.pcgr.installed_assemblies == ("grch37", "grch38")


@pytest.mark.parametrize("assembly", ["grch37", "grch38"])
def test_a_per_assembly_refdata_dir_from_an_older_file_serves_that_assembly_only(
    tmp_path: Path, assembly: str
) -> None:
    # GIVEN a consumer.toml written before refdata_root existed: one assembly's directory
    path = write(
        tmp_path,
        f'queue_url = "{QUEUE}"\nengine = "pcgr"\n[pcgr]\n'
        f'refdata_dir = "/srv/capillary/refdata/current/{assembly}"\n',
    )
    # WHEN it is loaded
    pcgr = load_config(path, env={}).pcgr
    # THEN the worker serves exactly that assembly, from exactly that directory
    assert pcgr.installed_assemblies == (assembly,)
    assert pcgr.assembly_refdata_dir(assembly) == Path(f"/srv/capillary/refdata/current/{assembly}")


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    # GIVEN a file and CAPILLARY_* variables for top-level and table fields
    path = write(tmp_path, f'queue_url = "{QUEUE}"\nheartbeat_s = 30\n')
    env = {
        "CAPILLARY_HEARTBEAT_S": "45",
        "CAPILLARY_IMDS_ENABLED": "false",
        "CAPILLARY_PCGR_RELEASE": "2.2.1",
        "CAPILLARY_SUMMARY_BCFTOOLS": "/usr/local/bin/bcftools",
    }
    # WHEN loaded
    cfg = load_config(path, env=env)
    # THEN the environment wins, with the field's type
    assert cfg.heartbeat_s == 45
    assert cfg.imds_enabled is False
    assert cfg.pcgr.release == "2.2.1"
    assert cfg.summary.bcftools == "/usr/local/bin/bcftools"


def test_default_path_may_be_absent_when_the_environment_has_the_queue(tmp_path: Path) -> None:
    cfg = load_config(
        None, env={"CAPILLARY_QUEUE_URL": QUEUE, "CAPILLARY_CONFIG": "/etc/capillary/consumer.toml"}
    )
    assert isinstance(cfg, ConsumerConfig)


@pytest.mark.parametrize(
    ("text", "env", "field", "reason"),
    [
        ("", {}, "queue_url", "required"),
        (f'queue_url = "{QUEUE}"\nengine = "gatk"\n', {}, "engine", "not one of"),
        (f'queue_url = "{QUEUE}"\nheartbeat_s = "often"\n', {}, "heartbeat_s", "expected an integer"),
        (
            f'queue_url = "{QUEUE}"\n',
            {"CAPILLARY_HEARTBEAT_S": "soon"},
            "CAPILLARY_HEARTBEAT_S",
            "expected an integer",
        ),
        (
            f'queue_url = "{QUEUE}"\nheartbeat_s = 300\nvisibility_extension_s = 300\n',
            {},
            "heartbeat_s",
            "shorter than visibility_extension_s",
        ),
        (
            f'queue_url = "{QUEUE}"\nvisibility_extension_s = 50000\n',
            {},
            "visibility_extension_s",
            "0-43200",
        ),
        (
            f'queue_url = "{QUEUE}"\nvisibility_timeout_s = 50000\n',
            {},
            "visibility_timeout_s",
            "0-43200",
        ),
        (f'queue_url = "{QUEUE}"\nretry_backoff_s = 3600\n', {}, "retry_backoff_s", "0-900"),
        (f'queue_url = "{QUEUE}"\nupload_retry_s = -1\n', {}, "upload_retry_s", "0 or more"),
        (f'queue_url = "{QUEUE}"\ndead_letter_queue_url = "dlq"\n', {}, "dead_letter_queue_url", "queue URL"),
        (f'queue_url = "{QUEUE}"\npoll_wait_s = 30\n', {}, "poll_wait_s", "0-20"),
        (f'queue_url = "{QUEUE}"\nidle_minutes = 0\n', {}, "idle_minutes", "greater than 0"),
        (f'queue_url = "{QUEUE}"\nworkdir = "work"\n', {}, "workdir", "absolute"),
        ('queue_url = "capillary-demo-work"\n', {}, "queue_url", "queue URL"),
        (f'queue_url = "{QUEUE}"\nqueue = "x"\n', {}, "queue", "unknown setting"),
        (f'queue_url = "{QUEUE}"\n[pcgr]\nmethod = "docker"\n', {}, "pcgr.method", "not one of"),
        (
            f'queue_url = "{QUEUE}"\nengine = "pcgr"\n[pcgr]\nmethod = "container"\n',
            {},
            "pcgr.container_image",
            "required",
        ),
        (f'queue_url = "{QUEUE}"\n[pcgr]\nrelese = "2.3"\n', {}, "pcgr.relese", "unknown setting"),
        (f'queue_url = "{QUEUE}"\nimds_enabled = "yes"\n', {}, "imds_enabled", "boolean"),
        (f'queue_url = "{QUEUE}"\nimds_url = "169.254.169.254"\n', {}, "imds_url", "http"),
        (f'queue_url = "{QUEUE}"\npcgr = 3\n', {}, "pcgr", "table"),
        (f'queue_url = "{QUEUE}"\n[pcgr]\nrefdata_dir = "/ref"\n', {}, "pcgr.refdata_dir", "must end in"),
        (f'queue_url = "{QUEUE}"\n[pcgr]\nassemblies = ["hg19"]\n', {}, "pcgr.assemblies", "not one of"),
        (f'queue_url = "{QUEUE}"\n[pcgr]\nassemblies = []\n', {}, "pcgr.assemblies", "at least one"),
        (f'queue_url = "{QUEUE}"\n[pcgr]\nassemblies = "grch38"\n', {}, "pcgr.assemblies", "list"),
        (
            f'queue_url = "{QUEUE}"\n[pcgr]\nassemblies = ["grch38", "grch38"]\n',
            {},
            "pcgr.assemblies",
            "each assembly once",
        ),
        (f'queue_url = "{QUEUE}"\n[pcgr]\nrefdata_root = "ref"\n', {}, "pcgr.refdata_root", "absolute"),
        (
            f'queue_url = "{QUEUE}"\n[pcgr]\nrefdata_dir = "/r/grch38"\nrefdata_root = "/r"\n',
            {},
            "pcgr.refdata_dir",
            "cannot be combined with pcgr.refdata_root",
        ),
        (
            f'queue_url = "{QUEUE}"\n[pcgr]\nassemblies = ["grch37", "grch38"]\n',
            {"CAPILLARY_PCGR_REFDATA_DIR": "/r/grch38"},
            "pcgr.refdata_dir",
            "cannot be combined with pcgr.assemblies",
        ),
    ],
)
def test_bad_configuration_names_the_field_and_the_reason(
    tmp_path: Path, text: str, env: dict[str, str], field: str, reason: str
) -> None:
    # GIVEN a configuration with one mistake
    path = write(tmp_path, text)
    # WHEN it is loaded
    with pytest.raises(ConfigError) as err:
        load_config(path, env=env)
    # THEN the error names the field and says why
    assert field in str(err.value)
    assert reason in str(err.value)


def test_invalid_toml_and_missing_file_name_the_file(tmp_path: Path) -> None:
    bad = write(tmp_path, "queue_url = \n")
    with pytest.raises(ConfigError, match=r"consumer\.toml: not valid TOML"):
        load_config(bad, env={})
    with pytest.raises(ConfigError, match=r"nowhere\.toml: configuration file not found"):
        load_config(tmp_path / "nowhere.toml", env={"CAPILLARY_QUEUE_URL": QUEUE})
