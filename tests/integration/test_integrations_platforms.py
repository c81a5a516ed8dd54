"""What can run here of AWX, OpenStack and Vagrant: syntax checks, inventories, rendered parameters.

Nothing here reaches an AWX, an OpenStack cloud or a hypervisor (none exists on this machine);
docs/integrations/*.md say which parts are therefore untested.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from capillary.local.playbook import run_playbook
from capillary.release.catalogue import load_catalogue

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
OPENSTACK_PARAMS = "tests/integration/playbooks/integrations_openstack_params.yml"


def _ansible(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(BIN / tool), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )


# --------------------------------------------------------------------------------------------
# AWX


def _collection_dir(namespace: str, name: str) -> Path | None:
    """Where Ansible would find a collection: ./collections first, then sys.path (as ansible.cfg says)."""
    for root in [REPO / "collections", *map(Path, sys.path)]:
        candidate = root / "ansible_collections" / namespace / name
        if candidate.is_dir():
            return candidate
    return None


def test_awx_setup_passes_syntax_check() -> None:
    if _collection_dir("awx", "awx") is None:
        pytest.skip(
            "cannot run here: awx.awx is not in the ansible package and Galaxy is unreachable, "
            "so ansible-playbook cannot resolve its modules"
        )
    result = _ansible("ansible-playbook", "--syntax-check", "playbooks/awx_setup.yml")
    assert result.returncode == 0, result.stdout + result.stderr


# The execution environment's build context (ansible-builder create on the built collection and
# wheel): tests/integration/test_installed.py.


# --------------------------------------------------------------------------------------------
# OpenStack


def test_openstack_tasks_pass_syntax_check() -> None:
    result = _ansible("ansible-playbook", "--syntax-check", OPENSTACK_PARAMS)
    assert result.returncode == 0, result.stdout + result.stderr


def _render(tmp_path: Path, **extra: Any) -> tuple[Any, Any, Any]:
    recap = run_playbook(
        OPENSTACK_PARAMS,
        extra_vars={"capillary_render_to": str(tmp_path), **extra},
        tags=["workers_openstack_params"],
    )
    up, down = tmp_path / "up.json", tmp_path / "down.json"
    return (
        recap,
        json.loads(up.read_text()) if up.exists() else None,
        json.loads(down.read_text()) if down.exists() else None,
    )


def test_openstack_launch_parameters_render_like_an_aws_worker(tmp_path: Path) -> None:
    # GIVEN a flavor and a network WHEN the workers role renders its server parameters
    recap, up, _ = _render(tmp_path, workers_openstack_flavor="m1.xlarge", workers_openstack_network="lab")
    recap.assert_ok()
    server = up["server"]

    # THEN the worker boots the release's image, is tagged like an AWS worker, has no public
    # address, no key, a volume sized from the release catalogue, and nothing secret in user-data
    assert server["image"] == "capillary-worker-2.3.2"
    assert (server["flavor"], server["network"]) == ("m1.xlarge", "lab")
    assert server["metadata"] == {
        "capillary:deployment": "ostest",
        "capillary:release": "2.3.2",
        "capillary:event": "inputs/run-1-abc123-somatic.tar.gz",
        "capillary:role": "worker",
    }
    assert server["auto_ip"] is False and server["key_name"] == ""
    assert server["boot_from_volume"] is True and server["terminate_volume"] is True
    release = load_catalogue().release("2.3.2")
    assert int(server["volume_size"]) == release.root_volume_gb + release.data_volume_gb
    assert "CAPILLARY_SSM_CONFIG=/capillary/ostest/config" in server["userdata"]
    assert not any(word in server["userdata"].lower() for word in ("password", "secret_key", "token"))


def test_openstack_image_and_cloud_can_be_chosen(tmp_path: Path) -> None:
    recap, up, _ = _render(
        tmp_path,
        workers_openstack_flavor="m1.xlarge",
        workers_openstack_network="lab",
        workers_openstack_image="site-capillary-2.3.2",
        workers_openstack_cloud="research",
        workers_openstack_security_groups=["capillary-workers"],
    )
    recap.assert_ok()
    server = up["server"]
    assert server["image"] == "site-capillary-2.3.2"
    assert server["cloud"] == "research"
    assert server["security_groups"] == ["capillary-workers"]


def test_openstack_without_flavor_fails_naming_what_is_missing(tmp_path: Path) -> None:
    recap, up, _ = _render(tmp_path, workers_openstack_network="lab")
    assert recap.rc != 0 and up is None
    assert "workers_openstack_flavor" in recap.stdout and "capillary_openstack_flavor" in recap.stdout


def test_openstack_launches_the_missing_workers_under_free_names_and_reclaims_stopped_ones(
    tmp_path: Path,
) -> None:
    # GIVEN (in the test playbook) 3 workers wanted, worker-001 ACTIVE and worker-002 SHUTOFF;
    # and for down, two ACTIVE workers (one to keep) and one SHUTOFF
    recap, up, down = _render(tmp_path, workers_openstack_flavor="m1.xlarge", workers_openstack_network="lab")
    recap.assert_ok()

    # THEN up launches the 2 missing workers under the first free names (002 is still taken)
    assert up["names"] == ["capillary-ostest-worker-003", "capillary-ostest-worker-004"]
    # AND down deletes the stopped worker first, then the newest surplus, keeping the oldest
    assert down == ["stopped1", "new"]


def _inventory_plugin_options(plugin_file: Path) -> set[str]:
    from ansible.utils.plugin_docs import get_docstring

    doc, *_ = get_docstring(str(plugin_file), fragment_loader=_fragment_loader())
    return set(doc["options"])


def _fragment_loader() -> Any:
    from ansible.plugins.loader import fragment_loader

    return fragment_loader


def test_openstack_inventory_uses_only_the_plugins_options() -> None:
    collection = _collection_dir("openstack", "cloud")
    if collection is None:
        pytest.skip("openstack.cloud is not installed")
    plugin = collection / "plugins" / "inventory" / "openstack.py"
    config = yaml.safe_load((REPO / "inventories" / "openstack" / "openstack.yml").read_text())
    assert config["plugin"] == "openstack.cloud.openstack"
    unknown = set(config) - _inventory_plugin_options(plugin)
    assert unknown == set()


def test_openstack_inventory_groups_workers_by_their_metadata(tmp_path: Path) -> None:
    # GIVEN two servers as the openstack plugin describes them (hostvar `openstack`), and the
    # inventory's compose/groups/keyed_groups applied by Ansible's own constructed plugin
    config = yaml.safe_load((REPO / "inventories" / "openstack" / "openstack.yml").read_text())
    worker = {"capillary:deployment": "demo", "capillary:release": "2.3.2", "capillary:role": "worker"}
    servers = {
        "7f1c": {"metadata": worker, "status": "ACTIVE", "private_v4": "10.0.0.5", "access_ipv4": ""},
        "9a2e": {"metadata": {}, "status": "SHUTOFF", "private_v4": "10.0.0.9", "access_ipv4": ""},
    }
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "01-servers.yml").write_text(
        yaml.safe_dump({"all": {"hosts": {k: {"openstack": v} for k, v in servers.items()}}})
    )
    constructed = {"plugin": "ansible.builtin.constructed", "strict": True}
    constructed.update({k: config[k] for k in ("compose", "groups", "keyed_groups")})
    (inventory / "02-constructed.yml").write_text(yaml.safe_dump(constructed))

    # WHEN ansible-inventory builds it
    result = _ansible("ansible-inventory", "-i", str(inventory), "--list")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)

    # THEN the worker lands in its deployment's, release's and status groups, the other does not
    assert listed["capillary_workers"]["hosts"] == ["7f1c"]
    assert listed["capillary_deployment_demo"]["hosts"] == ["7f1c"]
    assert listed["capillary_release_2_3_2"]["hosts"] == ["7f1c"]
    assert listed["capillary_status_shutoff"]["hosts"] == ["9a2e"]
    hostvars = listed["_meta"]["hostvars"]
    assert hostvars["7f1c"]["ansible_host"] == "10.0.0.5"
    assert hostvars["7f1c"]["capillary_deployment"] == "demo"


# --------------------------------------------------------------------------------------------
# Vagrant


def test_vagrant_inventory_parses_to_the_vms_address() -> None:
    result = _ansible("ansible-inventory", "-i", "inventories/vagrant/hosts.yml", "--list")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert listed["capillary_workers"]["hosts"] == ["capillary-worker"]
    host = listed["_meta"]["hostvars"]["capillary-worker"]
    assert host["ansible_host"] in (REPO / "Vagrantfile").read_text()
    assert host["ansible_user"] == "vagrant"


def test_vagrantfile_is_valid_ruby() -> None:
    ruby = shutil.which("ruby")
    if ruby is None:
        pytest.skip("ruby is not installed (apt-get install ruby); vagrant itself cannot run here")
    result = subprocess.run(
        [ruby, "-c", "Vagrantfile"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "Syntax OK" in result.stdout, result.stderr


def test_vagrant_provisions_with_provision_yml_and_known_variables() -> None:
    text = (REPO / "Vagrantfile").read_text()
    assert 'ansible.playbook = "playbooks/provision.yml"' in text
    assert (REPO / "playbooks" / "provision.yml").is_file()
    defaults = yaml.safe_load((REPO / "roles" / "image_hygiene" / "defaults" / "main.yml").read_text())
    for variable in ("image_hygiene_gate_only", "image_hygiene_fail_on_findings"):
        assert f"{variable}:" in text and variable in defaults, variable
