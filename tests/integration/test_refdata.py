"""pcgr_refdata against a booted bookworm container, with bundles served by a local HTTP server.

One container for the module (host network, so it reaches the 127.0.0.1 servers); each test
starts from an empty data root. The artifacts have the real names and layout, only smaller.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capillary.local.artifacts import (
    ArtifactServer,
    build_artifacts,
    make_test_catalogue,
    write_bundle,
)
from capillary.local.endpoint import LocalAWS
from capillary.local.playbook import Recap, run_playbook
from capillary.local.podman import PODMAN_ENV
from capillary.release.catalogue import load_catalogue
from tests.support.podman_targets import BootedTarget

pytestmark = [pytest.mark.integration, pytest.mark.containers]

PLAYBOOK = "tests/integration/playbooks/refdata.yml"
ROOT = "/srv/capillary"
OLD, NEW = "2.2.5", "2.3.2"


@pytest.fixture(scope="module")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("artifacts")
    catalogue = load_catalogue()
    for version in (OLD, NEW):
        build_artifacts(d, catalogue.release(version), ("grch38",), bundle_payload=512 * 1024)
    return d


@pytest.fixture(scope="module")
def server(artifacts_dir: Path) -> Iterator[ArtifactServer]:
    with ArtifactServer(artifacts_dir) as srv:
        yield srv


@pytest.fixture(scope="module")
def target() -> Iterator[BootedTarget]:
    with BootedTarget() as t:
        yield t


@pytest.fixture
def clean_target(target: BootedTarget, server: ArtifactServer) -> BootedTarget:
    target.exec("rm", "-rf", ROOT, "/etc/ansible/facts.d/pcgr_refdata.fact")
    server.bytes_served.clear()
    server.stats.requests.clear()
    server.drop_after.clear()
    return target


def run(target: BootedTarget, tmp_path: Path, catalogue: Path, **extra: Any) -> Recap:
    inventory = target.inventory(tmp_path / "inventory.yml")
    # The data_volume role runs in the fresh-install test and in Molecule; elsewhere it is skipped
    # to keep the suite short (each task through the podman connection costs about a second).
    extra_vars = {
        "pcgr_refdata_catalogue": str(catalogue),
        "pcgr_refdata_retry_delay": 0.2,
        "pcgr_refdata_manage_volume": False,
        **extra,
    }
    return run_playbook(PLAYBOOK, inventory=inventory, extra_vars=extra_vars, env=PODMAN_ENV)


def catalogue_for(tmp_path: Path, server: ArtifactServer, artifacts_dir: Path, **kwargs: Any) -> Path:
    return make_test_catalogue(
        tmp_path / f"catalogue-{len(list(tmp_path.glob('catalogue-*')))}.yml",
        server.base_url,
        artifacts_dir,
        **kwargs,
    )


def said(recap: Recap, *phrases: str) -> bool:
    """Every phrase appears in the run's output, however Ansible's YAML callback wrapped and quoted it."""
    text = " ".join((recap.stdout + recap.stderr).split()).replace("''", "'")
    return all(p in text for p in phrases)


def fact(target: BootedTarget) -> dict[str, Any]:
    return json.loads(target.exec("cat", "/etc/ansible/facts.d/pcgr_refdata.fact").stdout)


def readlink(target: BootedTarget, path: str) -> str:
    return target.exec("readlink", path, check=False).stdout.strip()


def test_fresh_install_lays_out_verifies_and_reruns_as_a_no_op(
    clean_target: BootedTarget, server: ArtifactServer, artifacts_dir: Path, tmp_path: Path
) -> None:
    # GIVEN a catalogue whose current release is 2.3.2, with checksums
    catalogue = catalogue_for(tmp_path, server, artifacts_dir, versions=(NEW,), current=NEW)

    # WHEN the role runs twice
    first = run(clean_target, tmp_path, catalogue, pcgr_refdata_manage_volume=True).assert_ok()
    served_after_first = sum(server.bytes_served.values())
    second = run(clean_target, tmp_path, catalogue, pcgr_refdata_manage_volume=True)

    # THEN the bundle and the cache are in their versioned places, current points at them
    assert first.changed > 0
    t = clean_target
    assert (
        t.exec("cat", f"{ROOT}/refdata/current/grch38/data/grch38/.PCGR_BUNDLE_VERSION").stdout.strip()
        == "20260620"
    )
    assert readlink(t, f"{ROOT}/refdata/current") == "20260620"
    assert readlink(t, f"{ROOT}/vep/current") == "115"
    assert t.exec("test", "-d", f"{ROOT}/vep/115/homo_sapiens/115_GRCh38/1", check=False).returncode == 0
    # no part file or staging directory is left behind
    assert t.exec("find", ROOT, "-name", "*.part*", check=False).stdout.strip() == ""
    # AND the re-run changed nothing and downloaded nothing
    second.assert_idempotent()
    assert sum(server.bytes_served.values()) == served_after_first
    recorded = fact(t)["artifacts"]
    assert recorded["pcgr_ref_data.20260620.grch38.tgz"]["verified"] == "catalogue"
    # AND the plan was the only call into the host: the tool copy and finalize were skipped
    plan = "Find what is missing, the space it needs, and whether anything is left to do"
    assert second.outcomes(plan) == ["ok"]
    for task in (
        "Install the fetch tool",
        "Install pigz for faster unpacking",
        "Point the current links at the verified release, prune old ones and record the local fact",
    ):
        assert second.outcomes(task) == ["skipping"], (task, second.tail())


def test_a_settled_looking_host_with_a_moved_link_or_stale_fact_is_repaired(
    clean_target: BootedTarget, server: ArtifactServer, artifacts_dir: Path, tmp_path: Path
) -> None:
    # GIVEN an installed release whose current link was moved by hand and whose fact was emptied
    catalogue = catalogue_for(tmp_path, server, artifacts_dir, versions=(NEW,), current=NEW)
    run(clean_target, tmp_path, catalogue).assert_ok()
    t = clean_target
    t.exec("ln", "-sfn", "elsewhere", f"{ROOT}/refdata/current")
    t.exec("sh", "-c", "echo '{}' > /etc/ansible/facts.d/pcgr_refdata.fact")
    served = sum(server.bytes_served.values())

    # WHEN the role runs again
    again = run(t, tmp_path, catalogue).assert_ok()

    # THEN nothing is downloaded, but the link and the fact are put right, and reported as changed
    assert sum(server.bytes_served.values()) == served
    assert again.outcomes(
        "Point the current links at the verified release, prune old ones and record the local fact"
    ) == ["changed"]
    assert readlink(t, f"{ROOT}/refdata/current") == "20260620"
    assert fact(t)["bundle_version"] == "20260620"
    assert fact(t)["artifacts"]["pcgr_ref_data.20260620.grch38.tgz"]["verified"] == "catalogue"
    # AND the run after that is settled again
    run(t, tmp_path, catalogue).assert_idempotent()


def test_checksum_mismatch_fails_clearly_and_leaves_current_alone(
    clean_target: BootedTarget, server: ArtifactServer, artifacts_dir: Path, tmp_path: Path
) -> None:
    # GIVEN 2.2.5 installed and active
    run(
        clean_target, tmp_path, catalogue_for(tmp_path, server, artifacts_dir, versions=(OLD,), current=OLD)
    ).assert_ok()
    # AND a catalogue for 2.3.2 whose bundle sha256 is wrong
    bad = "0" * 64
    catalogue = catalogue_for(
        tmp_path,
        server,
        artifacts_dir,
        versions=(OLD, NEW),
        current=NEW,
        sha_override={"pcgr_ref_data.20260620.grch38.tgz": bad},
    )

    # WHEN the role runs
    recap = run(clean_target, tmp_path, catalogue)

    # THEN it fails naming the file and both sums, and current still points at the old bundle
    assert recap.rc != 0
    assert said(recap, "sha256 mismatch", bad), recap.tail()
    assert readlink(clean_target, f"{ROOT}/refdata/current") == "20250314"
    assert clean_target.exec("test", "-e", f"{ROOT}/refdata/20260620/grch38", check=False).returncode != 0


def test_interrupted_download_resumes_without_refetching(
    clean_target: BootedTarget, server: ArtifactServer, artifacts_dir: Path, tmp_path: Path
) -> None:
    # GIVEN a server that drops the bundle's connection after 300 KiB
    catalogue = catalogue_for(tmp_path, server, artifacts_dir, versions=(NEW,), current=NEW)
    name = "pcgr_ref_data.20260620.grch38.tgz"
    size = (artifacts_dir / name).stat().st_size
    server.drop_after[name] = 300 * 1024

    # WHEN the role runs
    run(clean_target, tmp_path, catalogue).assert_ok()

    # THEN the second request asked for the rest only, and the bytes re-fetched are measured
    ranges = [r for n, r in server.stats.requests if n == name]
    assert ranges[0] == "" and ranges[1].startswith("bytes=")
    refetched = server.bytes_served[name] - size
    print(f"bundle {size} bytes, served {server.bytes_served[name]}, re-fetched {refetched}")
    assert 0 <= refetched < 64 * 1024
    assert (
        clean_target.exec(
            "cat", f"{ROOT}/refdata/current/grch38/data/grch38/.PCGR_BUNDLE_VERSION"
        ).stdout.strip()
        == "20260620"
    )


def test_upgrade_moves_current_and_prunes_to_the_configured_count(
    clean_target: BootedTarget, server: ArtifactServer, artifacts_dir: Path, tmp_path: Path
) -> None:
    # GIVEN 2.2.5 installed
    run(
        clean_target, tmp_path, catalogue_for(tmp_path, server, artifacts_dir, versions=(OLD,), current=OLD)
    ).assert_ok()
    # WHEN the catalogue moves to 2.3.2 and the role runs keeping one release
    recap = run(
        clean_target,
        tmp_path,
        catalogue_for(tmp_path, server, artifacts_dir, versions=(OLD, NEW), current=NEW),
        pcgr_refdata_keep=1,
    ).assert_ok()

    # THEN current moved to the new bundle and cache, and the old ones are gone
    assert recap.changed > 0
    t = clean_target
    assert readlink(t, f"{ROOT}/refdata/current") == "20260620"
    assert readlink(t, f"{ROOT}/vep/current") == "115"
    assert sorted(t.exec("ls", f"{ROOT}/refdata").stdout.split()) == ["20260620", "current"]
    assert sorted(t.exec("ls", f"{ROOT}/vep").stdout.split()) == ["115", "current"]
    assert fact(t)["release"] == NEW


def test_too_little_disk_refuses_with_the_numbers(
    clean_target: BootedTarget, server: ArtifactServer, artifacts_dir: Path, tmp_path: Path
) -> None:
    # GIVEN the real catalogue sizes (7.5 GB bundle + 26 GB cache) and a factor no disk here meets
    catalogue = catalogue_for(tmp_path, server, artifacts_dir, versions=(NEW,), current=NEW)

    # WHEN the role runs with a space factor of 10 million
    recap = run(clean_target, tmp_path, catalogue, pcgr_refdata_space_factor=10_000_000)

    # THEN it refuses before downloading, saying how much it needs and has
    assert recap.rc != 0
    assert said(recap, "Not enough free space", "need", "bytes", "have"), recap.tail()
    assert sum(server.bytes_served.values()) == 0


def test_bundle_with_the_wrong_version_file_is_refused(
    clean_target: BootedTarget, server: ArtifactServer, tmp_path: Path
) -> None:
    # GIVEN a server whose 2.3.2 bundle says it is 20250314 inside
    d = tmp_path / "wrong"
    d.mkdir()
    release = load_catalogue().release(NEW)
    build_artifacts(d, release)
    write_bundle(
        d / release.bundle.assemblies["grch38"].filename, "20260620", "grch38", version_in_file="20250314"
    )
    with ArtifactServer(d) as other:
        catalogue = make_test_catalogue(tmp_path / "c.yml", other.base_url, d, versions=(NEW,), current=NEW)
        recap = run(clean_target, tmp_path, catalogue)
    assert recap.rc != 0 and said(recap, ".PCGR_BUNDLE_VERSION says '20250314'"), recap.tail()
    assert readlink(clean_target, f"{ROOT}/refdata/current") == ""


def test_unknown_checksum_is_recorded_then_enforced_and_strict_refuses_it(
    clean_target: BootedTarget, server: ArtifactServer, artifacts_dir: Path, tmp_path: Path
) -> None:
    # GIVEN a catalogue with no checksums (upstream's situation)
    catalogue = catalogue_for(
        tmp_path, server, artifacts_dir, versions=(NEW,), current=NEW, known_checksums=False
    )

    # WHEN strict mode is on, THEN the role refuses before downloading
    strict = run(clean_target, tmp_path, catalogue, pcgr_refdata_strict_checksums=True)
    assert strict.rc != 0 and said(strict, "pcgr_refdata_strict_checksums is on"), strict.tail()
    assert sum(server.bytes_served.values()) == 0

    # WHEN it runs normally, THEN the sha256 of the first download is recorded in the fact
    run(clean_target, tmp_path, catalogue).assert_ok()
    name = "pcgr_ref_data.20260620.grch38.tgz"
    recorded = fact(clean_target)["artifacts"][name]
    assert recorded["verified"] == "first-download" and len(recorded["sha256"]) == 64

    # AND a later re-download of a different file under that name is refused
    clean_target.exec("rm", "-rf", f"{ROOT}/refdata/20260620")
    original = (artifacts_dir / name).read_bytes()
    try:
        write_bundle(artifacts_dir / name, "20260620", "grch38", payload=1000)
        again = run(clean_target, tmp_path, catalogue)
    finally:
        (artifacts_dir / name).write_bytes(original)
    assert again.rc != 0 and said(again, "sha256 mismatch", recorded["sha256"]), again.tail()


def test_s3_source_downloads_from_the_mirror(
    clean_target: BootedTarget, aws: LocalAWS, server: ArtifactServer, artifacts_dir: Path, tmp_path: Path
) -> None:
    # GIVEN a mirror bucket holding the release's files under refdata/
    catalogue = catalogue_for(tmp_path, server, artifacts_dir, versions=(NEW,), current=NEW)
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="capillary-mirror", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    for name in ("pcgr_ref_data.20260620.grch38.tgz", "homo_sapiens_vep_115_GRCh38.tar.gz"):
        s3.upload_file(str(artifacts_dir / name), "capillary-mirror", f"refdata/{name}")

    # WHEN the role runs with the s3 source
    inventory = clean_target.inventory(tmp_path / "inventory.yml")
    recap = run_playbook(
        PLAYBOOK,
        inventory=inventory,
        env={**PODMAN_ENV, **aws.env},
        extra_vars={
            "pcgr_refdata_catalogue": str(catalogue),
            "pcgr_refdata_source": "s3",
            "pcgr_refdata_s3_bucket": "capillary-mirror",
            "pcgr_refdata_s3_endpoint_url": aws.endpoint_url,
            "pcgr_refdata_manage_volume": False,
        },
    )

    # THEN it installed from the mirror, not from the upstream server
    recap.assert_ok()
    assert sum(server.bytes_served.values()) == 0
    assert readlink(clean_target, f"{ROOT}/refdata/current") == "20260620"
    assert fact(clean_target)["source"] == "s3"


def test_path_source_uses_a_mounted_volume_and_fails_when_it_lacks_the_release(
    clean_target: BootedTarget, server: ArtifactServer, artifacts_dir: Path, tmp_path: Path
) -> None:
    # GIVEN a volume that already holds 2.3.2 (installed at /srv/capillary, as a snapshot would)
    catalogue = catalogue_for(tmp_path, server, artifacts_dir, versions=(OLD, NEW), current=NEW)
    run(clean_target, tmp_path, catalogue).assert_ok()
    served = sum(server.bytes_served.values())

    # WHEN the role runs with the path source on that volume
    recap = run(clean_target, tmp_path, catalogue, pcgr_refdata_source="path", pcgr_refdata_path=ROOT)

    # THEN it downloads nothing and records the volume's release
    recap.assert_ok()
    assert sum(server.bytes_served.values()) == served
    assert fact(clean_target)["source"] == "path" and fact(clean_target)["release"] == NEW

    # AND for a release the volume does not hold, it fails naming what is missing
    missing = run(
        clean_target,
        tmp_path,
        catalogue,
        pcgr_refdata_source="path",
        pcgr_refdata_path=ROOT,
        pcgr_refdata_release=OLD,
    )
    assert missing.rc != 0 and said(missing, "lacks", "pcgr_ref_data.20250314.grch38.tgz"), missing.tail()
