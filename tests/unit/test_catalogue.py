"""The release catalogue: the committed file parses, its facts hang together, errors name the field."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from capillary.release.catalogue import (
    CatalogueError,
    default_path,
    load_catalogue,
    parse_catalogue,
    pkrvars_for,
)


def raw_catalogue() -> dict[str, Any]:
    return yaml.safe_load(default_path().read_text())


def test_the_committed_catalogue_has_the_supported_releases_and_one_current() -> None:
    catalogue = load_catalogue()
    assert {"2.3.2", "2.2.5", "1.4.1"} <= set(catalogue.versions)
    assert catalogue.current.version == "2.3.2"
    assert catalogue.release("current") is catalogue.current


@pytest.mark.parametrize(
    ("version", "bundle", "vep", "registry"),
    [
        ("2.3.2", "20260620", 115, "ghcr.io/sigven/pcgr"),
        ("2.2.5", "20250314", 113, "docker.io/sigven/pcgr"),
        ("1.4.1", "20220203", 105, "docker.io/sigven/pcgr"),
    ],
)
def test_each_release_pins_its_bundle_vep_and_image(
    version: str, bundle: str, vep: int, registry: str
) -> None:
    rel = load_catalogue().release(version)
    assert rel.bundle.version == bundle
    assert rel.vep.version == vep
    assert rel.install.image == f"{registry}:{version}"
    assert rel.install.conda_channel == "pcgr"
    for env in ("pcgr", "pcgrr"):
        assert rel.install.lock_files[env].endswith(f"/v{version}/conda/env/lock/{env}-linux-64.lock")


def test_artifact_names_follow_upstreams_patterns() -> None:
    for rel in load_catalogue().releases:
        for assembly, art in rel.bundle.assemblies.items():
            if rel.version.startswith("2."):
                assert art.filename == f"pcgr_ref_data.{rel.bundle.version}.{assembly}.tgz"
            else:
                assert art.filename == f"pcgr.databundle.{assembly}.{rel.bundle.version}.tgz"
        for assembly, art in rel.vep.assemblies.items():
            asm = "GRCh38" if assembly == "grch38" else "GRCh37"
            assert art.filename == f"homo_sapiens_vep_{rel.vep.version}_{asm}.tar.gz"
            assert f"release-{rel.vep.version}/variation/indexed_vep_cache/" in art.url
            assert ("/grch37/" in art.url) == (assembly == "grch37")


def test_only_the_container_registry_changes_at_2_3() -> None:
    for rel in load_catalogue().releases:
        major, minor, _ = (int(x) for x in rel.version.split("."))
        expect_ghcr = (major, minor) >= (2, 3)
        assert rel.install.image.startswith("ghcr.io/") == expect_ghcr


def test_artifacts_list_bundle_and_vep_per_assembly_and_1x_has_no_separate_vep() -> None:
    catalogue = load_catalogue()
    kinds = [(a["kind"], a["assembly"]) for a in catalogue.release("2.3.2").artifacts(["grch38"])]
    assert kinds == [("bundle", "grch38"), ("vep", "grch38")]
    assert [a["kind"] for a in catalogue.release("1.4.1").artifacts(["grch38"])] == ["bundle"]
    with pytest.raises(CatalogueError, match="assembly 'hg19' is not in the catalogue"):
        catalogue.release("2.3.2").artifacts(["hg19"])


def test_unknown_release_names_the_known_ones() -> None:
    with pytest.raises(CatalogueError, match=r"no PCGR release '9\.9\.9'.*known: 2\.3\.2"):
        load_catalogue().release("9.9.9")


def test_image_ref_prefers_the_digest() -> None:
    raw = raw_catalogue()
    raw["releases"][0]["install"]["container"]["digest"] = "sha256:" + "a" * 64
    rel = parse_catalogue(raw, Path("x.yml")).release("2.3.2")
    assert rel.install.image_ref == "ghcr.io/sigven/pcgr@sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda r: r["releases"][0]["bundle"]["assemblies"]["grch38"].update(size="big"),
            r"releases\[0\]\.bundle\.assemblies\.grch38\.size: expected a non-negative integer",
        ),
        (
            lambda r: r["releases"][0]["bundle"]["assemblies"]["grch38"].update(sha256="XYZ"),
            r"releases\[0\]\.bundle\.assemblies\.grch38\.sha256: expected empty or 64 lowercase hex",
        ),
        (lambda r: r["releases"][1].update(current=True), r"exactly one release must have current: true"),
        (lambda r: r["releases"][1].update(version="2.3.2"), r"version '2\.3\.2' appears twice"),
        (
            lambda r: r["releases"][0]["bundle"].update(version="2026-06-20"),
            r"releases\[0\]\.bundle\.version: expected a date like 20260620",
        ),
        (
            lambda r: r["releases"][0]["install"]["conda"]["lock_files"].pop("pcgrr"),
            r"releases\[0\]\.install\.conda\.lock_files\.pcgrr: missing",
        ),
        (
            lambda r: r["releases"][0]["vep"]["assemblies"].pop("grch37"),
            r"releases\[0\]\.vep\.assemblies: must cover the bundle's assemblies",
        ),
        (
            lambda r: r["releases"][0]["bundle"]["assemblies"].update(hg19={"url": "http://x/y", "size": 1}),
            r"releases\[0\]\.bundle\.assemblies\.hg19: unknown assembly",
        ),
        (lambda r: r.update(schema=2), r"schema: expected 1"),
    ],
)
def test_malformed_catalogue_errors_name_the_field(mutate: Any, message: str) -> None:
    raw = raw_catalogue()
    mutate(raw)
    with pytest.raises(CatalogueError, match=message):
        parse_catalogue(raw, Path("bad.yml"))


def test_env_override_and_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPILLARY_CATALOGUE", str(tmp_path / "nope.yml"))
    with pytest.raises(CatalogueError, match=r"nope\.yml: catalogue file not found"):
        load_catalogue()
    (tmp_path / "bad.yml").write_text("schema: [")
    with pytest.raises(CatalogueError, match="not valid YAML"):
        load_catalogue(tmp_path / "bad.yml")


def test_pkrvars_are_hcl_assignments_of_the_release_pins() -> None:
    text = pkrvars_for(load_catalogue().release("2.2.5"))
    pins = dict(re.findall(r"^(\w+)\s+=\s+(.+)$", text, re.M))
    assert pins == {
        "pcgr_version": '"2.2.5"',
        "bundle_version": '"20250314"',
        "vep_version": "113",
        "root_volume_size": "30",
        "data_volume_size": "80",
    }
