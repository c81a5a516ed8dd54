"""The StackStorm pack: its trigger matches the intake's payload, its metadata and workflows are
valid, and its actions run the collection's playbooks from the pack's own virtualenv."""

from __future__ import annotations

import collections
import collections.abc
import copy
import importlib.util
import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from capillary.contract.samples import SampleKey
from capillary.intake.handler import IntakeConfig, Record, webhook_payload

REPO = Path(__file__).resolve().parents[2]
STACKSTORM = REPO / "integrations" / "stackstorm"
PACK = STACKSTORM / "capillary"
INTAKE_SCHEMA = REPO / "src" / "capillary" / "intake" / "data" / "webhook_payload.schema.json"
# Refs the pack uses that StackStorm itself provides (chatops and core ship with st2).
EXTERNAL_ACTIONS = {"chatops.post_message", "core.inject_trigger"}
EXTERNAL_TRIGGERS = {"core.st2.webhook"}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _schema(name: str) -> dict[str, Any]:
    return json.loads((STACKSTORM / "schemas" / f"{name}.schema.json").read_text())


def _trigger_schema() -> dict[str, Any]:
    return _load(PACK / "triggers" / "event.yaml")["payload_schema"]


def _intake_schema() -> dict[str, Any]:
    return json.loads(INTAKE_SCHEMA.read_text())


def _payloads() -> dict[str, dict[str, Any]]:
    """One payload per event, made by the intake handler's own payload function."""
    config = IntakeConfig(deployment="demo", work_queue_url="http://127.0.0.1/queue/capillary-demo-work")
    sample = SampleKey.parse("inputs/run-07-a1b2c3-somatic.tar.gz")

    def record(key: str, size: int | None = 1234) -> Record:
        return Record(
            event_name="ObjectCreated:Put",
            bucket="capillary-demo-samples",
            raw_key=key,
            key=key,
            size=size,
            etag="0123456789abcdef",
            sequencer="0055AED6DCD90281E5",
            event_time="2026-11-21T06:00:00.000Z",
        )

    link = "https://capillary-demo-samples.s3.amazonaws.com/outputs/x?X-Amz-Signature=abc"
    return {
        "sample.received": webhook_payload(
            "sample.received", config, record(sample.input_key), sample=sample
        ),
        "sample.rejected": webhook_payload(
            "sample.rejected",
            config,
            record("inputs/run-07-somatic-tar.gz", size=None),
            reason="wrong extension",
            report_key="rejected/run-07-somatic-tar.gz.json",
        ),
        "sample.completed": webhook_payload(
            "sample.completed",
            config,
            record(sample.output_key),
            sample=sample,
            download_url=link,
            download_expires_at="2026-11-22T06:00:00Z",
        ),
        "sample.failed": webhook_payload(
            "sample.failed",
            config,
            record(sample.error_key),
            sample=sample,
            download_url=link,
            download_expires_at="2026-11-22T06:00:00Z",
        ),
    }


# --------------------------------------------------------------------------------------------
# The trigger against the intake handler's payload


@pytest.mark.parametrize("event", ["sample.received", "sample.rejected", "sample.completed", "sample.failed"])
def test_every_intake_payload_is_a_valid_trigger_instance(event: str) -> None:
    # GIVEN a payload the intake handler builds for this event, valid by the intake's own schema
    payload = _payloads()[event]
    jsonschema.Draft202012Validator(_intake_schema()).validate(payload)

    # WHEN StackStorm validates it against the trigger's payload_schema (draft 4, as st2 does)
    errors = list(jsonschema.Draft4Validator(_trigger_schema()).iter_errors(payload))

    # THEN it passes
    assert errors == [], [e.message for e in errors]


def test_trigger_and_intake_schemas_agree_on_fields_and_events() -> None:
    trigger, intake = _trigger_schema(), _intake_schema()
    jsonschema.Draft4Validator.check_schema(trigger)

    assert set(trigger["required"]) == set(intake["required"])
    assert set(trigger["properties"]) == set(intake["properties"])
    assert trigger["additionalProperties"] is intake["additionalProperties"] is False
    assert set(trigger["properties"]["event"]["enum"]) == set(intake["properties"]["event"]["enum"])
    assert trigger["properties"]["schema"]["enum"] == [intake["properties"]["schema"]["const"]]
    assert trigger["properties"]["deployment"]["pattern"] == intake["properties"]["deployment"]["pattern"]
    sample = next(s for s in intake["properties"]["sample"]["oneOf"] if s["type"] == "object")
    assert set(trigger["properties"]["sample"]["required"]) == set(sample["required"])


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda p: p.pop("deployment"), "missing deployment"),
        (lambda p: p.update(event="sample.exploded"), "unknown event"),
        (lambda p: p.update(schema="capillary.intake/v2"), "other contract version"),
        (lambda p: p["sample"].update(uuid="XYZ"), "malformed uuid"),
        (lambda p: p.update(extra=1), "unknown field"),
    ],
)
def test_trigger_schema_refuses_payloads_the_intake_would_never_send(change: Any, why: str) -> None:
    payload = copy.deepcopy(_payloads()["sample.received"])
    change(payload)
    assert not jsonschema.Draft4Validator(_trigger_schema()).is_valid(payload), why


