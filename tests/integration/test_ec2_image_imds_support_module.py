"""`capillary.pcgr.ec2_image_imds_support` in a playbook, against the local endpoint.

The endpoint keeps an image's ImdsSupport as EC2 does (tests/support/localaws.py: moto alone
drops it), so what the module wrote is read back with DescribeImages and DescribeImageAttribute.
That a worker launched from the image then requires IMDSv2 is EC2's doing and is not shown here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from capillary.local.endpoint import LocalAWS
from capillary.local.playbook import run_module

pytestmark = pytest.mark.integration

MODULE = "capillary.pcgr.ec2_image_imds_support"


def apply(
    playbook: Any, tmp_path: Path, check: bool = False, diff: bool = False, **args: Any
) -> dict[str, Any]:
    _, result = run_module(playbook, tmp_path, MODULE, args, check=check, diff=diff, ignore_errors=True)
    return result


def imds_support(aws: LocalAWS, image_id: str) -> tuple[str | None, str | None]:
    """(DescribeImages' ImdsSupport, DescribeImageAttribute's), None where unset."""
    ec2 = aws.client("ec2")
    image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    attribute = ec2.describe_image_attribute(ImageId=image_id, Attribute="imdsSupport")["ImdsSupport"]
    return image.get("ImdsSupport"), attribute.get("Value")


def test_sets_v2_once_and_a_rerun_changes_nothing(aws: LocalAWS, playbook: Any, tmp_path: Path) -> None:
    # GIVEN an image registered without ImdsSupport (as Packer 1.6.6 registers one)
    image_id = aws.client("ec2").register_image(Name="capillary-worker-2.3.2-probe")["ImageId"]
    assert imds_support(aws, image_id) == (None, None)

    # WHEN the module runs in check mode THEN it reports the change and writes nothing
    planned = apply(playbook, tmp_path, check=True, diff=True, image_id=image_id)
    assert planned["changed"] is True
    assert planned["diff"] == {"before": {"imds_support": ""}, "after": {"imds_support": "v2.0"}}
    assert imds_support(aws, image_id) == (None, None)

    # WHEN it runs for real THEN the image requires IMDSv2
    done = apply(playbook, tmp_path, image_id=image_id)
    assert done["changed"] is True and done["imds_support"] == "v2.0"
    assert imds_support(aws, image_id) == ("v2.0", "v2.0")

    # WHEN it runs again, in check mode and for real THEN nothing changes
    assert apply(playbook, tmp_path, check=True, image_id=image_id)["changed"] is False
    again = apply(playbook, tmp_path, image_id=image_id)
    assert again["changed"] is False and again["imds_support"] == "v2.0"


def test_an_unknown_image_is_named(aws: LocalAWS, playbook: Any, tmp_path: Path) -> None:
    failed = apply(playbook, tmp_path, image_id="ami-0123456789abcdef0")
    assert failed["failed"] is True
    assert "AMI ami-0123456789abcdef0: no such image in this account and region" in failed["msg"]


def test_a_value_other_than_v2_is_refused_before_any_call(
    aws: LocalAWS, playbook: Any, tmp_path: Path
) -> None:
    image_id = aws.client("ec2").register_image(Name="capillary-worker-probe")["ImageId"]
    failed = apply(playbook, tmp_path, image_id=image_id, imds_support="v1.0")
    assert failed["failed"] is True
    assert "imds_support" in failed["msg"] and "v2.0" in failed["msg"]
    assert imds_support(aws, image_id) == (None, None)
