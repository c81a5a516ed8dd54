"""The pcgr role: the container method for real against a local OCI registry; conda up to its boundary.

Here the container method runs against this host (connection local) with the local fact it
writes moved into a temporary directory; the role's Molecule scenario runs it on a booted
container with nested podman, installing the runtime itself. The image comes from Debian's
docker-registry on a loopback port, built FROM the project's base image with a `pcgr` that
answers --version, pushed under the PCGR image's repository path and tag. The role installs no
wrapper: what it records is run the way the consumer's engine runs it (`invocation`).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capillary.contract.layout import CONTAINER_INPUT, CONTAINER_OUTPUT, CONTAINER_REFDATA, CONTAINER_VEP
from capillary.local.playbook import Recap, run_playbook
from capillary.local.podman import PODMAN_ENV
from capillary.release.catalogue import load_catalogue
from capillary.release.pcgr_install import conda_plan
from capillary.worker.engines.pcgr import PcgrConfig, invocation
from tests.support.podman_targets import BootedTarget
from tests.support.registry import OciRegistry, push_pcgr_image

pytestmark = [pytest.mark.integration, pytest.mark.containers]

PLAYBOOK = "tests/integration/playbooks/pcgr.yml"


@pytest.fixture(scope="module")
def registry_image() -> Iterator[tuple[OciRegistry, str, str]]:
    release = load_catalogue().current
    with OciRegistry() as registry:
        ref, digest = push_pcgr_image(registry, release.install.image, release.version)
        yield registry, ref, digest
        subprocess.run(["podman", "rmi", "-f", ref], env=PODMAN_ENV, capture_output=True, check=False)


def run_local(tmp_path: Path, **extra: Any) -> Recap:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "hosts": {
                        "localhost": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                        }
                    }
                }
            }
        )
    )
    extra_vars = {
        "pcgr_test_hosts": "localhost",
        "_pcgr_fact_dir": str(tmp_path / "facts.d"),
        **extra,
    }
    return run_playbook(PLAYBOOK, inventory=inventory, extra_vars=extra_vars, env=PODMAN_ENV)


def run_as_the_engine(
    fact: dict[str, Any], args: list[str], tmp_path: Path, volumes: tuple[str, ...] = ()
) -> str:
    """`pcgr <args>` through the argv the consumer's engine builds from what the fact records."""
    cfg = PcgrConfig(
        release=fact["release"], method=fact["method"], container_image=fact["image"],
        container_runtime=fact["runtime"],
    )  # fmt: skip
    argv, env = invocation(cfg, args, user="65534:65534", cache=tmp_path / ".cache", volumes=volumes)
    env["CONTAINERS_CONF"] = PODMAN_ENV["CONTAINERS_CONF"]
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=True, cwd=tmp_path).stdout


def test_container_method_pulls_and_records_what_the_engine_runs(
    registry_image: tuple[OciRegistry, str, str], tmp_path: Path
) -> None:
    # GIVEN the current release's image in the local registry, not pulled yet
    _, ref, _ = registry_image
    subprocess.run(["podman", "rmi", "-f", ref], env=PODMAN_ENV, capture_output=True, check=False)
    version = load_catalogue().current.version

    # WHEN the role runs twice with the container method
    first = run_local(tmp_path, pcgr_container_image=ref, pcgr_container_tls_verify=False)
    second = run_local(tmp_path, pcgr_container_image=ref, pcgr_container_tls_verify=False)

    # THEN it pulled the image and recorded it with the runtime it found, and changed nothing again
    first.assert_ok()
    assert first.changed >= 3, first.tail()
    second.assert_idempotent()
    fact = json.loads((tmp_path / "facts.d" / "pcgr.fact").read_text())
    assert fact["release"] == version and fact["method"] == "container" and fact["image"] == ref
    assert Path(fact["runtime"]).is_absolute() and fact["conda_env"] == ""
    assert "command" not in fact  # no wrapper
    # AND the engine's argv, built from the fact, runs the release
    assert run_as_the_engine(fact, ["--version"], tmp_path).strip() == f"pcgr {version}"
    # AND, with the engine's mounts, PCGR runs as non-root with XDG_CACHE_HOME set and sees them
    mounts = {CONTAINER_INPUT: "ro", CONTAINER_REFDATA: "ro", CONTAINER_VEP: "ro", CONTAINER_OUTPUT: "rw"}
    volumes = []
    for inside, mode in mounts.items():
        (tmp_path / inside.rsplit("/", 1)[1]).mkdir()
        volumes.append(f"{tmp_path / inside.rsplit('/', 1)[1]}:{inside}:{mode}")
    who = run_as_the_engine(fact, ["--whoami"], tmp_path, tuple(volumes))
    assert "uid=65534 gid=65534 xdg=/tmp/.cache" in who
    assert {"input", "refdata", "vep", "output"} <= set(who.split())


