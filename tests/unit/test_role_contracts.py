"""Every role keeps its contract: argument specs and defaults agree, and the house layout holds.

`meta/argument_specs.yml` is the contract a user reads (and `ansible-doc -t role` renders);
`defaults/main.yml` is what actually applies. They drift silently unless a test compares them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(p.parent.parent for p in (REPO / "roles").glob("*/meta/argument_specs.yml"))
ALL_ROLES = (
    sorted(p for p in (REPO / "roles").iterdir() if (p / "tasks").is_dir())
    if (REPO / "roles").is_dir()
    else []
)

_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "path": (str,),
    "raw": (object,),
    "bool": (bool,),
    "int": (int,),
    "float": (float, int),
    "list": (list,),
    "dict": (dict,),
}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.exists() else None


def _is_templated(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


@pytest.mark.parametrize("role", ALL_ROLES, ids=lambda p: p.name)
def test_role_has_the_house_layout(role: Path) -> None:
    missing = [
        rel
        for rel in ("meta/argument_specs.yml", "meta/main.yml", "README.md", "tasks/main.yml")
        if not (role / rel).exists()
    ]
    assert not missing, f"role {role.name} lacks {', '.join(missing)}"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_argument_specs_and_defaults_agree(role: Path) -> None:
    specs = _load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    defaults = _load(role / "defaults" / "main.yml") or {}

    public = {k for k in defaults if not k.startswith("_")}
    assert public - specs.keys() == set(), f"defaults without a spec in {role.name}"
    unspecced_defaults = {
        name for name, spec in specs.items() if not spec.get("required") and name not in defaults
    }
    assert unspecced_defaults == set(), f"optional specs without a default in {role.name}"

    for name, spec in specs.items():
        assert spec.get("description"), f"{role.name}: {name} has no description"
        assert spec.get("type"), f"{role.name}: {name} has no type"
        if name not in defaults:
            continue
        value = defaults[name]
        if _is_templated(value) or value is None:
            continue
        assert isinstance(value, _TYPES[spec["type"]]), (
            f"{role.name}: {name} defaults to {value!r}, not a {spec['type']}"
        )
        if spec["type"] != "bool":
            assert not isinstance(value, bool) or spec["type"] == "raw", f"{role.name}: {name} is a bool"
        if "default" in spec:
            assert spec["default"] == value, (
                f"{role.name}: {name} spec default {spec['default']!r} != {value!r}"
            )
        if "choices" in spec:
            values = value if isinstance(value, list) else [value]
            assert set(values) <= set(spec["choices"]), f"{role.name}: {name}={value!r} outside choices"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_internal_variables_follow_the_tiers(role: Path) -> None:
    """Public `<role>_*` in defaults; internal `_<role>_*` in vars/ (STYLE.md)."""
    defaults = _load(role / "defaults" / "main.yml") or {}
    vars_ = _load(role / "vars" / "main.yml") or {}
    prefix = role.name
    bad_public = [k for k in defaults if not k.startswith(f"{prefix}_")]
    bad_internal = [k for k in vars_ if not k.startswith(f"_{prefix}_")]
    assert not bad_public, f"{role.name}: defaults outside the {prefix}_ namespace: {bad_public}"
    assert not bad_internal, f"{role.name}: vars outside the _{prefix}_ namespace: {bad_internal}"
