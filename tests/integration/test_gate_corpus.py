"""The image gate against the baked worker image: every kind of artifact, one at a time, is named.

GIVEN a container of `localhost/capillary-worker:<release>` (the tag read when the module starts)
whose reference trees carry the manifest capillary-refdata now writes, the gate runs with the
command line the image_hygiene role renders for it (tests/integration/playbooks/gate_argv.yml,
trusting the demo bake's catalogue), once per planted kind in a fresh container. The audit
playbook itself runs on everything at once, and the full role (cleanup, then gate) shows what the
cleanup removes and that patient data it removed still fails the bake.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from capillary.local.playbook import REPO, run_playbook
from capillary.local.podman import PODMAN_ENV, podman
from tests.support import gate_corpus as corpus
from tests.support.gate_corpus import Container, add_manifests
from tests.support.podman_targets import BASE_IMAGE, wait_system_running

pytestmark = [pytest.mark.integration, pytest.mark.containers]

GATE = REPO / "roles/image_hygiene/files/hygiene_gate.py"
AUDIT = "playbooks/audit_image.yml"
ARGV_PLAYBOOK = "tests/integration/playbooks/gate_argv.yml"
PREFIX = "gate-corpus"
CONNECTION = "ansible_connection=containers.podman.podman ansible_python_interpreter=/usr/bin/python3"


@pytest.fixture(scope="module")
def image() -> str:
    """The baked image's id, read once: a re-bake during the run does not swap it under the tests."""
    return corpus.baked_image_id()


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return corpus.demo_catalogue(tmp_path_factory.mktemp("gate-artifacts"))


def run_gate(container: str, argv: list[str]) -> dict[str, Any]:
    out = podman("exec", "-i", container, *argv, input=GATE.read_text(), timeout=900)
    report: dict[str, Any] = json.loads(out)
    return report


@pytest.fixture(scope="module")
def gate_argv(image: str, catalogue: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The gate's command line as the image_hygiene role renders it for a container of the image."""
    d = tmp_path_factory.mktemp("gate-argv")
    with Container(image) as c:
        (d / "inventory.ini").write_text(f"{c.name} {CONNECTION}\n")
        run_playbook(
            ARGV_PLAYBOOK,
            inventory=d / "inventory.ini",
            extra_vars={
                "gate_argv_out": str(d / "argv.json"),
                "image_hygiene_gate_reference_catalogue": str(catalogue),
            },
            env=PODMAN_ENV,
        ).assert_ok()
    argv: list[str] = json.loads((d / "argv.json").read_text())
    return argv


@pytest.fixture(scope="module")
def consumer_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A journal directory in which capillary-consumer ran: from a booted container's boot."""
    d = tmp_path_factory.mktemp("journal")
    name = f"{PREFIX}-journal-{uuid.uuid4().hex[:8]}"
    podman("run", "-d", "--name", name, "--systemd=always", "--tmpfs", "/tmp", BASE_IMAGE, "/sbin/init")
    try:
        wait_system_running(name)
        podman("exec", name, "systemd-run", "--quiet", "--wait", "--unit", "capillary-consumer", "true")
        podman("exec", name, "journalctl", "--sync")
        machine_id = podman("exec", name, "cat", "/etc/machine-id").strip()
        podman("cp", f"{name}:/var/log/journal/{machine_id}", str(d / machine_id))
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)
    return d / machine_id


def _plant_journal(journal_dir: Path) -> Any:
    def put(container: str) -> None:
        podman("exec", container, "mkdir", "-p", "/var/log/journal")
        podman("cp", str(journal_dir), f"{container}:/var/log/journal/{journal_dir.name}")

    return put


def test_the_clean_image_passes_unbooted(image: str, catalogue: Path, gate_argv: list[str]) -> None:
    with Container(image) as c:
        # GIVEN the image as it ships, its reference trees with their manifests
        add_manifests(c.name, catalogue)

        # WHEN the gate scans it
        started = time.monotonic()
        report = run_gate(c.name, gate_argv)
        wall = time.monotonic() - started

    # THEN it is clean, the reference trees are verified, and the scan is bounded in time
    assert report["clean"], report["findings"]
    print(
        f"gate: {report['scanned_files']} files, {report['archives']} archives, "
        f"{report['seconds']} s ({wall:.1f} s wall)"
    )
    assert {r["artifact"] for r in report["references"]} == {
        "pcgr_ref_data.20260620.grch38.tgz",
        "homo_sapiens_vep_115_GRCh38.tar.gz",
    }
    assert all(r["matches_manifest"] and r["verified"] == "catalogue" for r in report["references"])
    assert any(a["path"] == corpus.CLINVAR and a["kind"] == "vcf" for a in report["allowed"]), report[
        "allowed"
    ]
    # (bench/bench_gate.py measures it against its 30 s target on a quiet machine; here only a
    # pathological slowdown fails, whatever else shares the machine)
    assert report["seconds"] < 180


def test_the_clean_image_passes_booted(image: str, catalogue: Path, gate_argv: list[str]) -> None:
    name = f"{PREFIX}-booted-{uuid.uuid4().hex[:8]}"
    # GIVEN the image booted with systemd as PID 1 and its consumer masked (it must never start
    # on a host that is not a worker), its machine-id reset as an image ships it
    podman(
        "run",
        "-d",
        "--name",
        name,
        "--systemd=always",
        "--tmpfs",
        "/tmp",
        "--volume",
        "/dev/null:/etc/systemd/system/capillary-consumer.service:ro",
        image,
        "/sbin/init",
    )
    try:
        wait_system_running(name)
        podman("exec", name, "sh", "-c", ": > /etc/machine-id")
        add_manifests(name, catalogue)

        # WHEN the gate scans it
        report = run_gate(name, gate_argv)
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)

    # THEN it is clean: this boot's own journal is not another machine's, and holds no consumer
    assert report["clean"], report["findings"]
    assert report["journal"] == "clean"


