"""SampleLog keeps one sample's log records, bounded, in the JSON log's shape, and nothing else."""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest

from capillary.logs import configure_logging
from capillary.worker.samplelog import SampleLog

log = logging.getLogger("capillary.worker.pipeline")


@pytest.fixture(autouse=True)
def _json_logs() -> None:
    configure_logging("INFO", stream=io.StringIO())


def test_only_the_records_of_its_message_are_kept() -> None:
    # GIVEN two samples being logged about, and a line with no sample at all
    with SampleLog.capture("m-1") as mine:
        log.info("downloaded", extra={"message_id": "m-1", "phase": "fetch", "sample": "b-abc123-somatic"})
        log.info("downloaded", extra={"message_id": "m-2", "phase": "fetch"})
        log.info("polling")
        log.warning("engine slow", extra={"message_id": "m-1", "phase": "engine"})
    # THEN only the first sample's records are kept, as the JSON log writes them
    lines = mine.lines()
    assert [(r["message"], r["phase"]) for r in lines] == [("downloaded", "fetch"), ("engine slow", "engine")]
    assert lines[0]["sample"] == "b-abc123-somatic" and lines[1]["level"] == "warning"
    assert {"time", "logger"} <= set(lines[0])


def test_what_is_not_a_context_key_never_reaches_the_sample_log() -> None:
    # GIVEN a record carrying VCF data in an extra field that is not one of the stable keys
    with SampleLog.capture("m-1") as mine:
        log.error(
            "bad record", extra={"message_id": "m-1", "vcf_line": "chr1\t12345\t.\tA\tG", "phase": "validate"}
        )
    # THEN it is dropped, as the JSON log drops it
    assert "chr1" not in json.dumps(mine.lines())


def test_it_keeps_the_head_and_the_tail_and_counts_what_it_left_out() -> None:
    with SampleLog.capture("m-1", head=2, tail=3) as mine:
        for i in range(10):
            log.info("step %d", i, extra={"message_id": "m-1"})
    lines = mine.lines()
    assert [r["message"] for r in lines] == [
        "step 0",
        "step 1",
        "[5 log records left out]",
        "step 7",
        "step 8",
        "step 9",
    ]
    assert mine.dropped == 5


def test_a_long_record_is_cut_to_fit_and_stays_json() -> None:
    with SampleLog.capture("m-1", max_chars=200) as mine:
        log.info("x" * 5000, extra={"message_id": "m-1", "phase": "engine"})
    [line] = mine.lines()
    assert line["message"].endswith("[... cut]") and line["phase"] == "engine"
    assert len(json.dumps(line)) <= 200


def test_it_detaches_when_the_sample_is_done() -> None:
    with SampleLog.capture("m-1") as mine:
        pass
    log.info("later", extra={"message_id": "m-1"})
    assert mine.lines() == []
    assert not [h for h in logging.getLogger("capillary").handlers if isinstance(h, SampleLog)]


def test_records_from_other_threads_of_the_same_message_are_kept() -> None:
    # The heartbeat thread extends the message's visibility while the engine runs.
    with SampleLog.capture("m-1") as mine:
        worker = threading.Thread(target=lambda: log.info("extended", extra={"message_id": "m-1"}))
        worker.start()
        worker.join()
    assert [r["message"] for r in mine.lines()] == ["extended"]


@pytest.mark.parametrize(("message_id", "bounds"), [("", {}), ("m", {"tail": 0}), ("m", {"max_chars": 10})])
def test_bad_bounds_are_refused(message_id: str, bounds: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="SampleLog"):
        SampleLog(message_id, **bounds)
