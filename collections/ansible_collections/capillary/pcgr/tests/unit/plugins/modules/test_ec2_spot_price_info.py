"""The module's contract: its documentation matches its argument spec, ansible-doc renders it, and
its AWS calls page through results with the parameters the API model accepts."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry, RetryingBotoClientWrapper
from ansible_collections.capillary.pcgr.plugins.modules import (
    autoscaling_group_capacity,
    lambda_event_invoke_config,
    podman_container_group,
    sqs_queue_info,
)
from ansible_collections.capillary.pcgr.plugins.modules import ec2_spot_price_info as module
from botocore.stub import Stubber

REPO = Path(__file__).resolve().parents[8]
DOC_KEYS = ("type", "elements", "default", "choices", "required", "aliases")


def _normalise(options: dict[str, Any]) -> dict[str, Any]:
    """{name: {key: value}} for the keys both DOCUMENTATION and the spec carry, recursively."""
    out: dict[str, Any] = {}
    for name, spec in options.items():
        entry = {k: spec[k] for k in DOC_KEYS if spec.get(k) not in (None, False)}
        if "aliases" in entry:
            entry["aliases"] = sorted(entry["aliases"])
        sub = spec.get("suboptions", spec.get("options"))
        if sub:
            entry["suboptions"] = _normalise(sub)
        out[name] = entry
    return out


MODULES = [
    module,
    autoscaling_group_capacity,
    podman_container_group,
    sqs_queue_info,
    lambda_event_invoke_config,
]


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_documentation_options_match_the_argument_spec(mod: Any) -> None:
    # GIVEN the options DOCUMENTATION declares (fragments excluded: AnsibleAWSModule adds those)
    documented = yaml.safe_load(mod.DOCUMENTATION)["options"]

    # THEN names, types, elements, defaults, choices, required and aliases agree, suboptions too
    assert _normalise(documented) == _normalise(mod.ARGUMENT_SPEC)


def test_the_comparison_catches_a_drift() -> None:
    # GIVEN a spec whose default differs from the documented one
    drifted = {**module.ARGUMENT_SPEC, "lookback_hours": {"type": "int", "default": 12}}
    documented = yaml.safe_load(module.DOCUMENTATION)["options"]
    assert _normalise(documented) != _normalise(drifted)


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_examples_and_return_are_yaml_and_every_example_task_is_named_with_fqcn(mod: Any) -> None:
    examples = yaml.safe_load(mod.EXAMPLES)
    returned = yaml.safe_load(mod.RETURN)
    assert all(task.get("name") for task in examples)
    assert all(any(k.count(".") == 2 for k in task) for task in examples)
    assert returned and all(r.get("description") for r in returned.values())


def test_spot_price_info_returns_what_the_issue_asks_for() -> None:
    returned = yaml.safe_load(module.RETURN)
    assert {"prices", "candidates", "choice", "msg", "window", "instance_types"} <= set(returned)


@pytest.mark.parametrize(
    "name",
    ["autoscaling_group_capacity", "podman_container_group", "sqs_queue_info", "lambda_event_invoke_config"],
)
def test_ansible_doc_renders_the_other_modules(name: str) -> None:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), f"capillary.pcgr.{name}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr.upper(), proc.stderr
    assert "RETURN VALUES" in proc.stdout


def test_ansible_doc_renders_the_module() -> None:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), "capillary.pcgr.ec2_spot_price_info"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr.upper(), proc.stderr
    for text in ("product_descriptions", "lookback_hours", "RETURN VALUES", "candidates", "EXAMPLES"):
        assert text in proc.stdout


def _price(itype: str, zone: str, price: str, when: dt.datetime, product: str) -> dict[str, Any]:
    return {
        "AvailabilityZone": zone,
        "InstanceType": itype,
        "ProductDescription": product,
        "SpotPrice": price,
        "Timestamp": when,
    }


def test_spot_price_info_pages_through_history_with_the_requested_products_and_subnets() -> None:
    # GIVEN a client whose DescribeSubnets and two DescribeSpotPriceHistory pages are stubbed
    # (botocore validates every request against the EC2 API model)
    now = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
    start = now - dt.timedelta(hours=6)
    client = boto3.client("ec2", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")  # noqa: S106 - stubbed
    stub = Stubber(client)
    stub.add_response(
        "describe_subnets",
        {"Subnets": [{"SubnetId": "subnet-a", "AvailabilityZone": "eu-west-1a"}]},
        {"SubnetIds": ["subnet-a"]},
    )
    expected: dict[str, Any] = {
        "InstanceTypes": ["c5.xlarge", "m5.xlarge"],
        "ProductDescriptions": ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
        "StartTime": start,
        "EndTime": now,
        "Filters": [{"Name": "availability-zone", "Values": ["eu-west-1a"]}],
    }
    stub.add_response(
        "describe_spot_price_history",
        {
            "SpotPriceHistory": [
                _price("m5.xlarge", "eu-west-1a", "0.070000", now - dt.timedelta(hours=1), "Linux/UNIX"),
                _price("m5.xlarge", "eu-west-1a", "0.090000", now - dt.timedelta(hours=7), "Linux/UNIX"),
            ],
            "NextToken": "page-2",
        },
        expected,
    )
    stub.add_response(
        "describe_spot_price_history",
        {
            "SpotPriceHistory": [
                _price("c5.xlarge", "eu-west-1a", "0.065000", now - dt.timedelta(hours=8), "Linux/UNIX"),
                _price(
                    "c5.xlarge",
                    "eu-west-1a",
                    "0.060000",
                    now - dt.timedelta(hours=8),
                    "Linux/UNIX (Amazon VPC)",
                ),
            ]
        },
        {**expected, "NextToken": "page-2"},
    )
    params = {
        "instance_types": ["m5.xlarge", "c5.xlarge", "m5.xlarge"],
        "requirements": None,
        "availability_zones": None,
        "subnets": ["subnet-a"],
        "product_descriptions": ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
        "lookback_hours": 6,
        "max_price": 0.068,
        "strategy": "stable",
        "on_demand_prices": None,
    }

    # WHEN the module's core runs
    with stub:
        # the same wrapper module.client(..., retry_decorator=...) returns
        wrapped = RetryingBotoClientWrapper(client, AWSRetry.jittered_backoff())
        result = module.spot_price_info(wrapped, params, now)

    # THEN rows from both pages were used, and the choice carries its subnet
    stub.assert_no_pending_responses()
    assert len(result["prices"]) == 3
    assert result["choice"]["instance_type"] == "c5.xlarge"
    assert result["choice"]["product_description"] == "Linux/UNIX (Amazon VPC)"
    assert result["choice"]["subnet_id"] == "subnet-a"
    assert [c["instance_type"] for c in result["candidates"]] == ["c5.xlarge", "c5.xlarge"]
    assert result["window"] == {"start": "2026-11-20T06:00:00Z", "end": "2026-11-20T12:00:00Z"}


@pytest.mark.parametrize("bad", [{"instance_types": []}])
def test_an_empty_type_list_is_named(bad: dict[str, Any]) -> None:
    params = {
        "requirements": None,
        "availability_zones": None,
        "subnets": None,
        "product_descriptions": ["Linux/UNIX"],
        "lookback_hours": 24,
        "max_price": None,
        "strategy": "cheapest",
        "on_demand_prices": None,
        **bad,
    }
    with pytest.raises(module.SpotSelectionError, match="instance_types is empty"):
        module.spot_price_info(None, params, dt.datetime.now(dt.UTC))