@pytest.mark.parametrize("plant", corpus.ALL_KINDS, ids=[p.name for p in corpus.ALL_KINDS])
def test_each_planted_kind_fails_the_gate_by_name(
    plant: corpus.Plant, image: str, catalogue: Path, gate_argv: list[str], consumer_journal: Path
) -> None:
    with Container(image) as c:
        # GIVEN a container of the clean image with one kind of artifact planted
        add_manifests(c.name, catalogue)
        corpus.plant(c.name, plant, journal=_plant_journal(consumer_journal))

        # WHEN the gate scans it
        report = run_gate(c.name, gate_argv)

    # THEN it fails, naming each planted path with its kind
    assert not report["clean"], f"{plant.name}: the gate found nothing"
    for path, kind in plant.expect:
        assert corpus.matches(report["findings"], path, kind), (
            f"{plant.name}: {path} ({kind}) not reported; findings: {report['findings']}"
        )


def test_the_audit_playbook_names_every_kind_at_once(
    image: str, catalogue: Path, consumer_journal: Path, tmp_path: Path
) -> None:
    with Container(image) as c:
        # GIVEN every kind of the corpus planted in one container (the reference-tree kinds
        # touch the same tree, so the one replacing ClinVar goes last)
        add_manifests(c.name, catalogue)
        for p in corpus.ALL_KINDS:
            corpus.plant(c.name, p, journal=_plant_journal(consumer_journal))
        inventory = tmp_path / "inventory.ini"
        inventory.write_text(f"{c.name} {CONNECTION}\n")

        # WHEN playbooks/audit_image.yml audits it
        recap = run_playbook(
            AUDIT,
            inventory=inventory,
            extra_vars={"image_hygiene_gate_reference_catalogue": str(catalogue)},
            env=PODMAN_ENV,
            timeout=1800,
        )

    # THEN it fails, and its message names every planted path with its kind
    assert recap.rc != 0 and recap.failed == 1, recap.tail()
    out = recap.stdout
    for p in corpus.ALL_KINDS:
        for path, kind in p.expect:
            shown = path.rstrip("*")
            assert shown in out and f"[{kind}]" in out, (
                f"{p.name}: {path} ({kind}) not in the audit's failure"
            )


def test_the_cleanup_removes_what_it_safely_can_and_removed_patient_data_still_fails(
    image: str, catalogue: Path, consumer_journal: Path, tmp_path: Path
) -> None:
    removable = [p for p in corpus.ISSUE_KINDS if p.name in _CLEANED]
    with Container(image) as c:
        # GIVEN the kinds the old cleanup left behind, planted in one container
        add_manifests(c.name, catalogue)
        for p in removable:
            corpus.plant(c.name, p, journal=_plant_journal(consumer_journal))
        inventory = tmp_path / "inventory.ini"
        inventory.write_text(f"{c.name} {CONNECTION}\n")

        # WHEN the whole role runs (cleanup, then the gate) through the provisioning's last step
        recap = run_playbook(
            "tests/integration/playbooks/image_hygiene.yml",
            inventory=inventory,
            extra_vars={"image_hygiene_gate_reference_catalogue": str(catalogue)},
            env=PODMAN_ENV,
            timeout=1800,
        )
        left = c.sh(
            "ls -d /mnt/upload/run42.tgz /srv/reads/tumor_R2.fq /var/backups/deploy_key "
            "/var/lib/cloud/instances/* "
            "/etc/pip.conf /root/.condarc /core /var/lib/systemd/coredump/* 2>/dev/null; true"
        )
        report = run_gate(c.name, _gate_only_argv(c.name, catalogue, tmp_path))

    # THEN nothing the gate fails on that could be removed is left
    assert left.strip() == "", f"the cleanup left: {left}"
    assert report["clean"], report["findings"]
    # AND the bake still fails, naming the patient data the cleanup had to remove
    assert recap.rc != 0, recap.tail()
    for path in ("/srv/reads/tumor_R2.fq", "/mnt/upload/run42.tgz"):
        assert f"{path}: " in recap.stdout and "removed by the cleanup" in recap.stdout, recap.tail(60)


_CLEANED = (
    "fq",
    "sample tarball with another name",
    "private key outside the scanned trees",
    "cloud-init instance data",
    "token in pip.conf",
    "token in .condarc",
    "systemd-coredump",
    "/core",
)


def _gate_only_argv(container: str, catalogue: Path, tmp_path: Path) -> list[str]:
    (tmp_path / "argv-inventory.ini").write_text(f"{container} {CONNECTION}\n")
    run_playbook(
        ARGV_PLAYBOOK,
        inventory=tmp_path / "argv-inventory.ini",
        extra_vars={
            "gate_argv_out": str(tmp_path / "argv.json"),
            "image_hygiene_gate_reference_catalogue": str(catalogue),
        },
        env=PODMAN_ENV,
    ).assert_ok()
    argv: list[str] = json.loads((tmp_path / "argv.json").read_text())
    return argv
