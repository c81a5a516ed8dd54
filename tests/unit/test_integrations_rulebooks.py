"""The collection's rulebooks against ansible-rulebook's own schema, the intake contract and the
AWX templates they launch (no Java needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EDA = REPO / "collections" / "ansible_collections" / "capillary" / "pcgr" / "extensions" / "eda"
# The command line runs the playbook itself; EDA Controller launches the AWX job template.
CLI = ["intake_webhook.yml", "work_queue.yml"]
CONTROLLER = ["intake_webhook_controller.yml", "work_queue_controller.yml"]
RULEBOOKS = CLI + CONTROLLER


def _rulebook(name: str) -> list[dict[str, Any]]:
    return yaml.safe_load((EDA / "rulebooks" / name).read_text())  # type: ignore[no-any-return]


def _ruleset_schema() -> dict[str, Any]:
    rulebook = pytest.importorskip("ansible_rulebook", reason="ansible-rulebook is not installed")
    path = Path(rulebook.__file__).parent / "schema" / "ruleset_schema.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def _rules(name: str) -> list[dict[str, Any]]:
    return [rule for ruleset in _rulebook(name) for rule in ruleset["rules"]]


def test_every_shipped_rulebook_is_listed_here() -> None:
    assert sorted(p.name for p in (EDA / "rulebooks").iterdir()) == sorted(RULEBOOKS)


@pytest.mark.parametrize("name", RULEBOOKS)
def test_rulebook_matches_ansible_rulebooks_schema(name: str) -> None:
    jsonschema.Draft202012Validator(_ruleset_schema()).validate(_rulebook(name))


def test_the_schema_does_catch_a_broken_rulebook() -> None:
    broken = _rulebook("intake_webhook.yml")
    broken[0]["rules"][0]["action"] = {"run_playbok": {"name": "capillary.pcgr.up"}}
    assert not jsonschema.Draft202012Validator(_ruleset_schema()).is_valid(broken)


@pytest.mark.parametrize("name", CLI)
def test_command_line_rules_run_the_collections_up_for_the_configured_deployment(name: str) -> None:
    for ruleset in _rulebook(name):
        assert ruleset["execution_strategy"] == "sequential"
    for rule in _rules(name):
        run = rule["action"]["run_playbook"]
        # By FQCN: ansible-rulebook finds it in the installed collection, wherever it runs.
        assert run["name"] == "capillary.pcgr.up"
        assert run["extra_vars"]["capillary_deployment"] == "{{ capillary_deployment }}"
        assert "vars.capillary_deployment" in rule["condition"]
    assert (REPO / "playbooks" / "up.yml").is_file()  # what the collection build ships as up


def _awx_up_template() -> str:
    from ansible.parsing.dataloader import DataLoader

    (play,) = DataLoader().load_from_file(str(REPO / "playbooks" / "awx_setup.yml"))
    (template,) = (t for t in play["vars"]["_awx_templates"] if t["name"] == "up")
    assert template["playbook"] == "playbooks/up.yml"
    # The job template's name, as the job_template task spells it.
    (task,) = (t for t in play["tasks"] if "awx.awx.job_template" in t)
    assert task["awx.awx.job_template"]["name"] == "{{ _awx_prefix }}-{{ item.name }}"
    assert play["vars"]["_awx_prefix"] == "capillary-{{ capillary_deployment }}"
    return "capillary-{{ capillary_deployment }}-up"


@pytest.mark.parametrize(("controller", "cli"), list(zip(CONTROLLER, CLI, strict=True)))
def test_controller_rules_launch_the_up_template_awx_setup_creates(controller: str, cli: str) -> None:
    # GIVEN the command-line rulebook and its EDA Controller twin
    for ruleset in _rulebook(controller):
        assert ruleset["execution_strategy"] == "sequential"
    ours, theirs = _rules(controller), _rules(cli)
    assert len(ours) == len(theirs)
    for rule, twin in zip(ours, theirs, strict=True):
        # THEN each rule fires on the same events, from the same sources
        assert rule["condition"] == twin["condition"]
        assert rule.get("throttle") == twin.get("throttle")
        # AND launches the deployment's up job template with the variables the playbook would get
        launch = rule["action"]["run_job_template"]
        assert launch["name"] == _awx_up_template()
        assert launch["organization"] == "{{ capillary_awx_organization }}"
        given = dict(twin["action"]["run_playbook"]["extra_vars"])
        # the deployment is fixed on the template (awx_setup.yml), never a launch variable
        assert given.pop("capillary_deployment") == "{{ capillary_deployment }}"
        assert launch["job_args"]["extra_vars"] == given
    assert [r["sources"] for r in _rulebook(controller)] == [r["sources"] for r in _rulebook(cli)]


def test_the_up_template_takes_launch_variables() -> None:
    from ansible.parsing.dataloader import DataLoader

    (play,) = DataLoader().load_from_file(str(REPO / "playbooks" / "awx_setup.yml"))
    (task,) = (t for t in play["tasks"] if "awx.awx.job_template" in t)
    # run_job_template's extra_vars are refused by a template that does not ask for them
    assert task["awx.awx.job_template"]["ask_variables_on_launch"] == "{{ item.name == 'up' }}"


def test_queue_rulebooks_use_the_collections_source_by_fqcn() -> None:
    for name in ("work_queue.yml", "work_queue_controller.yml"):
        (ruleset,) = _rulebook(name)
        (source,) = ruleset["sources"]
        assert "capillary.pcgr.sqs_queue_depth" in source
    assert (EDA / "plugins" / "event_source" / "sqs_queue_depth.py").is_file()


@pytest.mark.parametrize("name", ["intake_webhook.yml", "intake_webhook_controller.yml"])
def test_webhook_rule_matches_the_intake_contract(name: str) -> None:
    # The condition names the contract's version and event; both must exist in the schema.
    intake = json.loads(
        (REPO / "src" / "capillary" / "intake" / "data" / "webhook_payload.schema.json").read_text()
    )
    (rule,) = _rules(name)
    assert f'event.payload.schema == "{intake["properties"]["schema"]["const"]}"' in rule["condition"]
    assert 'event.payload.event == "sample.received"' in rule["condition"]
    assert "sample.received" in intake["properties"]["event"]["enum"]
    action = rule["action"].get("run_playbook") or rule["action"]["run_job_template"]["job_args"]
    assert action["extra_vars"]["capillary_event"] == "{{ event.payload.key }}"
    assert "key" in intake["required"]


@pytest.mark.parametrize("name", ["intake_webhook.yml", "intake_webhook_controller.yml"])
def test_webhook_token_comes_from_the_environment_not_a_file(name: str) -> None:
    (ruleset,) = _rulebook(name)
    (source,) = ruleset["sources"]
    assert source["eda.builtin.webhook"]["token"] == "{{ CAPILLARY_EDA_TOKEN }}"
    example = yaml.safe_load((EDA / "vars.example.yml").read_text())
    assert not any("token" in key.lower() for key in example)


def test_the_example_vars_define_every_variable_the_rulebooks_use() -> None:
    example = set(yaml.safe_load((EDA / "vars.example.yml").read_text()))
    for name in RULEBOOKS:
        text = (EDA / "rulebooks" / name).read_text()
        used = set(re.findall(r"(?:\{\{\s*|vars\.)(capillary_\w+)", text))
        assert used, name
        assert used <= example, f"{name}: {sorted(used - example)} missing from vars.example.yml"
