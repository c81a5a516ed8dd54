"""ssm_parameters: what it asks for, what it writes given what is there, and which tags it changes."""

from __future__ import annotations

import pytest
from ansible_collections.capillary.pcgr.plugins.modules.ssm_parameters import (
    desired_parameters,
    plan_writes,
    tag_changes,
)

PATH = "/capillary/demo"


def test_strings_and_secure_strings_are_typed_and_stringified() -> None:
    wanted = desired_parameters(
        PATH, {f"{PATH}/config/max_receive_count": 3}, {f"{PATH}/secrets/webhook_key": "k"}
    )
    assert wanted == {
        f"{PATH}/config/max_receive_count": ("String", "3"),
        f"{PATH}/secrets/webhook_key": ("SecureString", "k"),
    }


@pytest.mark.parametrize(
    ("path", "parameters", "secure", "reason"),
    [
        (PATH, {"/capillary/other/config/x": "1"}, {}, "is not under path /capillary/demo"),
        # a sibling whose name merely starts like the path is not under it
        (PATH, {"/capillary/demo2/x": "1"}, {}, "is not under path"),
        (PATH, {f"{PATH}/config/x": ""}, {}, "refuses an empty value"),
        (PATH, {f"{PATH}/x": "a"}, {f"{PATH}/x": "b"}, "both a String and a SecureString"),
        ("capillary/demo", {}, {}, "starts with /"),
    ],
)
def test_bad_input_is_refused_naming_the_parameter_and_the_reason(
    path: str, parameters: dict[str, str], secure: dict[str, str], reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        desired_parameters(path, parameters, secure)


def test_only_missing_or_different_parameters_are_written() -> None:
    current = {
        "/p/same": ("String", "1"),
        "/p/other_value": ("String", "1"),
        "/p/other_type": ("String", "s"),
        "/p/not_listed": ("String", "left alone"),
    }
    wanted = {
        "/p/same": ("String", "1"),
        "/p/other_value": ("String", "2"),
        "/p/other_type": ("SecureString", "s"),
        "/p/new": ("String", "n"),
    }
    assert plan_writes(current, wanted) == (["/p/new"], ["/p/other_type", "/p/other_value"])
    assert plan_writes(wanted, wanted) == ([], [])


def test_tags_are_added_changed_and_purged_only_when_asked() -> None:
    have = {"capillary:deployment": "demo", "owner": "old", "extra": "x"}
    assert tag_changes(have, {"capillary:deployment": "demo", "owner": "new"}, purge=True) == (
        {"owner": "new"},
        ["extra"],
    )
    assert tag_changes(have, {"owner": "old"}, purge=False) == ({}, [])
    assert tag_changes({}, {"n": 1}, purge=True) == ({"n": "1"}, [])