# --------------------------------------------------------------------------------------------
# Metadata against StackStorm's documented formats


def _metadata(folder: str) -> list[tuple[Path, dict[str, Any]]]:
    files = sorted((PACK / folder).glob("*.yaml"))
    assert files, f"no {folder} in the pack"
    return [(f, _load(f)) for f in files]


def test_pack_metadata_is_valid_and_named_after_its_folder() -> None:
    pack = _load(PACK / "pack.yaml")
    jsonschema.Draft202012Validator(_schema("pack")).validate(pack)
    assert pack["ref"] == PACK.name  # st2 installs the pack under a directory named by ref
    # No StackStorm ansible pack: its virtualenv has neither our collection nor boto3.
    assert "ansible" not in pack.get("dependencies", [])


def test_the_pack_virtualenv_gets_ansible_core_the_package_and_boto3() -> None:
    from packaging.requirements import Requirement

    wanted = {
        Requirement(line).name: Requirement(line).specifier
        for line in (PACK / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert set(wanted) == {"ansible-core", "capillary-pcgr", "boto3", "botocore"}
    # the versions the checkout tests satisfy them
    pins = {
        name.lower(): version
        for line in (REPO / "requirements" / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
        for name, version in [line.split(";")[0].strip().split("==")]
    }
    for name in ("ansible-core", "boto3", "botocore"):
        assert pins[name] in wanted[name], name
    import capillary

    assert capillary.__version__ in wanted["capillary-pcgr"]


@pytest.mark.parametrize(
    ("kind", "folder"), [("action", "actions"), ("rule", "rules"), ("trigger_type", "triggers")]
)
def test_metadata_files_are_valid(kind: str, folder: str) -> None:
    validator = jsonschema.Draft202012Validator(_schema(kind))
    for path, doc in _metadata(folder):
        errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc)]
        assert errors == [], f"{path.name}: {errors}"
        assert doc["pack"] == "capillary", path.name
        assert doc["name"] == path.stem, f"{path.name}: name and file differ"


def test_the_metadata_schemas_do_catch_mistakes() -> None:
    # A rule shipped without `enabled`, or with a criteria operator st2 lacks, is refused.
    rule = _load(PACK / "rules" / "sample_received_up.yaml")
    validator = jsonschema.Draft202012Validator(_schema("rule"))
    no_enabled = {k: v for k, v in rule.items() if k != "enabled"}
    bad_operator = copy.deepcopy(rule)
    bad_operator["criteria"]["trigger.event"]["type"] = "equal"
    assert not validator.is_valid(no_enabled)
    assert not validator.is_valid(bad_operator)


def test_every_rule_ships_enabled() -> None:
    # The predecessor's pack shipped both its rules `enabled: false`; these work on install.
    for path, rule in _metadata("rules"):
        assert rule["enabled"] is True, path.name


def test_rules_reference_triggers_and_actions_that_exist() -> None:
    actions = {f"capillary.{doc['name']}" for _, doc in _metadata("actions")} | EXTERNAL_ACTIONS
    triggers = {f"capillary.{doc['name']}" for _, doc in _metadata("triggers")} | EXTERNAL_TRIGGERS
    for path, rule in _metadata("rules"):
        assert rule["trigger"]["type"] in triggers, path.name
        assert rule["action"]["ref"] in actions, path.name
        if rule["action"]["ref"] == "core.inject_trigger":
            assert rule["action"]["parameters"]["trigger"] in triggers


def test_rules_route_queued_samples_to_up_and_finished_ones_to_notify() -> None:
    rules = {doc["name"]: doc for _, doc in _metadata("rules")}
    payloads = _payloads()

    def matches(rule: dict[str, Any], payload: dict[str, Any]) -> bool:
        for key, criterion in rule.get("criteria", {}).items():
            value = payload[key.removeprefix("trigger.")]
            pattern = criterion["pattern"]
            if "st2kv.system.capillary.deployment" in str(pattern):
                pattern = "demo"  # the datastore's value for this deployment
            if criterion["type"] == "equals" and value != pattern:
                return False
            if criterion["type"] == "regex" and not re.match(pattern, value):
                return False
        return True

    up, notify = rules["sample_received_up"], rules["sample_done_notify"]
    assert up["action"]["ref"] == "capillary.up"
    assert notify["action"]["ref"] == "capillary.notify"
    assert [e for e, p in payloads.items() if matches(up, p)] == ["sample.received"]
    assert [e for e, p in payloads.items() if matches(notify, p)] == ["sample.completed", "sample.failed"]
    other = {**payloads["sample.received"], "deployment": "other"}
    assert not matches(up, other)


def test_the_relay_rule_listens_where_the_intake_posts() -> None:
    relay = _load(PACK / "rules" / "relay_intake_webhook.yaml")
    assert relay["trigger"] == {"type": "core.st2.webhook", "parameters": {"url": "capillary"}}
    assert (
        relay["criteria"]["trigger.body.schema"]["pattern"]
        == _intake_schema()["properties"]["schema"]["const"]
    )
    assert relay["action"]["parameters"]["payload"] == "{{ trigger.body }}"


def test_actions_read_the_deployment_from_the_datastore_and_match_their_workflows() -> None:
    for path, action in _metadata("actions"):
        if action["runner_type"] != "orquesta":
            continue
        params = action["parameters"]
        workflow = _load(PACK / "actions" / action["entry_point"])
        inputs = {i if isinstance(i, str) else next(iter(i)) for i in workflow["input"]}
        assert set(params) == inputs, f"{path.name}: parameters and workflow inputs differ"
        if "deployment" in params:
            assert params["deployment"]["default"] == "{{ st2kv.system.capillary.deployment }}"
        if "channel" in params:
            assert params["channel"]["default"] == "{{ st2kv.system.capillary.channel }}"


# --------------------------------------------------------------------------------------------
# Workflows


def _orquesta_models() -> Any:
    pytest.importorskip("orquesta", reason="orquesta (StackStorm's workflow library) is not installed")
    # orquesta 1.2.0, the last release on PyPI, predates Python 3.10: restore the collections
    # aliases it imports and make its two inline regex flags scoped (Python 3.11 rejects a global
    # flag mid-pattern), as upstream did after 1.2.0. Only names orquesta reads are touched.
    for name in ("Mapping", "MutableMapping", "Sequence", "MutableSequence", "Iterable", "Callable"):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))
    from orquesta.utils import parameters

    parameters.REGEX_INLINE_PARAMS = parameters.REGEX_INLINE_PARAMS.replace("(?i)true", "(?i:true)").replace(
        "(?i)false", "(?i:false)"
    )
    from orquesta.specs.native.v1 import models

    return models


