"""Where reference data goes on a worker and which URL each source fetches from."""

from __future__ import annotations

import pytest

from capillary.release.catalogue import CatalogueError, load_catalogue
from capillary.release.pcgr_install import conda_plan
from capillary.release.refdata import artifacts_for


def test_upstream_artifacts_land_in_versioned_directories() -> None:
    arts = artifacts_for(load_catalogue().release("2.3.2"), root="/data", assemblies=["grch38"])
    bundle, vep = arts
    assert bundle["dest"] == "/data/refdata/20260620/grch38"
    assert (
        bundle["check_file"] == "data/grch38/.PCGR_BUNDLE_VERSION" and bundle["check_content"] == "20260620"
    )
    assert bundle["url"] == "https://insilico.hpc.uio.no/pcgr/pcgr_ref_data.20260620.grch38.tgz"
    assert vep["dest"] == "/data/vep/115/homo_sapiens/115_GRCh38"
    assert vep["member"] == "homo_sapiens/115_GRCh38"
    assert {a["downloads"] for a in arts} == {"/data/.downloads"}


def test_grch37_does_not_get_grch38_files() -> None:
    # The old setup unpacked the GRCh37 tarball into the GRCh38 step; here each keeps its own.
    arts = artifacts_for(load_catalogue().release("2.2.5"), assemblies=["grch37", "grch38"])
    for art in arts:
        asm = art["assembly"]
        assert asm in art["filename"].lower() and asm in art["dest"].lower()


def test_base_url_keeps_file_names_and_recorded_sums_fill_gaps() -> None:
    release = load_catalogue().release("2.3.2")
    name = "pcgr_ref_data.20260620.grch38.tgz"
    arts = artifacts_for(release, base_url="http://mirror:8080/pcgr/", recorded={name: {"sha256": "b" * 64}})
    assert arts[0]["url"] == f"http://mirror:8080/pcgr/{name}"
    assert arts[0]["catalogue_url"].startswith("https://insilico.hpc.uio.no/")
    assert arts[0]["sha256"] == "b" * 64 and arts[0]["sha256_source"] == "recorded"
    assert arts[1]["sha256"] == "" and arts[1]["sha256_source"] == ""


def test_unsupported_assembly_and_source_are_refused() -> None:
    release = load_catalogue().release("2.3.2")
    with pytest.raises(CatalogueError, match=r"assembly .hg19. is not available for PCGR 2\.3\.2"):
        artifacts_for(release, assemblies=["hg19"])
    with pytest.raises(CatalogueError, match="source 'ftp'"):
        artifacts_for(release, source="ftp")


def test_artifacts_carry_their_part_file_and_stamp_name() -> None:
    # The fetch tool runs on the target without the package: the layout reaches it in the spec.
    bundle, vep = artifacts_for(load_catalogue().release("2.3.2"), root="/data")
    assert bundle["part"] == "/data/.downloads/pcgr_ref_data.20260620.grch38.tgz.part"
    assert vep["part"] == f"/data/.downloads/{vep['filename']}.part"
    assert {a["stamp"] for a in (bundle, vep)} == {".capillary-artifact.json"}


def test_conda_envs_are_siblings_under_a_versioned_prefix() -> None:
    plan = conda_plan(load_catalogue().release("2.2.5"), prefix="/opt/pcgr")
    paths = {e["name"]: e["path"] for e in plan["envs"]}
    assert paths == {"pcgr": "/opt/pcgr/2.2.5/envs/pcgr", "pcgrr": "/opt/pcgr/2.2.5/envs/pcgrr"}
    create = {e["name"]: e["create"] for e in plan["envs"]}
    assert create["pcgrr"] == [
        "/opt/pcgr/bin/micromamba",
        "create",
        "--yes",
        "--root-prefix",
        "/opt/pcgr",
        "--prefix",
        "/opt/pcgr/2.2.5/envs/pcgrr",
        "--file",
        "/opt/pcgr/2.2.5/locks/pcgrr-linux-64.lock",
    ]
    assert plan["pcgr_env"] == "/opt/pcgr/2.2.5/envs/pcgr"
    assert plan["pcgr_bin"] == "/opt/pcgr/2.2.5/envs/pcgr/bin/pcgr"
    lock_urls = [e["lock_url"] for e in plan["envs"]]
    assert lock_urls == [
        "https://raw.githubusercontent.com/sigven/pcgr/v2.2.5/conda/env/lock/pcgr-linux-64.lock",
        "https://raw.githubusercontent.com/sigven/pcgr/v2.2.5/conda/env/lock/pcgrr-linux-64.lock",
    ]
    mirrored = conda_plan(load_catalogue().release("2.2.5"), lock_base_url="http://m/locks")
    assert mirrored["envs"][0]["lock_url"] == "http://m/locks/pcgr-linux-64.lock"
    with pytest.raises(ValueError, match="absolute"):
        conda_plan(load_catalogue().release("2.2.5"), prefix="opt")
