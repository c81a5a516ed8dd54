"""The IMDSv2 client against the local IMDSv2 server (which refuses token-less reads)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from capillary.worker.imds import IMDSClient, IMDSError
from tests.support.imds import LocalIMDS


@pytest.fixture
def imds() -> Iterator[LocalIMDS]:
    with LocalIMDS() as server:
        yield server


def test_token_less_reads_are_refused_like_imdsv2_required(imds: LocalIMDS) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{imds.url}/latest/meta-data/instance-id", timeout=5)
    assert err.value.code == 401


def test_client_gets_a_token_then_reads_identity(imds: LocalIMDS) -> None:
    client = IMDSClient(imds.url)
    assert client.identity() == {
        "instance_id": "i-0123456789abcdef0",
        "instance_type": "m6i.xlarge",
        "image_id": "ami-0123456789abcdef0",
        "availability_zone": "eu-west-1a",
        "region": "eu-west-1",
        "purchase_option": "on-demand",
        "launch_time": "2026-11-21T00:00:00Z",
    }
    # One token for every read, and no read without one.
    assert [r for r in imds.requests if r[0] == "PUT"] == [("PUT", "/latest/api/token")]
    assert imds.rejected == 0


def test_spot_notice_is_none_until_issued(imds: LocalIMDS) -> None:
    client = IMDSClient(imds.url)
    assert client.spot_notice() is None
    imds.spot_notice(action="terminate")
    notice = client.spot_notice()
    assert notice is not None
    assert notice.action == "terminate"
    assert notice.time.endswith("Z")


def test_revoked_token_is_renewed(imds: LocalIMDS) -> None:
    client = IMDSClient(imds.url)
    assert client.instance_id() == "i-0123456789abcdef0"
    imds.tokens.clear()
    assert client.instance_type() == "m6i.xlarge"


def test_unreachable_service_is_an_imds_error() -> None:
    client = IMDSClient("http://127.0.0.1:9", timeout_s=0.5)
    with pytest.raises(IMDSError, match="token request"):
        client.spot_notice()
    assert client.identity() == {}


def test_a_spot_instance_says_so_with_its_zone_and_launch_time() -> None:
    with LocalIMDS(
        life_cycle="spot", availability_zone="us-east-2b", launch_time="2026-12-01T10:00:00Z"
    ) as imds:
        identity = IMDSClient(imds.url).identity()
    assert identity["purchase_option"] == "spot"
    assert identity["availability_zone"] == "us-east-2b"
    assert identity["region"] == "us-east-2"
    assert identity["launch_time"] == "2026-12-01T10:00:00Z"


def test_an_instance_without_the_newer_paths_still_has_its_identity(imds: LocalIMDS) -> None:
    # GIVEN an IMDS that answers 404 for the zone, life cycle and identity document
    del imds.metadata["placement/availability-zone"], imds.metadata["instance-life-cycle"]
    imds.dynamic.clear()
    # THEN the identity is the three facts it has always had
    assert set(IMDSClient(imds.url).identity()) == {"instance_id", "instance_type", "image_id"}