@pytest.mark.parametrize("workflow", ["ansible_run.yaml", "notify.yaml"])
def test_workflow_passes_orquesta_inspection(workflow: str) -> None:
    models = _orquesta_models()
    spec = models.WorkflowSpec(_load(PACK / "actions" / "workflows" / workflow))
    assert spec.inspect() == {}


def test_orquesta_inspection_does_catch_a_broken_workflow() -> None:
    models = _orquesta_models()
    broken = _load(PACK / "actions" / "workflows" / "ansible_run.yaml")
    broken["tasks"]["run_playbook"]["next"][0]["do"] = "notify_sucess"
    broken["tasks"]["notify_success"]["input"]["channel"] = "<% ctx(chanel) %>"
    errors = models.WorkflowSpec(broken).inspect()
    assert "semantics" in errors and "context" in errors


def test_playbook_workflow_runs_the_collections_playbook_and_reports_both_outcomes() -> None:
    tasks = _load(PACK / "actions" / "workflows" / "ansible_run.yaml")["tasks"]
    run = tasks["run_playbook"]
    # the pack's own action (its virtualenv's ansible-playbook), on the playbook the action names
    assert run["action"] == "capillary.run"
    assert run["input"]["playbook"] == "<% ctx(playbook) %>"
    for name in ("up", "down"):
        default = _load(PACK / "actions" / f"{name}.yaml")["parameters"]["playbook"]["default"]
        assert default == f"capillary.pcgr.{name}"
        assert (REPO / "playbooks" / f"{name}.yml").is_file()  # what the collection ships as it
    branches = {b["when"]: b["do"] for b in run["next"]}
    assert tasks[branches["<% succeeded() %>"]]["action"] == "chatops.post_message"
    assert tasks[branches["<% failed() %>"]]["action"] == "chatops.post_message"
    # after telling chat, a failed playbook still fails the workflow
    assert tasks[branches["<% failed() %>"]]["next"] == [{"do": "fail"}]


