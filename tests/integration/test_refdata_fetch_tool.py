"""The fetch tool the pcgr_refdata role ships (roles/pcgr_refdata/files/capillary-refdata), run directly.

Fast checks of the resume arithmetic against the local HTTP server; the role-level behaviour
is in test_refdata.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from capillary.local.artifacts import ArtifactServer, build_artifacts, sha256_of, write_bundle
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
        # THEN it asked for the rest with Range and received each byte once, into the same tar
        # stream: no part file on disk at any point
        assert result.returncode == 0, result.stderr
        assert [r for _, r in server.stats.requests] == ["", "bytes=700000-"]
        assert server.bytes_served[art["filename"]] == path.stat().st_size
        assert (json.loads(result.stdout)["resumes"], json.loads(result.stdout)["restarts"]) == (1, 0)
        assert not Path(art["downloads"]).exists()
        assert Path(art["dest"], "data/grch38/.PCGR_BUNDLE_VERSION").read_text().strip() == "20260620"
    finally:
        server.stop()


def test_a_killed_run_leaves_nothing_behind_and_the_next_run_starts_over(setup) -> None:
    server, art, path = setup
    try:
        # GIVEN a first run that gave up after the connection dropped at 1 MB (no retries)
        server.drop_after[art["filename"]] = 1_000_000
        first = fetch(art, "--retries", "0")
        assert first.returncode == 4 and "gave up after 1 attempts at byte 1000000" in first.stdout
        # THEN nothing of it is on disk: no part file (the bytes only ever went into tar), no staging
        assert not Path(art["downloads"]).exists()
        assert not Path(art["dest"]).exists()
        assert not list(Path(art["dest"]).parent.glob("*.partial"))
        # WHEN a new run starts
        second = fetch(art)
        # THEN it downloads the whole file again, once, and installs it
        assert second.returncode == 0, second.stderr
        out = json.loads(second.stdout)
        assert out["network_bytes"] == path.stat().st_size
        assert (out["resumes"], out["restarts"]) == (0, 0)
        assert server.bytes_served[art["filename"]] == 1_000_000 + path.stat().st_size
        assert Path(art["dest"], "data/grch38/.PCGR_BUNDLE_VERSION").read_text().strip() == "20260620"
    finally:
        server.stop()


def test_a_download_only_fetch_keeps_its_part_file_and_the_next_run_resumes_from_it(setup) -> None:
    server, art, path = setup
    spec = {**art, "unpack": False, "dest": str(Path(art["downloads"]).parent / "mirror" / art["filename"])}
    try:
        # GIVEN a download-only run (the mirror playbook's) that gave up at 1 MB
        server.drop_after[art["filename"]] = 1_000_000
        first = fetch(spec, "--retries", "0")
        assert first.returncode == 4
        part = Path(art["part"])
        assert part.stat().st_size == 1_000_000
        # WHEN a new run starts
        second = fetch(spec)
        # THEN it re-hashes the part file from disk and fetches only the remainder
        assert second.returncode == 0, second.stderr
        out = json.loads(second.stdout)
        assert out["resumed_from"] == 1_000_000
        assert out["network_bytes"] == path.stat().st_size - 1_000_000
        assert server.bytes_served[art["filename"]] == path.stat().st_size
        assert Path(spec["dest"]).read_bytes() == path.read_bytes() and not part.exists()
    finally:
        server.stop()


class OneFile:
    """A server for one file with what ArtifactServer does not do: ignore Range, or change the file
    between two requests and answer If-Range as RFC 9110 says (the whole new file when the
    validator no longer matches). The first response stops after `drop_at` bytes."""

    def __init__(self, versions: list[bytes], *, honour_range: bool, drop_at: int) -> None:
        self.versions = versions
        self.requests: list[dict[str, str]] = []
        box = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                n = len(box.requests)
                box.requests.append({k: self.headers.get(k, "") for k in ("Range", "If-Range")})
                body = box.versions[min(n, len(box.versions) - 1)]
                etag = f'"v{min(n, len(box.versions) - 1)}"'
                start = 0
                rng = self.headers.get("Range", "")
                if honour_range and rng and self.headers.get("If-Range", etag) == etag:
                    start = int(rng.removeprefix("bytes=").rstrip("-"))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if n == 0:
                    self.wfile.write(body[:drop_at])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/bundle.tgz"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.mark.parametrize("case", ["range ignored", "file changed"])
def test_a_resume_the_server_cannot_serve_starts_the_stream_over(setup, tmp_path: Path, case: str) -> None:
    server, art, path = setup
    server.stop()
    original = path.read_bytes()
    # GIVEN a server that drops the first transfer at 700 000 bytes and then either ignores Range,
    # or serves a different file (a re-published bundle, same name) whose ETag no longer matches
    if case == "range ignored":
        versions, honour = [original], False
    else:
        other = tmp_path / "other.tgz"
        write_bundle(other, "20260620", "grch38", payload=3 * 1024 * 1024)
        versions, honour = [original, other.read_bytes()], True
    one = OneFile(versions, honour_range=honour, drop_at=700_000)
    try:
        # WHEN the tool fetches, expecting the sha256 of the file it will end up with
        result = fetch({**art, "url": one.url, "sha256": hashlib.sha256(versions[-1]).hexdigest()})
        # THEN it asked to resume (naming the validator of what it has), got the whole file
        # instead, and unpacked that from byte zero into a fresh tar: verified, installed
        assert result.returncode == 0, result.stderr
        assert one.requests[1] == {"Range": "bytes=700000-", "If-Range": '"v0"'}
        out = json.loads(result.stdout)
        assert (out["resumes"], out["restarts"]) == (0, 1)
        assert out["bytes"] == len(versions[-1]) and out["sha256"] == hashlib.sha256(versions[-1]).hexdigest()
        assert Path(art["dest"], "data/grch38/.PCGR_BUNDLE_VERSION").read_text().strip() == "20260620"
    finally:
        one.stop()


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
