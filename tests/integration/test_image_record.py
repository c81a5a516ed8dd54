"""`capillary image record` and `capillary image verify` on a local image: the image's own proof.

GIVEN the baked worker image with its reference manifests (committed to a throwaway tag: the
baked image itself is never modified), its record is made (the audit playbook's gate on a
container of it, detect-secrets over its filesystem, its SBOM, the catalogue's checksums), then
verified against the same image, and against an image with a VCF planted in it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from capillary.local.podman import PODMAN_ENV, podman
from tests.support import gate_corpus as corpus
from tests.support.gate_corpus import RELEASE, Container, add_manifests

pytestmark = [pytest.mark.integration, pytest.mark.containers]


def _capillary(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "capillary", "image", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=PODMAN_ENV,
        check=False,
    )


def _commit(source: str, catalogue_path: Path, plant: corpus.Plant | None = None) -> str:
    tag = f"localhost/capillary-gate-record-test:{uuid.uuid4().hex[:8]}"
    with Container(source, prefix="gate-record") as c:
        add_manifests(c.name, catalogue_path)
        if plant is not None:
            corpus.plant(c.name, plant)
        podman("commit", "-q", c.name, tag)
    return tag


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return corpus.demo_catalogue(tmp_path_factory.mktemp("record-artifacts"))


@pytest.fixture(scope="module")
def manifested_image(catalogue: Path) -> Iterator[str]:
    tag = _commit(corpus.baked_image_id(), catalogue)
    yield tag
    podman("rmi", "-f", tag, check=False)


# Each record runs the image in a new container; the SBOM names the image id as its subject, not
# that container (it did, and verify of the very image just recorded differed in sbom.sha256).
def test_an_image_is_recorded_and_verifies_against_its_record(
    manifested_image: str,
    catalogue: Path,
    tmp_path: Path,
) -> None:
    # WHEN its record is made
    made = _capillary(
        "record",
        manifested_image,
        "--release",
        RELEASE,
        "--catalogue",
        str(catalogue),
        "--out",
        str(tmp_path),
    )

    # THEN the gate is clean, detect-secrets found nothing, the SBOM lists its packages, and the
    # reference data installed is the catalogue's, verified file by file against its manifest
    assert made.returncode == 0, made.stderr + made.stdout
    record = json.loads((tmp_path / "record.json").read_text())
    sbom = json.loads((tmp_path / "sbom.cdx.json").read_text())
    assert record["gate"]["clean"] and record["secrets"]["findings"] == []
    assert record["secrets"]["scanner"].startswith("detect-secrets ")
    assert sbom["bomFormat"] == "CycloneDX" and record["sbom"]["components"] == len(sbom["components"])
    purls = {c["purl"] for c in sbom["components"]}
    assert any(p.startswith("pkg:deb/debian/python3@") for p in purls)
    assert any(p.startswith("pkg:pypi/capillary-pcgr@") for p in purls)
    # (the demo image holds GRCh38 only: the release's GRCh37 artifacts are listed, not installed)
    installed = [a for a in record["reference_data"] if a["verified"] != "not installed"]
    missing = [a["filename"] for a in record["reference_data"] if a not in installed]
    assert installed and all("grch37" in name.lower() for name in missing), record["reference_data"]
    for artifact in installed:
        assert artifact["verified"] == "catalogue", artifact
        assert artifact["installed_sha256"] == artifact["catalogue_sha256"], artifact
        assert len(artifact["manifest_sha256"]) == 64

    # WHEN the same image is verified against that record
    same = _capillary(
        "verify", manifested_image, "--record", str(tmp_path / "record.json"), "--catalogue", str(catalogue)
    )

    # THEN nothing differs
    assert same.returncode == 0, same.stderr + same.stdout
    assert json.loads(same.stdout.splitlines()[-1])["differences"] == 0

    # WHEN an image with a patient VCF in it is verified against the record
    [vcf] = [p for p in corpus.ISSUE_KINDS if p.name == "TUMOR.VCF.GZ"]
    tampered = _commit(manifested_image, catalogue, vcf)
    try:
        other = _capillary(
            "verify", tampered, "--record", str(tmp_path / "record.json"), "--catalogue", str(catalogue)
        )
    finally:
        podman("rmi", "-f", tampered, check=False)

    # THEN it fails, saying the gate is no longer clean and naming the file
    assert other.returncode == 1, other.stderr + other.stdout
    assert "gate.clean: recorded True, now False" in other.stdout
    assert "/srv/calls/TUMOR.VCF.GZ" in other.stdout
