"""The pcgr role: the container method for real against a local OCI registry; conda up to its boundary.

Here the container method runs against this host (connection local) with every path it writes
(wrapper, local fact) moved into a temporary directory; the role's Molecule scenario runs it on
a booted container with nested podman, installing the runtime itself. The image comes from
Debian's docker-registry on a loopback port, built FROM the project's base image with a
`pcgr` that answers --version, pushed under the PCGR image's repository path and tag.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capillary.local.artifacts import OciRegistry, podman_env, push_pcgr_image
from capillary.local.playbook import Recap, run_playbook
from capillary.release.catalogue import load_catalogue
from capillary.release.pcgr_install import conda_plan
from tests.support.podman_targets import BootedTarget

pytestmark = [pytest.mark.integration, pytest.mark.containers]

PLAYBOOK = "tests/integration/playbooks/pcgr.yml"


@pytest.fixture(scope="module")
def registry_image() -> Iterator[tuple[OciRegistry, str, str]]:
    release = load_catalogue().current
    with OciRegistry() as registry:
        ref, digest = push_pcgr_image(registry, release.install.image, release.version)
        yield registry, ref, digest
        subprocess.run(["podman", "rmi", "-f", ref], env=podman_env(), capture_output=True, check=False)


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
        "pcgr_bin_path": str(tmp_path / "bin" / "pcgr"),
        "_pcgr_fact_dir": str(tmp_path / "facts.d"),
        "pcgr_refdata_root": str(tmp_path / "srv"),
        **extra,
    }
    (tmp_path / "bin").mkdir(exist_ok=True)
    return run_playbook(PLAYBOOK, inventory=inventory, extra_vars=extra_vars, env=podman_env())


def test_container_method_pulls_wraps_and_runs_pcgr(
    registry_image: tuple[OciRegistry, str, str], tmp_path: Path
) -> None:
    # GIVEN the current release's image in the local registry, and bundle/cache dirs in place
    _, ref, _ = registry_image
    subprocess.run(["podman", "rmi", "-f", ref], env=podman_env(), capture_output=True, check=False)
    (tmp_path / "srv" / "refdata" / "current" / "grch38").mkdir(parents=True)
    (tmp_path / "srv" / "vep" / "current").mkdir(parents=True)
    version = load_catalogue().current.version

    # WHEN the role runs twice with the container method
    first = run_local(tmp_path, pcgr_container_image=ref, pcgr_container_tls_verify=False)
    second = run_local(tmp_path, pcgr_container_image=ref, pcgr_container_tls_verify=False)

    # THEN it pulled the image, installed the wrapper, and `pcgr --version` answers through it
    first.assert_ok()
    assert first.changed >= 3, first.tail()
    second.assert_idempotent()
    wrapper = tmp_path / "bin" / "pcgr"
    out = subprocess.run(
        [str(wrapper), "--version"],
        capture_output=True,
        text=True,
        env=podman_env(),
        check=True,
        cwd=tmp_path,
    )
    assert out.stdout.strip() == f"pcgr {version}"
    # AND it runs as non-root with XDG_CACHE_HOME set and the four mounts present
    who = subprocess.run(
        [str(wrapper), "--whoami"], capture_output=True, text=True, env=podman_env(), check=True, cwd=tmp_path
    ).stdout
    assert "uid=65534 gid=65534 xdg=/tmp/.cache" in who
    assert {".vep", "bundle", "inputs", "outputs"} <= set(who.split())
    fact = json.loads((tmp_path / "facts.d" / "pcgr.fact").read_text())
    assert fact["release"] == version and fact["method"] == "container" and fact["image"] == ref


def test_container_method_pulls_by_digest(
    registry_image: tuple[OciRegistry, str, str], tmp_path: Path
) -> None:
    # GIVEN the digest the registry reported on push
    _, ref, digest = registry_image
    # WHEN the role is asked to pull by that digest
    recap = run_local(
        tmp_path, pcgr_container_image=ref, pcgr_container_digest=digest, pcgr_container_tls_verify=False
    )
    # THEN the wrapper runs the image by digest
    recap.assert_ok()
    pinned = f"{ref.rsplit(':', 1)[0]}@{digest}"
    assert pinned in (tmp_path / "bin" / "pcgr").read_text()
    assert json.loads((tmp_path / "facts.d" / "pcgr.fact").read_text())["image"] == pinned


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
        env=podman_env(),
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
        env=podman_env(),
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
