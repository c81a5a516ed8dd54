"""Pure pieces of the consumer: what an error report may quote, and the summary engine's parsing."""

from __future__ import annotations

import time
from pathlib import Path

from capillary.contract.message import WorkMessage
from capillary.contract.samples import SampleKey
from capillary.worker.config import ConsumerConfig
from capillary.worker.engines.summary import parse_stats
from capillary.worker.item import WorkItem
from capillary.worker.outputs import log_tail
from capillary.worker.visibility import Heartbeat


def test_log_tail_never_quotes_vcf_content(tmp_path: Path) -> None:
    # GIVEN an engine log where a tool echoed VCF header and record lines among its messages
    log = tmp_path / "engine.log"
    log.write_text(
        "starting\n"
        "##fileformat=VCFv4.2\n"
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        "chr7\t140753336\t.\tA\tT\t50\tPASS\tDP=40\n"
        "ERROR: malformed record at line 12\n"
    )
    # WHEN the tail is taken for a report
    tail = log_tail(log, 10)
    # THEN only the tool's own messages remain
    assert tail == ["starting", "ERROR: malformed record at line 12"]


def test_log_tail_keeps_the_last_lines_and_copes_with_no_log(tmp_path: Path) -> None:
    log = tmp_path / "engine.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert log_tail(log, 3) == ["line 97", "line 98", "line 99"]
    assert log_tail(tmp_path / "missing.log", 3) == []


def test_parse_stats_reads_counts_and_ts_tv() -> None:
    text = (
        "# SN, Summary numbers:\n"
        "SN\t0\tnumber of samples:\t1\n"
        "SN\t0\tnumber of records:\t50\n"
        "SN\t0\tnumber of SNPs:\t45\n"
        "SN\t0\tnumber of indels:\t5\n"
        "TSTV\t0\t30\t15\t2.00\t30\t15\t2.00\n"
    )
    assert parse_stats(text) == {
        "samples": "1",
        "records": "50",
        "snps": "45",
        "indels": "5",
        "ts_tv": "2.00",
    }


def _heartbeat(elapsed_s: float) -> tuple[Heartbeat, list[int]]:
    granted: list[int] = []

    class Sqs:
        def change_message_visibility(self, **kwargs: object) -> None:
            granted.append(int(kwargs["VisibilityTimeout"]))  # type: ignore[call-overload]

    # The queue's own visibility (hours) is not what a heartbeat grants.
    cfg = ConsumerConfig(
        queue_url="https://sqs.example/1/q",
        visibility_extension_s=300,
        visibility_timeout_s=15300,
        heartbeat_s=60,
    )
    item = WorkItem(
        message_id="m",
        receipt="r",
        receive_count=1,
        received_at=time.monotonic() - elapsed_s,
        bucket="b",
        message=WorkMessage.for_sample(SampleKey.parse("inputs/b-abc123-somatic.tar.gz"), bucket="b"),
    )
    return Heartbeat(Sqs(), cfg, item), granted


def test_heartbeat_extends_by_the_rolling_window_not_the_queues_visibility() -> None:
    beat, granted = _heartbeat(elapsed_s=10)
    assert beat.extend_once() is True
    assert granted == [300]


def test_heartbeat_shortens_then_gives_up_at_the_12_hour_limit() -> None:
    # Near the ceiling it grants only what is left (minus a margin for the report) ...
    beat, granted = _heartbeat(elapsed_s=43200 - 120 - 200)
    assert beat.extend_once() is True
    assert 195 <= granted[0] <= 200
    # ... and when less than a heartbeat is left it stops the run instead.
    beat, granted = _heartbeat(elapsed_s=43200 - 120 - 30)
    assert beat.extend_once() is False
    assert beat.exhausted.is_set()
    assert granted == []
