"""The rulebooks against ansible-rulebook's own schema and the intake contract (no Java needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULEBOOKS = ["capillary.yml", "capillary_queue.yml"]


def _rulebook(name: str) -> list[dict[str, Any]]:
    return yaml.safe_load((REPO / "rulebooks" / name).read_text())  # type: ignore[no-any-return]


def _ruleset_schema() -> dict[str, Any]:
    rulebook = pytest.importorskip("ansible_rulebook", reason="ansible-rulebook is not installed")
    path = Path(rulebook.__file__).parent / "schema" / "ruleset_schema.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", RULEBOOKS)
def test_rulebook_matches_ansible_rulebooks_schema(name: str) -> None:
    jsonschema.Draft202012Validator(_ruleset_schema()).validate(_rulebook(name))


def test_the_schema_does_catch_a_broken_rulebook() -> None:
    broken = _rulebook("capillary.yml")
    broken[0]["rules"][0]["action"] = {"run_playbok": {"name": "playbooks/up.yml"}}
    assert not jsonschema.Draft202012Validator(_ruleset_schema()).is_valid(broken)


@pytest.mark.parametrize("name", RULEBOOKS)
def test_rules_run_up_yml_for_the_configured_deployment(name: str) -> None:
    for ruleset in _rulebook(name):
        assert ruleset["execution_strategy"] == "sequential"
        for rule in ruleset["rules"]:
            run = rule["action"]["run_playbook"]
            assert run["name"] == "playbooks/up.yml"
            assert run["extra_vars"]["capillary_deployment"] == "{{ capillary_deployment }}"
            assert "vars.capillary_deployment" in rule["condition"]
    assert (REPO / "playbooks" / "up.yml").is_file()


def test_webhook_rule_matches_the_intake_contract() -> None:
    # The condition names the contract's version and event; both must exist in the schema.
    intake = json.loads(
        (REPO / "src" / "capillary" / "intake" / "data" / "webhook_payload.schema.json").read_text()
    )
    (ruleset,) = _rulebook("capillary.yml")
    (rule,) = ruleset["rules"]
    assert f'event.payload.schema == "{intake["properties"]["schema"]["const"]}"' in rule["condition"]
    assert 'event.payload.event == "sample.received"' in rule["condition"]
    assert "sample.received" in intake["properties"]["event"]["enum"]
    assert rule["action"]["run_playbook"]["extra_vars"]["capillary_event"] == "{{ event.payload.key }}"
    assert "key" in intake["required"]


def test_webhook_token_comes_from_the_environment_not_a_file() -> None:
    (ruleset,) = _rulebook("capillary.yml")
    (source,) = ruleset["sources"]
    assert source["eda.builtin.webhook"]["token"] == "{{ CAPILLARY_EDA_TOKEN }}"
    example = yaml.safe_load((REPO / "rulebooks" / "vars.example.yml").read_text())
    assert not any("token" in key.lower() for key in example)
