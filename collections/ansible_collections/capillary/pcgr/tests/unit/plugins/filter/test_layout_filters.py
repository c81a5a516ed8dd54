"""The filters that hand the roles the worker layout and the PCGR command: what they return is the
package's own answer (`capillary.contract.layout`, `capillary.worker.engines.pcgr`), and their
documentation lists what they take."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.capillary.pcgr.plugins.filter import pcgr_command, worker_layout

from capillary.contract.layout import CONDA_PREFIX, DATA_ROOT, CondaLayout, WorkerLayout
from capillary.worker.engines.pcgr import PcgrConfig, invocation


def test_an_empty_root_is_the_default_layout() -> None:
    assert worker_layout.worker_layout("") == WorkerLayout().as_dict()
    assert worker_layout.worker_layout(None)["root"] == DATA_ROOT


def test_a_root_moves_every_path_under_it() -> None:
    shown = worker_layout.worker_layout("/data")
    assert shown["workspace"] == "/data/work"
    assert shown["refdata_current"] == "/data/refdata/current"
    assert shown["vep_current"] == "/data/vep/current"
    assert shown["downloads"] == "/data/.downloads"
    # AND what does not live under the root stays put
    assert shown["conda_prefix"] == CONDA_PREFIX
    assert "conda" not in shown


def test_a_release_adds_its_conda_layout() -> None:
    shown = worker_layout.worker_layout("", pcgr_version="2.3.2")
    assert shown["conda"] == CondaLayout().as_dict("2.3.2")
    moved = worker_layout.worker_layout("", pcgr_version="2.3.2", conda_prefix="/opt/x")
    assert moved["conda"]["envs"]["pcgrr"] == "/opt/x/2.3.2/envs/pcgrr"


def test_a_bad_root_is_refused_naming_it() -> None:
    with pytest.raises(AnsibleFilterError, match="'srv': expected an absolute path"):
        worker_layout.worker_layout("srv")
    with pytest.raises(AnsibleFilterError, match="must be a path"):
        worker_layout.worker_layout(["/srv"])


def test_the_container_smoke_check_is_the_engines_argv() -> None:
    # GIVEN the role's values for a container install
    got = pcgr_command.pcgr_command(
        ["--version"], method="container", release="2.3.2", image="ghcr.io/sigven/pcgr:2.3.2",
        runtime="/usr/bin/podman", user="65534:65534",
    )  # fmt: skip
    # THEN it is the engine's own invocation, with nothing added to the environment
    cfg = PcgrConfig(
        release="2.3.2", method="container", container_image="ghcr.io/sigven/pcgr:2.3.2",
        container_runtime="/usr/bin/podman",
    )  # fmt: skip
    argv, _dummy = invocation(cfg, ["--version"], user="65534:65534", cache=Path("/unused"))
    assert got == {"argv": argv, "environment": {}}
    assert argv[:2] == ["/usr/bin/podman", "run"] and argv[-2:] == ["pcgr", "--version"]


def test_the_conda_smoke_check_runs_the_layouts_env() -> None:
    got = pcgr_command.pcgr_command(["--version"], method="conda", release="2.3.2", path="/usr/bin:/bin")
    assert got["argv"] == ["/opt/pcgr/2.3.2/envs/pcgr/bin/pcgr", "--version"]
    assert got["environment"]["CONDA_PREFIX"] == "/opt/pcgr/2.3.2/envs/pcgr"
    assert got["environment"]["PATH"] == "/opt/pcgr/2.3.2/envs/pcgr/bin:/usr/bin:/bin"


def test_a_container_check_without_an_image_is_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="needs an image"):
        pcgr_command.pcgr_command(["--version"], method="container", release="2.3.2")
    with pytest.raises(AnsibleFilterError, match="'shell' is not one of"):
        pcgr_command.pcgr_command(["--version"], method="shell", release="2.3.2")


@pytest.mark.parametrize(
    ("module", "name"),
    [(worker_layout, "worker_layout"), (pcgr_command, "pcgr_command")],
)
def test_the_documentation_lists_every_argument(module: object, name: str) -> None:
    doc = yaml.safe_load(module.DOCUMENTATION)  # type: ignore[attr-defined]
    function = module.FilterModule().filters()[name]  # type: ignore[attr-defined]
    params = list(inspect.signature(function).parameters)
    assert doc["name"] == name
    assert set(doc["options"]) == {"_input", *params[1:]}
    for option, parameter in inspect.signature(function).parameters.items():
        if option in doc["options"] and "default" in doc["options"][option]:
            assert doc["options"][option]["default"] == parameter.default, option
