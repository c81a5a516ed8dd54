"""AWX: the execution environment definition and the setup playbook's templates."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EE = REPO / "execution-environment.yml"
SETUP = REPO / "playbooks" / "awx_setup.yml"


def _ee() -> dict[str, Any]:
    return yaml.safe_load(EE.read_text())


def _validate_schema() -> Any:
    ee_schema = pytest.importorskip("ansible_builder.ee_schema", reason="ansible-builder is not installed")
    return ee_schema.validate_schema


def _constraints() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / "requirements" / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split(";")[0].strip().split("==")
            pins[name.lower()] = version
    return pins


def test_ee_definition_passes_ansible_builders_schema() -> None:
    validate_schema = _validate_schema()
    validate_schema(_ee())  # raises DefinitionError on any deviation


def test_ansible_builders_schema_does_catch_mistakes() -> None:
    validate_schema = _validate_schema()
    from ansible_builder.exceptions import DefinitionError

    misspelt = copy.deepcopy(_ee())
    misspelt["dependencies"]["galaxy_collections"] = misspelt["dependencies"].pop("galaxy")
    with pytest.raises(DefinitionError):
        validate_schema(misspelt)


def _versions() -> tuple[str, str]:
    """The collection's version (galaxy.yml) and the package's (capillary.__version__)."""
    import capillary

    galaxy = yaml.safe_load((REPO / "collections/ansible_collections/capillary/pcgr/galaxy.yml").read_text())
    return str(galaxy["version"]), capillary.__version__


def test_ee_carries_the_pinned_galaxy_collections_and_ours() -> None:
    collections = {c["name"]: c for c in _ee()["dependencies"]["galaxy"]["collections"]}
    required = yaml.safe_load((REPO / "requirements.yml").read_text())["collections"]
    for wanted in required:
        if wanted["name"] == "containers.podman":
            continue  # the local platform's podman workers never run under AWX
        assert collections[wanted["name"]]["version"] == wanted["version"], wanted["name"]
    # Ours is the built tarball (make collection), copied into the context, of galaxy.yml's version
    collection_version, package_version = _versions()
    tarball = f"capillary-pcgr-{collection_version}.tar.gz"
    wheel = f"capillary_pcgr-{package_version}-py3-none-any.whl"
    assert collections[f"/build/capillary/{tarball}"]["type"] == "file"
    copied = {f["src"]: f["dest"] for f in _ee()["additional_build_files"]}
    assert copied == {f"dist/{tarball}": "capillary", f"dist/{wheel}": "capillary"}
    # and the package at the wheel's version, found through PIP_FIND_LINKS where it was copied
    assert f"capillary-pcgr=={package_version}" in _ee()["dependencies"]["python"]
    steps = _ee()["additional_build_steps"]
    for stage in ("prepend_builder", "prepend_final"):
        assert steps[stage] == [
            "COPY _build/capillary /build/capillary",
            "ENV PIP_FIND_LINKS=/build/capillary",
        ]


def test_ee_python_pins_match_the_lock() -> None:
    lock = _constraints()
    pins = _ee()["dependencies"]["python"]
    for pin in pins:
        m = re.match(r"^([A-Za-z0-9_.-]+)==(.+)$", pin)
        if m and m.group(1) != "capillary-pcgr":  # ours: the wheel of this checkout (checked above)
            assert lock.get(m.group(1).lower()) == m.group(2), pin
    core = _ee()["dependencies"]["ansible_core"]["package_pip"]
    assert core == f"ansible-core=={lock['ansible-core']}"


def _play() -> dict[str, Any]:
    # Ansible's own loader: the credential type's injectors are `!unsafe` (AWX templates them).
    from ansible.parsing.dataloader import DataLoader

    return DataLoader().load_from_file(str(SETUP))[0]  # type: ignore[no-any-return]


def _tasks_by_module() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for task in _play()["tasks"]:
        module = next(k for k in task if "." in k)
        found[module] = task
    return found


def test_setup_creates_project_inventory_from_aws_and_credential_type() -> None:
    tasks = _tasks_by_module()
    assert {
        "awx.awx.project",
        "awx.awx.inventory",
        "awx.awx.inventory_source",
        "awx.awx.credential_type",
        "awx.awx.credential",
        "awx.awx.job_template",
        "awx.awx.execution_environment",
    } <= set(tasks)
    source = tasks["awx.awx.inventory_source"]["awx.awx.inventory_source"]
    assert source["source"] == "scm" and source["source_path"].startswith("inventories/aws/")
    assert (REPO / source["source_path"]).is_file(), source["source_path"]

    ctype = tasks["awx.awx.credential_type"]["awx.awx.credential_type"]
    (field,) = ctype["inputs"]["fields"]
    assert field["secret"] is True
    injected = [str(v) for section in ctype["injectors"].values() for v in section.values()]
    assert injected and all("{{ " + field["id"] + " }}" in v for v in injected)
    assert tasks["awx.awx.credential"].get("no_log") is True


def test_templates_cover_intake_up_down_bake_with_surveys_and_a_webhook_up() -> None:
    templates = {t["name"]: t for t in _play()["vars"]["_awx_templates"]}
    assert {"intake", "up", "down", "bake"} <= set(templates)
    for name in ("intake", "up", "down", "bake"):
        assert templates[name]["playbook"] == f"playbooks/{name}.yml"
        assert templates[name]["survey"], f"{name} has no survey"
    assert templates["up-webhook"]["playbook"] == "playbooks/up.yml"
    assert templates["up-webhook"]["webhook_service"] in ("github", "gitlab")
    # The deployment is fixed per template, never a survey answer.
    questions = [q for t in templates.values() for q in t["survey"] if isinstance(q, dict)]
    assert all(q["variable"] != "capillary_deployment" for q in questions)
    assert all(
        q["type"] in {"text", "textarea", "password", "integer", "float", "multiplechoice"} for q in questions
    )


def test_every_template_playbook_is_in_the_repository() -> None:
    templates = _play()["vars"]["_awx_templates"]
    missing = [t["playbook"] for t in templates if not (REPO / t["playbook"]).is_file()]
    assert missing == [], f"awx_setup.yml points at playbooks that do not exist: {missing}"


def test_every_template_gets_the_deployment_and_its_region() -> None:
    play = _play()
    tasks = _tasks_by_module()
    # GIVEN the credential type that carries a deployment's region into a job's environment
    (ctype,) = (
        task["awx.awx.credential_type"]
        for task in play["tasks"]
        if task.get("awx.awx.credential_type", {}).get("name") == "Capillary deployment"
    )
    assert ctype["injectors"]["env"] == {"AWS_REGION": "{{ region }}", "AWS_DEFAULT_REGION": "{{ region }}"}
    credential = next(
        task["awx.awx.credential"]
        for task in play["tasks"]
        if task.get("awx.awx.credential", {}).get("credential_type") == "Capillary deployment"
    )
    assert credential["name"] == "{{ _awx_deployment_credential }}"
    assert credential["inputs"] == {"region": "{{ _awx_region }}"}
    # THEN every template gets that credential and the fixed deployment
    template = tasks["awx.awx.job_template"]["awx.awx.job_template"]
    assert template["credentials"] == "{{ item.credentials | union([_awx_deployment_credential]) }}"
    assert template["extra_vars"].startswith("{{ _awx_fixed_vars | combine(")
    assert play["vars"]["_awx_fixed_vars"] == {"capillary_deployment": "{{ capillary_deployment }}"}
    # AND the setup refuses to run without a region
    (check,) = (t for t in play["tasks"] if "ansible.builtin.assert" in t)
    assert "_awx_region | length > 0" in check["ansible.builtin.assert"]["that"]