def test_workflow_expressions_evaluate_on_an_intake_payload() -> None:
    _orquesta_models()
    from orquesta.expressions import base as expressions

    # GIVEN the contexts the two workflows start with, for real intake payloads
    payloads = _payloads()
    run = _load(PACK / "actions" / "workflows" / "ansible_run.yaml")["tasks"]["run_playbook"]
    extra_vars = run["input"]["extra_vars"]
    routes = _load(PACK / "actions" / "workflows" / "notify.yaml")["tasks"]["choose"]["next"]

    def route(payload: dict[str, Any]) -> list[str]:
        return [r["do"] for r in routes if expressions.evaluate(r["when"], {"event": payload})]

    # THEN the playbook gets the caller's extras, with the deployment, release and event (the
    # sample's key; a fixed word when started by hand) decided by the workflow, not the caller
    received = payloads["sample.received"]
    start = {"deployment": "demo", "release": "2.3.2"}
    given = {"capillary_platform": "aws", "capillary_deployment": "other"}
    assert expressions.evaluate(extra_vars, {**start, "extra_vars": given, "event": received}) == {
        "capillary_platform": "aws",
        "capillary_deployment": "demo",
        "capillary_release": "2.3.2",
        "capillary_event": received["key"],
    }
    by_hand = expressions.evaluate(extra_vars, {**start, "extra_vars": {}, "event": {}})
    assert by_hand["capillary_event"] == "stackstorm"
    # AND notify takes exactly one branch per finished event, and fails on anything else
    assert route(payloads["sample.completed"]) == ["post_completed"]
    assert route(payloads["sample.failed"]) == ["post_failed"]
    assert route(payloads["sample.received"]) == ["fail"]


# --------------------------------------------------------------------------------------------
# The python-script action that runs ansible-playbook


def _playbook_action(monkeypatch: pytest.MonkeyPatch) -> Any:
    """actions/run.py, with StackStorm's Action base class as st2common defines it (the
    constructor keeps the pack configuration); st2common itself is not on PyPI."""
    runners = types.ModuleType("st2common.runners.base_action")

    class Action:
        def __init__(self, config: dict[str, Any] | None = None, action_service: Any = None) -> None:
            self.config = config or {}
            self.action_service = action_service

    runners.Action = Action  # type: ignore[attr-defined]
    for name in ("st2common", "st2common.runners"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "st2common.runners.base_action", runners)
    spec = importlib.util.spec_from_file_location("capillary_pack_playbook", PACK / "actions" / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_action_runs_the_ansible_playbook_beside_its_python(monkeypatch: pytest.MonkeyPatch) -> None:
    action = _playbook_action(monkeypatch)
    argv = action.command("capillary.pcgr.up", {"capillary_deployment": "demo"})
    # the virtualenv StackStorm runs the action in (sys.executable) holds ansible-playbook
    assert argv[0] == str(Path(sys.executable).parent / "ansible-playbook")
    assert argv[1:] == ["capillary.pcgr.up", "-e", '{"capillary_deployment": "demo"}']
    assert action.collections_path({}) == Path(sys.prefix) / "collections"
    assert action.collections_path({"collections_path": "/srv/c"}) == Path("/srv/c")


@pytest.mark.parametrize("playbook", ["playbooks/up.yml", "/etc/passwd", "capillary.pcgr.up; rm -rf /", "up"])
def test_the_action_runs_only_the_collections_playbooks(
    monkeypatch: pytest.MonkeyPatch, playbook: str
) -> None:
    action = _playbook_action(monkeypatch)
    ok, result = action.Playbook(config={}).run(playbook=playbook)
    assert ok is False
    assert f"playbook {playbook!r}: expected a capillary.pcgr playbook by name" in result["error"]


def test_the_recap_is_read_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    action = _playbook_action(monkeypatch)
    output = (
        "TASK [x]\nok: [localhost]\n\nPLAY RECAP ****\nlocalhost : ok=3 changed=1 unreachable=0 failed=0\n"
    )
    assert action.recap(output) == {"localhost": {"ok": 3, "changed": 1, "unreachable": 0, "failed": 0}}
