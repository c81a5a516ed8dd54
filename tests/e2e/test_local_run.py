"""The whole flow on this machine, as `make demo` runs it, without the progress display.

Local AWS endpoint, intake.yml, the local bake (reused when this commit's image exists), the
example samples submitted, up.yml on the local platform, workers powering themselves off, down.yml.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from capillary.local.run import LocalRun, Options

pytestmark = [pytest.mark.e2e, pytest.mark.containers]


def test_samples_become_reports_and_the_bad_one_ends_in_the_dead_letter_queue(tmp_path: Path) -> None:
    # GIVEN a fresh local deployment and the shipped examples (two good samples, one broken)
    run = LocalRun(
        Options(deployment="e2e", max_workers=2, idle_minutes=0.3, out_dir=tmp_path / "out", progress=False)
    )

    # WHEN the whole flow runs
    result = run.run()

    # THEN each good sample has an output holding its summary report and run.json, and only its own files
    states = {s.name: s.state for s in result.samples}
    expected = {"COLO829-somatic": "uploaded", "HG002-normal": "uploaded", "broken-somatic": "dead-lettered"}
    assert states == expected
    for sample in result.samples:
        if sample.expect != "output":
            continue
        with tarfile.open(result.downloads[sample.name]) as archive:
            names = archive.getnames()
            member = archive.extractfile(next(n for n in names if n.endswith("run.json")))
            run_json = json.loads(member.read() if member else b"{}")
        stem = Path(sample.key).name.removesuffix(".tar.gz")
        assert all(n.startswith(stem) for n in names), names
        assert {"summary.html", "summary.tsv"} <= {Path(n).name for n in names}
        assert run_json["versions"]["engine"] == "summary" and run_json["input"]["key"] == sample.key
        hashes = [run_json["input"]["sha256"], *run_json["outputs_sha256"].values()]
        assert all(len(h) == 64 for h in hashes), hashes

    # and the bad sample has an error report saying it went to the dead-letter queue, and is there
    report = result.error_reports["broken-somatic"]
    assert report["dead_letter_queue"] is True and "bgzip" in report["reason"]
    broken = [s.key for s in result.samples if s.name == "broken-somatic"]
    assert [m["key"] for m in result.dead_letters] == broken

    # and the webhook heard about every sample and every outcome, with download links
    events = [(n["event"], n["key"]) for n in result.notifications]
    for sample in result.samples:
        assert ("sample.received", sample.key) in events
    completed = [n for n in result.notifications if n["event"] == "sample.completed"]
    assert len(completed) == 2 and all(n["download_url"].startswith("http://127.0.0.1") for n in completed)

    # and `capillary status` for the deployment worked while the workers ran
    assert "queue" in result.status_output and "in flight" in result.status_output, result.status_output

    # and the workers stopped by themselves, and nothing is left behind
    assert result.workers_launched, "up.yml launched no worker"
    assert result.workers_left == []
    assert run.workers() == []
