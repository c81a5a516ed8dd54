"""The worker's layout has one home (`capillary.contract.layout`): the data root is written once in
Python and once in an Ansible default, every other place derives it, and the tools the roles ship
to targets get it as arguments instead of restating it."""

from __future__ import annotations

import ast
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from capillary.contract import layout
from capillary.contract.layout import DATA_ROOT, CondaLayout, WorkerLayout, sibling_env
from capillary.worker.config import SSM_PARAMETERS, SSM_SETTINGS, ConsumerConfig

REPO = Path(__file__).resolve().parents[2]
COLLECTION_PLUGINS = REPO / "collections" / "ansible_collections" / "capillary" / "pcgr" / "plugins"
# Module-level strings of a collection plugin that are its documentation, not code.
_PLUGIN_DOCS = {"DOCUMENTATION", "EXAMPLES", "RETURN"}


def _role_tools() -> list[Path]:
    """The Python programs the roles ship (`.py`, or a python3 shebang without an extension)."""
    tools = []
    for path in sorted((REPO / "roles").glob("*/files/**/*")):
        if not path.is_file():
            continue
        if path.suffix == ".py" or path.read_bytes()[:64].split(b"\n", 1)[0].endswith(b"python3"):
            tools.append(path)
    return tools


def _python_files() -> list[Path]:
    return [
        *sorted((REPO / "src").rglob("*.py")),
        *_role_tools(),
        *sorted(COLLECTION_PLUGINS.rglob("*.py")),
    ]


def _code_strings(path: Path) -> list[str]:
    """The string literals of a Python file that are code: not docstrings, not plugin docs."""
    tree = ast.parse(path.read_text(), str(path))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                skip.add(id(body[0].value))
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id in _PLUGIN_DOCS for t in node.targets
        ):
            skip.add(id(node.value))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
    ]


def _yaml_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _yaml_strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _yaml_strings(item)]
    return []


def test_the_data_root_is_one_python_literal() -> None:
    # GIVEN every Python file that runs (the package, the roles' tools, the collection's plugins)
    # WHEN their code's string literals are searched for the data root
    holders = sorted(
        str(path.relative_to(REPO))
        for path in _python_files()
        if any(DATA_ROOT in text for text in _code_strings(path))
    )
    # THEN only the layout module writes it
    assert holders == ["src/capillary/contract/layout.py"]


def test_the_data_root_is_one_ansible_default() -> None:
    # GIVEN every role's defaults WHEN their values are searched for the data root
    holders = {
        path.parent.parent.name: path
        for path in sorted((REPO / "roles").glob("*/defaults/*.yml"))
        if any(DATA_ROOT in text for text in _yaml_strings(yaml.safe_load(path.read_text())))
    }
    # THEN only data_volume's mountpoint names it, and it names the layout's root
    assert sorted(holders) == ["data_volume"]
    defaults = yaml.safe_load(holders["data_volume"].read_text())
    assert defaults["data_volume_mountpoint"] == DATA_ROOT


def test_the_counters_see_a_literal_where_one_is_written(tmp_path: Path) -> None:
    # The two checks above are only as good as their readers: a restated root is found, a
    # docstring or a plugin's documentation is not code.
    source = tmp_path / "restates.py"
    source.write_text(
        f'"""Lives under {DATA_ROOT}."""\nDOCUMENTATION = "default: {DATA_ROOT}"\nWORK = "{DATA_ROOT}/work"\n'
    )
    assert [s for s in _code_strings(source) if DATA_ROOT in s] == [f"{DATA_ROOT}/work"]
    assert _yaml_strings({"a": [{"b": f"{DATA_ROOT}/x"}], "c": 1}) == [f"{DATA_ROOT}/x"]


@pytest.mark.parametrize("tool", _role_tools(), ids=lambda p: p.name)
def test_the_tools_shipped_to_targets_import_nothing_of_capillary(tool: Path) -> None:
    # They run with the target's own python3, where the package need not be installed.
    imported = set()
    for node in ast.walk(ast.parse(tool.read_text(), str(tool))):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert "capillary" not in imported
    assert {t.name for t in _role_tools()} >= {"hygiene_gate.py", "capillary-refdata"}


def test_the_layout_under_a_root() -> None:
    worker = WorkerLayout(PurePosixPath("/data"))
    assert str(worker.bundle_dir("20260620", "grch38")) == "/data/refdata/20260620/grch38"
    assert str(worker.refdata_current) == "/data/refdata/current"
    assert str(worker.vep_dir(115)) == "/data/vep/115"
    assert str(worker.vep_current) == "/data/vep/current"
    assert str(worker.workspace) == "/data/work"
    assert str(worker.part_file("x.tgz")) == "/data/.downloads/x.tgz.part"
    assert WorkerLayout().root == PurePosixPath(DATA_ROOT)
    with pytest.raises(ValueError, match="'data': expected an absolute path"):
        WorkerLayout(PurePosixPath("data"))


def test_the_conda_layout_keeps_pcgrr_beside_pcgr() -> None:
    conda = CondaLayout()
    assert str(conda.micromamba) == "/opt/pcgr/bin/micromamba"
    assert str(conda.env("2.3.2")) == "/opt/pcgr/2.3.2/envs/pcgr"
    assert sibling_env(conda.env("2.3.2"), "pcgrr") == conda.env("2.3.2", "pcgrr")
    assert conda.as_dict("2.3.2")["envs"] == {
        "pcgr": "/opt/pcgr/2.3.2/envs/pcgr",
        "pcgrr": "/opt/pcgr/2.3.2/envs/pcgrr",
    }
    with pytest.raises(ValueError, match="conda env 'r'"):
        conda.env("2.3.2", "r")


def test_what_the_roles_get_is_what_the_consumer_defaults_to() -> None:
    # GIVEN the layout the collection's filter hands the roles, and the consumer's own defaults
    shown = WorkerLayout().as_dict()
    cfg = ConsumerConfig(queue_url="https://sqs.example/q")
    # THEN they name the same places
    assert shown["workspace"] == str(cfg.workdir)
    assert shown["state_file"] == str(cfg.state_file)
    assert shown["refdata_current"] == str(cfg.pcgr.refdata_root)
    assert shown["vep_current"] == str(cfg.pcgr.vep_dir)
    assert shown["container"]["xdg_cache_home"] == layout.CONTAINER_XDG_CACHE_HOME
    assert shown["artifact_stamp"] == layout.ARTIFACT_STAMP


def test_the_ssm_parameters_are_the_ones_the_intake_role_writes() -> None:
    # GIVEN the parameters roles/intake writes under /capillary/<d>/config
    intake_vars = yaml.safe_load((REPO / "roles" / "intake" / "vars" / "main.yml").read_text())
    written = set(intake_vars["_intake_config_parameters"])
    # THEN the consumer's list names exactly those, and reads only settings it has
    assert set(SSM_PARAMETERS) == written
    settings = {f for f in ConsumerConfig.__dataclass_fields__}
    assert set(SSM_SETTINGS.values()) <= settings
    assert SSM_SETTINGS["work_queue_url"] == "queue_url"
