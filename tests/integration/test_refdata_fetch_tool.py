"""The fetch tool the pcgr_refdata role ships (roles/pcgr_refdata/files/capillary-refdata), run directly.

Fast checks of the resume arithmetic against the local HTTP server; the role-level behaviour
is in test_refdata.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from capillary.local.artifacts import ArtifactServer, build_artifacts, sha256_of
from capillary.release.catalogue import load_catalogue
from capillary.release.refdata import artifacts_for

pytestmark = pytest.mark.integration

TOOL = Path(__file__).resolve().parents[2] / "roles" / "pcgr_refdata" / "files" / "capillary-refdata"


def fetch(
    art: dict[str, Any], *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), "fetch", "--delay", "0", *args, "--spec", json.dumps(art)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


@pytest.fixture
def setup(tmp_path: Path) -> tuple[ArtifactServer, dict[str, Any], Path]:
    release = load_catalogue().current
    files = build_artifacts(tmp_path / "up", release, bundle_payload=2 * 1024 * 1024)
    server = ArtifactServer(tmp_path / "up").start()
    bundle = artifacts_for(release, root=str(tmp_path / "srv"), base_url=server.base_url)[0]
    bundle["sha256"] = sha256_of(files[bundle["filename"]])
    return server, bundle, files[bundle["filename"]]


def test_a_dropped_connection_resumes_in_the_same_run_with_nothing_refetched(setup) -> None:
    server, art, path = setup
    try:
        # GIVEN a server that drops the first transfer after 700 000 bytes
        server.drop_after[art["filename"]] = 700_000
        # WHEN the tool fetches
        result = fetch(art)
        # THEN it asked for the rest with Range and received each byte once
        assert result.returncode == 0, result.stderr
        assert [r for _, r in server.stats.requests] == ["", "bytes=700000-"]
        assert server.bytes_served[art["filename"]] == path.stat().st_size
        assert Path(art["dest"], "data/grch38/.PCGR_BUNDLE_VERSION").read_text().strip() == "20260620"
    finally:
        server.stop()


def test_a_killed_run_leaves_a_part_file_the_next_run_replays_then_resumes(setup) -> None:
    server, art, path = setup
    try:
        # GIVEN a first run that gave up after the connection dropped at 1 MB (no retries)
        server.drop_after[art["filename"]] = 1_000_000
        first = fetch(art, "--retries", "0")
        assert first.returncode == 4 and "gave up after 1 attempts at byte 1000000" in first.stdout
        part = Path(art["downloads"], art["filename"] + ".part")
        assert part.stat().st_size == 1_000_000
        assert not Path(art["dest"]).exists()
        # WHEN a new run starts
        second = fetch(art)
        # THEN it replays the part file locally and fetches only the remainder
        assert second.returncode == 0, second.stderr
        out = json.loads(second.stdout)
        assert out["resumed_from"] == 1_000_000
        assert out["network_bytes"] == path.stat().st_size - 1_000_000
        assert server.bytes_served[art["filename"]] == path.stat().st_size
        assert not part.exists()
    finally:
        server.stop()


def test_a_corrupt_download_is_not_installed_and_not_resumed(setup) -> None:
    server, art, _ = setup
    try:
        art["sha256"] = "e" * 64
        result = fetch(art)
        assert result.returncode == 3 and "sha256 mismatch" in result.stdout
        assert not Path(art["dest"]).exists()
        assert not list(Path(art["downloads"]).glob("*.part"))
        assert not list(Path(art["dest"]).parent.glob("*.partial"))
    finally:
        server.stop()


@pytest.mark.parametrize("use_pigz", [True, False])
def test_unpacks_with_pigz_when_present_and_allowed_and_with_gzip_otherwise(
    setup, tmp_path: Path, use_pigz: bool
) -> None:
    server, art, _ = setup
    try:
        # GIVEN a pigz on PATH that logs each call before handing over to the real one
        shim = tmp_path / "shim"
        shim.mkdir()
        log = tmp_path / "pigz.log"
        real = shutil.which("pigz")
        assert real, "pigz is installed by scripts/bootstrap-host.sh"
        (shim / "pigz").write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {real} "$@"\n')
        (shim / "pigz").chmod(0o755)
        env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"}

        # WHEN the tool fetches with pigz allowed, or turned off (pcgr_refdata_pigz: false)
        result = fetch({**art, "pigz": use_pigz}, env=env)

        # THEN the bundle is unpacked and verified either way, by pigz only when allowed
        assert result.returncode == 0, result.stderr
        assert Path(art["dest"], "data/grch38/.PCGR_BUNDLE_VERSION").read_text().strip() == "20260620"
        assert log.exists() is use_pigz
        if use_pigz:
            assert "-d" in log.read_text().split()
    finally:
        server.stop()