def test_container_method_pulls_by_digest(
    registry_image: tuple[OciRegistry, str, str], tmp_path: Path
) -> None:
    # GIVEN the digest the registry reported on push
    _, ref, digest = registry_image
    # WHEN the role is asked to pull by that digest
    recap = run_local(
        tmp_path, pcgr_container_image=ref, pcgr_container_digest=digest, pcgr_container_tls_verify=False
    )
    # THEN the fact, which the consumer runs, names the image by digest, and that image runs
    recap.assert_ok()
    pinned = f"{ref.rsplit(':', 1)[0]}@{digest}"
    fact = json.loads((tmp_path / "facts.d" / "pcgr.fact").read_text())
    assert fact["image"] == pinned
    assert run_as_the_engine(fact, ["--version"], tmp_path).startswith("pcgr ")


def test_preflight_refuses_unknown_release_and_assembly(tmp_path: Path) -> None:
    unknown = run_local(tmp_path, pcgr_release="9.9.9")
    assert unknown.rc != 0 and "no PCGR release '9.9.9'" in unknown.stdout + unknown.stderr
    # hg19 is refused by the argument spec's choices, before the catalogue is consulted
    assembly = run_local(tmp_path, pcgr_release="2.2.5", pcgr_assemblies=["hg19"])
    assert assembly.rc != 0 and "hg19" in assembly.stdout and "pcgr_assemblies" in assembly.stdout


@pytest.fixture(scope="module")
def target() -> Iterator[BootedTarget]:
    with BootedTarget(prefix="capillary-pcgr") as t:
        yield t


def test_container_method_refuses_a_target_without_a_runtime(target: BootedTarget, tmp_path: Path) -> None:
    # GIVEN the bookworm target, which has neither podman nor docker
    inventory = target.inventory(tmp_path / "inventory.yml")
    # WHEN the role runs with the container method, told not to install the runtime
    recap = run_playbook(
        PLAYBOOK,
        inventory=inventory,
        env=PODMAN_ENV,
        extra_vars={"pcgr_method": "container", "pcgr_container_runtime_install": False},
    )
    # THEN preflight stops it, naming the runtime and the switch
    assert recap.rc != 0 and "needs podman on the target" in recap.stdout, recap.tail()
    assert "pcgr_container_runtime_install is off" in " ".join(recap.stdout.split())


def test_conda_method_runs_to_the_network_boundary(target: BootedTarget, tmp_path: Path) -> None:
    # GIVEN a bookworm target and a micromamba URL that (like conda's channels here) cannot be reached
    inventory = target.inventory(tmp_path / "inventory.yml")
    # WHEN the role runs with the conda method
    recap = run_playbook(
        PLAYBOOK,
        inventory=inventory,
        env=PODMAN_ENV,
        extra_vars={
            "pcgr_method": "conda",
            "pcgr_release": "2.2.5",
            "pcgr_micromamba_url": "http://127.0.0.1:9/micromamba.tar.bz2",
            "pcgr_download_retries": 0,
        },
    )
    # THEN preflight passed, the versioned prefix exists, and it stopped at the download
    assert recap.rc != 0
    assert "Download micromamba" in recap.stdout and "failed" in recap.stdout.lower()
    plan = conda_plan(load_catalogue().release("2.2.5"))
    assert target.exec("test", "-d", plan["envs_dir"], check=False).returncode == 0
    assert target.exec("test", "-d", plan["locks_dir"], check=False).returncode == 0
