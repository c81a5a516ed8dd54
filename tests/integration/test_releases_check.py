"""`capillary releases check` against a local HTTP server serving GitHub's releases API shape."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from capillary.release.catalogue import load_catalogue, parse_catalogue

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data/releases"


class _Releases(BaseHTTPRequestHandler):
    """Two pages, linked the way GitHub links them; /empty serves a catalogue-equal list."""

    pages: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        body = self.pages.get(self.path.split("?")[0] + ("?page=2" if "page=2" in self.path else ""))
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.path == "/repos/sigven/pcgr/releases":
            self.send_header("Link", f'<{base}/repos/sigven/pcgr/releases?page=2>; rel="next"')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def releases_url() -> Iterator[str]:
    _Releases.pages = {
        "/repos/sigven/pcgr/releases": (DATA / "pcgr-page1.json").read_bytes(),
        "/repos/sigven/pcgr/releases?page=2": (DATA / "pcgr-page2.json").read_bytes(),
        "/known": json.dumps([{"tag_name": "v2.3.2"}, {"tag_name": "v2.2.5"}]).encode(),
        "/broken": b"<html>rate limited</html>",
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Releases)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _capillary(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "capillary", "releases", "check", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_new_upstream_releases_are_reported_with_entries(releases_url: str) -> None:
    # GIVEN upstream has 2.4.0 and 2.3.3 (newer than the catalogue), an rc, a draft, 2.2.4 (older)
    # WHEN the watcher checks, following the second page
    proc = _capillary("--url", f"{releases_url}/repos/sigven/pcgr/releases", "--json")

    # THEN it exits 10 and reports exactly the two new releases, newest first
    assert proc.returncode == 10, proc.stderr
    report = json.loads(proc.stdout)
    assert [r["version"] for r in report["new"]] == ["2.4.0", "2.3.3"]
    assert [r["version"] for r in report["older_untracked"]] == ["2.2.4"]
    assert report["known"] == ["2.3.2", "2.2.5", "1.4.1"]
    assert {"v2.4.0-rc1", "v3.0.0", "nightly"} <= set(report["skipped_tags"])
    # and each entry is YAML shaped like the catalogue's, with the version substituted
    entry = yaml.safe_load(report["entries"]["2.4.0"])[0]
    assert entry["version"] == "2.4.0" and entry["confirmed"] is False and entry["current"] is False
    assert all("v2.4.0" in url for url in entry["install"]["conda"]["lock_files"].values())
    assert entry["install"]["container"]["image"].endswith(":2.4.0")
    assert entry["bundle"]["version"] == "TODO"


def test_filled_in_entry_parses_as_a_catalogue_release(releases_url: str) -> None:
    # GIVEN the printed entry for 2.4.0 with its TODOs filled in
    proc = _capillary("--url", f"{releases_url}/repos/sigven/pcgr/releases", "--json")
    text = json.loads(proc.stdout)["entries"]["2.4.0"]
    entry = yaml.safe_load(text)[0]
    entry["bundle"]["version"] = "20261101"
    for artifact in entry["bundle"]["assemblies"].values():
        artifact["url"] = "https://example.org/pcgr_ref_data.20261101.grch38.tgz"

    # WHEN it is added to a copy of the catalogue
    catalogue = load_catalogue()
    raw = yaml.safe_load(catalogue.path.read_text())
    raw["releases"].append(entry)
    extended = parse_catalogue(raw, catalogue.path)

    # THEN the catalogue knows 2.4.0 with the template's volume sizes
    assert extended.release("2.4.0").data_volume_gb == catalogue.current.data_volume_gb


def test_human_output_prints_the_entry_to_fill_in(releases_url: str) -> None:
    proc = _capillary("--url", f"{releases_url}/repos/sigven/pcgr/releases")
    assert proc.returncode == 10
    assert "2 new PCGR release(s) upstream" in proc.stdout
    assert '  - version: "2.4.0"' in proc.stdout


def test_up_to_date_catalogue_exits_zero(releases_url: str) -> None:
    proc = _capillary("--url", f"{releases_url}/known")
    assert proc.returncode == 0, proc.stderr
    assert "catalogue up to date" in proc.stdout


@pytest.mark.parametrize(("path", "reason"), [("/broken", "not JSON"), ("/missing", "HTTP 404")])
def test_unreadable_upstream_is_a_clear_error(releases_url: str, path: str, reason: str) -> None:
    proc = _capillary("--url", f"{releases_url}{path}")
    assert proc.returncode == 1
    assert reason in proc.stderr and path in proc.stderr
