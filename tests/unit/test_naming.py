"""Deployment names: one name in, every resource name out, and clear refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capillary.contract.naming import DeploymentNameError, deployment_names

valid_deployments = st.from_regex(r"\A[a-z0-9](?:[a-z0-9-]{0,22}[a-z0-9])?\Z")


@given(valid_deployments)
def test_every_name_carries_the_deployment(name: str) -> None:
    names = deployment_names(name)
    for field, value in names.as_dict().items():
        if field.startswith(("tag_", "local_worker_image")):
            continue
        assert name in value, field


@given(valid_deployments, valid_deployments)
def test_two_deployments_share_no_resource_name(a: str, b: str) -> None:
    if a == b:
        return
    mine, theirs = deployment_names(a).as_dict(), deployment_names(b).as_dict()
    shared = {
        k for k in mine if not k.startswith("tag_") and k != "local_worker_image" and mine[k] == theirs[k]
    }
    assert shared == set()


def test_names_follow_the_documented_pattern() -> None:
    names = deployment_names("demo")
    assert names.bucket == "capillary-demo-samples"
    assert names.dead_letter_queue == "capillary-demo-work-dlq"
    assert names.intake_failures_queue == "capillary-demo-intake-failures"
    assert names.image_parameter("2.3.0") == "/capillary/demo/images/2.3.0"
    assert names.worker_image("2.3.0") == "localhost/capillary-worker:2.3.0"


@pytest.mark.parametrize("bad", ["", "Demo", "-demo", "demo-", "a" * 25, "demo_1", "dé"])
def test_invalid_deployment_names_are_refused_with_the_rule(bad: str) -> None:
    with pytest.raises(DeploymentNameError, match=r"deployment name .* is invalid: use 1-24 lowercase"):
        deployment_names(bad)


def test_bucket_override_is_checked_against_s3_rules() -> None:
    assert deployment_names("demo", "centre-genomics-in").bucket == "centre-genomics-in"
    with pytest.raises(DeploymentNameError, match="bucket name 'Bad_Bucket' is invalid"):
        deployment_names("demo", "Bad_Bucket")


def test_a_releases_names_come_with_the_deployments() -> None:
    # GIVEN a deployment WHEN its names are asked for with a release (as the playbooks' filter does)
    names = deployment_names("demo").as_dict("2.3.2")

    # THEN the release's image parameter and local worker image are among them, the same as the model's
    assert names["image_parameter"] == "/capillary/demo/images/2.3.2"
    assert names["worker_image"] == "localhost/capillary-worker:2.3.2"
    assert deployment_names("demo").as_dict("current")["image_parameter"] == "/capillary/demo/images/current"
    # and without one, only the deployment's
    assert "image_parameter" not in deployment_names("demo").as_dict()


@pytest.mark.parametrize("bad", ["", "-1", ".x", "2.3/4", "a b", "x" * 65])
def test_a_release_that_cannot_name_a_parameter_or_an_image_is_refused(bad: str) -> None:
    with pytest.raises(DeploymentNameError, match=r"release .* is invalid: use 1-64 letters"):
        deployment_names("demo").image_parameter(bad)
    with pytest.raises(DeploymentNameError, match=r"release .* is invalid"):
        deployment_names("demo").as_dict(bad)
