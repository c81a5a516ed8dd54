"""The release watcher's pure logic, and that it costs the worker nothing it does not install."""

from __future__ import annotations

import subprocess
import sys

import pytest

from capillary.release.catalogue import load_catalogue
from capillary.release.watcher import UpstreamError, compare, parse_releases, version_key


def test_tags_become_versions_and_the_rest_is_skipped() -> None:
    # GIVEN tags with and without a v, a prerelease, a draft and a non-version tag
    payload = [
        {"tag_name": "v9.1.0"},
        {"tag_name": "9.0.1"},
        {"tag_name": "v9.2.0-rc1", "prerelease": True},
        {"tag_name": "v9.3.0", "draft": True},
        {"tag_name": "latest"},
    ]
    # WHEN parsed
    releases, skipped = parse_releases(payload)
    # THEN versions come newest first and the others are listed as skipped
    assert [r.version for r in releases] == ["9.1.0", "9.0.1"]
    assert skipped == ["v9.2.0-rc1", "v9.3.0", "latest"]


def test_new_means_unknown_and_newer_than_the_catalogue() -> None:
    catalogue = load_catalogue()
    newest = max(catalogue.versions, key=version_key)
    major, minor, patch = version_key(newest)
    payload = [
        {"tag_name": f"v{major}.{minor}.{patch + 1}"},
        {"tag_name": "v0.0.1"},
        {"tag_name": f"v{newest}"},
    ]
    releases, skipped = parse_releases(payload)
    report = compare(releases, catalogue, skipped)
    assert [r.version for r in report.new] == [f"{major}.{minor}.{patch + 1}"]
    assert [r.version for r in report.older_untracked] == ["0.0.1"]
    assert not report.up_to_date


@pytest.mark.parametrize("payload", [{"message": "API rate limit exceeded"}, [{"name": "no tag"}]])
def test_malformed_upstream_is_an_error(payload: object) -> None:
    with pytest.raises(UpstreamError):
        parse_releases(payload)


def test_cli_builds_without_pyyaml() -> None:
    # The worker image installs the package without PyYAML (a controller dependency of the
    # catalogue); `capillary consume` builds the whole parser, so this command must not need it.
    code = "import sys; sys.modules['yaml'] = None; from capillary.cli import build_parser; build_parser()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
