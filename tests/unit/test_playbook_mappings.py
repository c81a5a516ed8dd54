"""up.yml, down.yml and bake.yml stay thin: their documented `capillary_*` variables map onto the
role's, with the role's defaults, and nothing else happens in them.

The logic lives in roles/workers and roles/bake (argument specs, preflight); a playbook that grew a
task again, mapped a variable the role does not take, or defaulted a `capillary_*` variable
differently from the role would fail here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jinja2 import TemplateError
from jinja2.nativetypes import NativeEnvironment

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = {"up.yml": "workers", "down.yml": "workers", "bake.yml": "bake"}
_MAPPING = re.compile(r"^\{\{ (capillary_\w+) \| default\((?P<default>.*)\) \}\}$")


def _play(name: str) -> dict[str, Any]:
    [play] = yaml.safe_load((REPO / "playbooks" / name).read_text())
    return dict(play)


def _role(role: str) -> tuple[dict[str, Any], dict[str, Any]]:
    specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
    defaults = yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())
    return specs["argument_specs"]["main"]["options"], defaults


def _literal(expression: str) -> tuple[bool, Any]:
    """(True, value) for a Jinja literal such as 'aws', 4, none, ['default']; (False, None) otherwise."""
    try:
        value = NativeEnvironment().compile_expression(expression, undefined_to_none=False)()
    except (TemplateError, TypeError):  # a filter or a variable plain Jinja does not know
        return False, None
    return (not hasattr(value, "_undefined_name")), value


@pytest.mark.parametrize(("playbook", "role"), PLAYBOOKS.items())
def test_the_playbook_is_vars_and_the_role(playbook: str, role: str) -> None:
    play = _play(playbook)
    assert [r["role"] if isinstance(r, dict) else r for r in play.get("roles", [])] == [role]
    assert not {"tasks", "pre_tasks", "post_tasks", "handlers"} & set(play), f"{playbook} grew tasks"


@pytest.mark.parametrize(("playbook", "role"), PLAYBOOKS.items())
def test_every_mapped_variable_is_the_roles_with_the_roles_default(playbook: str, role: str) -> None:
    specs, defaults = _role(role)
    mapped = _play(playbook)["vars"]

    assert set(mapped) <= set(specs), f"{playbook} sets variables {role} does not take"
    for name, template in mapped.items():
        match = _MAPPING.match(str(template))
        if not match:
            continue  # a fixed value (workers_state) or a path built from the playbook's place
        known, value = _literal(match["default"])
        if name not in defaults:
            continue  # required by the role: the playbook's default is the only one
        role_default = defaults[name]
        if not known or (isinstance(role_default, str) and "{{" in role_default):
            continue
        assert value == role_default, (
            f"{playbook}: {match[1]} defaults to {value!r}, but {name} to {role_default!r}"
        )


def _documented(path: Path, heading: str) -> set[str]:
    """The `capillary_*` variables in the first column of the table under `heading`."""
    text = path.read_text().split(heading, 1)[1]
    table = []
    for line in text.splitlines()[1:]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            table.append(line.split("|")[1])
    return set(re.findall(r"`(capillary_\w+)`", "\n".join(table)))


def _read_by(*playbooks: str) -> set[str]:
    found: set[str] = set()
    for name in playbooks:
        found |= set(re.findall(r"\bcapillary_\w+", (REPO / "playbooks" / name).read_text()))
    return found


def test_every_documented_up_and_down_variable_still_reaches_the_role() -> None:
    documented = _documented(REPO / "docs" / "spot-workers.md", "## Variables")
    # capillary_ssm_bucket is the aws inventory's (inventories/aws/aws_ec2.yml), not a playbook's.
    missing = documented - {"capillary_ssm_bucket"} - _read_by("up.yml", "down.yml")
    assert documented and missing == set()


def test_every_readme_variable_still_reaches_its_playbooks() -> None:
    readme = (REPO / "README.md").read_text().split("## Variables", 1)[1].split("\n## ", 1)[0]
    for variable, users in re.findall(r"^\| `(capillary_\w+)` \| ([^|]+) \|", readme, re.MULTILINE):
        for playbook in re.findall(r"`(\w+\.yml)`", users):
            if playbook in PLAYBOOKS:
                assert variable in _read_by(playbook), f"{variable} no longer reaches {playbook}"
