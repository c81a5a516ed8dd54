"""`capillary.pcgr.ssm_parameters` in a playbook, against the local endpoint.

Each run goes through `ansible-playbook` (check and diff mode included); what Parameter Store
holds is read back with boto3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from capillary.local.endpoint import LocalAWS
from capillary.local.playbook import run_module

pytestmark = pytest.mark.integration

PATH = "/capillary/ssmtest"
SECRET = "st2-key-4f1c9"  # a test value; the assertion is that it never shows


def apply(playbook: Any, tmp_path: Path, check: bool = False, **args: Any) -> tuple[Any, dict[str, Any]]:
    recap, result = run_module(
        playbook,
        tmp_path,
        "capillary.pcgr.ssm_parameters",
        {"path": PATH, **args},
        check=check,
        diff=True,
        ignore_errors=True,
    )
    return recap, result


def stored(aws: LocalAWS) -> dict[str, tuple[str, str]]:
    ssm = aws.client("ssm")
    params = ssm.get_parameters_by_path(Path=PATH, Recursive=True, WithDecryption=True)["Parameters"]
    return {p["Name"]: (p["Type"], p["Value"]) for p in params}


def tags(aws: LocalAWS, name: str) -> dict[str, str]:
    listed = aws.client("ssm").list_tags_for_resource(ResourceType="Parameter", ResourceId=name)
    return {t["Key"]: t["Value"] for t in listed["TagList"]}


def test_writes_what_differs_once_and_then_nothing(aws: LocalAWS, playbook: Any, tmp_path: Path) -> None:
    config = {f"{PATH}/config/platform": "local", f"{PATH}/config/max_receive_count": "3"}
    secrets = {f"{PATH}/secrets/webhook_key": SECRET}
    args = {"parameters": config, "secure_parameters": secrets, "tags": {"capillary:deployment": "ssmtest"}}
    # GIVEN a parameter of someone else's under the same path
    aws.client("ssm").put_parameter(Name=f"{PATH}/images/current", Value="ami-1", Type="String")

    # WHEN the module runs in check mode THEN it reports what it would create and writes nothing
    recap, result = apply(playbook, tmp_path, check=True, **args)
    assert result["changed"] and sorted(result["created"]) == sorted([*config, *secrets])
    assert list(stored(aws)) == [f"{PATH}/images/current"]

    # WHEN it runs THEN each parameter holds its value and type, tagged, and the other is untouched
    recap, result = apply(playbook, tmp_path, **args)
    assert result["changed"] and result["updated"] == [] and result["retagged"] == []
    assert stored(aws) == {
        f"{PATH}/config/platform": ("String", "local"),
        f"{PATH}/config/max_receive_count": ("String", "3"),
        f"{PATH}/secrets/webhook_key": ("SecureString", SECRET),
        f"{PATH}/images/current": ("String", "ami-1"),
    }
    assert tags(aws, f"{PATH}/secrets/webhook_key") == {"capillary:deployment": "ssmtest"}
    # AND the secret's value appears nowhere in what the run printed or returned
    assert SECRET not in recap.stdout + recap.stderr and SECRET not in str(result)

    # WHEN it runs again THEN nothing changes
    recap, result = apply(playbook, tmp_path, **args)
    assert (result["changed"], result["created"], result["updated"], result["retagged"]) == (
        False,
        [],
        [],
        [],
    )

    # WHEN one value and one tag drift THEN only those are put back, the diff showing the value
    aws.client("ssm").put_parameter(
        Name=f"{PATH}/config/platform", Value="aws", Type="String", Overwrite=True
    )
    aws.client("ssm").add_tags_to_resource(
        ResourceType="Parameter",
        ResourceId=f"{PATH}/config/max_receive_count",
        Tags=[{"Key": "x", "Value": "y"}],
    )
    recap, result = apply(playbook, tmp_path, **args)
    assert (result["created"], result["updated"]) == ([], [f"{PATH}/config/platform"])
    assert result["retagged"] == [f"{PATH}/config/max_receive_count"]
    assert result["diff"]["before"] == {f"{PATH}/config/platform": "aws"}
    assert stored(aws)[f"{PATH}/config/platform"] == ("String", "local")
    assert tags(aws, f"{PATH}/config/max_receive_count") == {"capillary:deployment": "ssmtest"}


def test_a_name_outside_the_path_fails_naming_it(aws: LocalAWS, playbook: Any, tmp_path: Path) -> None:
    _, result = apply(playbook, tmp_path, parameters={"/capillary/elsewhere/x": "1"})
    assert result["failed"] and "/capillary/elsewhere/x is not under path /capillary/ssmtest" in result["msg"]
    assert stored(aws) == {}
