"""The consumer.toml the pcgr_consumer role writes is one the daemon reads, reference data included.

Ansible renders the role's own template (with the role's defaults, and with the variables
playbooks/provision.yml or an older inventory sets) on the controller; `load_config` then reads
each file exactly as the daemon does at start.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from capillary.local.playbook import REPO, run_playbook
from capillary.worker.config import engine_for, load_config

pytestmark = pytest.mark.integration

ROLE = REPO / "roles" / "pcgr_consumer"
QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/capillary-demo-work"

# Task vars rank above the defaults file, as set_fact and inventory variables do above role defaults.
CASES: dict[str, dict[str, object]] = {
    "defaults": {},
    "provision": {
        "pcgr_consumer_pcgr_refdata_root": "/srv/capillary/refdata/current",
        "pcgr_consumer_pcgr_assemblies": ["grch38", "grch37"],
    },
    "older-inventory": {"pcgr_consumer_pcgr_refdata_dir": "/data/pcgr/refdata/grch37"},
    "moved-data-volume": {"pcgr_consumer_data_dir": "/data"},
    "pcgr-fact": {
        "pcgr_consumer_pcgr_method": "container",
        "pcgr_consumer_pcgr_container_image": "ghcr.io/sigven/pcgr@sha256:" + "a" * 64,
        "pcgr_consumer_pcgr_container_runtime": "/usr/bin/podman",
        "pcgr_consumer_pcgr_conda_prefix": "/opt/pcgr/2.3.0/envs/pcgr",
    },
    "cpsr-for-normal": {"pcgr_consumer_engine": "pcgr", "pcgr_consumer_engine_normal": "cpsr"},
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("consumer-toml")
    tasks = [
        {
            "name": f"Render consumer.toml ({case})",
            "ansible.builtin.template": {
                "src": str(ROLE / "templates" / "etc" / "capillary" / "consumer.toml.j2"),
                "dest": str(out / f"{case}.toml"),
                "mode": "0600",
            },
            "vars": {"pcgr_consumer_queue_url": QUEUE, **variables},
        }
        for case, variables in CASES.items()
    ]
    play = [
        {
            "name": "Render the consumer configuration as the role does",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
            "tasks": tasks,
        }
    ]
    book = out / "render.yml"
    book.write_text(json.dumps(play))
    run_playbook(book, timeout=300).assert_ok()
    return {case: out / f"{case}.toml" for case in CASES}


def test_the_role_defaults_serve_grch38_from_the_refdata_root(rendered: dict[str, Path]) -> None:
    cfg = load_config(rendered["defaults"], env={})
    pcgr = cfg.pcgr
    assert pcgr.refdata_dir is None
    assert pcgr.refdata_root == Path("/srv/capillary/refdata/current")
    assert pcgr.installed_assemblies == ("grch38",)
    # AND every other path is the worker layout's, as the daemon would default it
    assert pcgr.vep_dir == Path("/srv/capillary/vep/current")
    assert cfg.workdir == Path("/srv/capillary/work")
    assert cfg.state_file == Path("/run/capillary/state.json")
    assert pcgr.conda_env == Path(f"/opt/pcgr/{pcgr.release}/envs/pcgr")
    assert "deployment" not in rendered["defaults"].read_text()


def test_a_deployment_gives_normal_samples_to_cpsr(rendered: dict[str, Path]) -> None:
    # GIVEN a PCGR deployment whose germline samples get CPSR's report
    cfg = load_config(rendered["cpsr-for-normal"], env={})
    # THEN the daemon runs CPSR for normal samples and PCGR for somatic ones
    assert (engine_for(cfg, "normal"), engine_for(cfg, "somatic")) == ("cpsr", "pcgr")
    # AND by default every kind runs on pcgr_consumer_engine
    defaults = load_config(rendered["defaults"], env={})
    assert {engine_for(defaults, kind) for kind in ("normal", "somatic")} == {defaults.engine}


def test_a_moved_data_volume_moves_the_whole_layout(rendered: dict[str, Path]) -> None:
    cfg = load_config(rendered["moved-data-volume"], env={})
    assert cfg.workdir == Path("/data/work")
    assert cfg.pcgr.refdata_root == Path("/data/refdata/current")
    assert cfg.pcgr.vep_dir == Path("/data/vep/current")


def test_what_the_pcgr_roles_fact_gives_reaches_the_engine(rendered: dict[str, Path]) -> None:
    pcgr = load_config(rendered["pcgr-fact"], env={}).pcgr
    assert pcgr.method == "container" and pcgr.container_runtime == "/usr/bin/podman"
    assert pcgr.container_image.endswith("a" * 64)
    assert pcgr.conda_env == Path("/opt/pcgr/2.3.0/envs/pcgr")


def test_what_provision_passes_serves_every_installed_assembly(rendered: dict[str, Path]) -> None:
    # GIVEN the root and assemblies of pcgr_refdata's local fact, as provision.yml passes them
    # WHEN the daemon reads the file the role wrote
    pcgr = load_config(rendered["provision"], env={}).pcgr
    # THEN each assembly is served from its own directory under the root
    assert pcgr.installed_assemblies == ("grch38", "grch37")
    assert pcgr.assembly_refdata_dir("grch37") == Path("/srv/capillary/refdata/current/grch37")
    assert pcgr.assembly_refdata_dir("grch38") == Path("/srv/capillary/refdata/current/grch38")


def test_an_older_inventorys_per_assembly_dir_still_works(rendered: dict[str, Path]) -> None:
    # GIVEN an inventory that still sets pcgr_consumer_pcgr_refdata_dir to one bundle
    text = rendered["older-inventory"].read_text()
    # WHEN the daemon reads the file the role wrote
    pcgr = load_config(rendered["older-inventory"], env={}).pcgr
    # THEN it is written in the per-assembly form alone, and serves exactly that assembly
    assert "refdata_root" not in text and "assemblies" not in text
    assert pcgr.installed_assemblies == ("grch37",)
    assert pcgr.assembly_refdata_dir("grch37") == Path("/data/pcgr/refdata/grch37")
