"""How the end of an engine run is judged: a stop is a stop, a crash is a failure."""

from __future__ import annotations

import threading

import pytest

from capillary.worker.config import ConsumerConfig
from capillary.worker.engines import ProcessOutcome
from capillary.worker.item import HandBackError, SampleFailedError
from capillary.worker.pipeline import SamplePipeline


def pipeline(stop: threading.Event) -> SamplePipeline:
    cfg = ConsumerConfig(queue_url="https://sqs.example/1/q")
    return SamplePipeline(cfg, None, None, None, stop, dict, lambda *_: None, None)  # type: ignore[arg-type]


def test_an_engine_killed_by_the_stop_signal_before_the_daemon_saw_it_is_a_hand_back() -> None:
    # GIVEN the engine ended on SIGTERM (KillMode=control-group sent it to every process), and the
    # daemon's own SIGTERM lands a moment later
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    # THEN the run is handed back, not reported
    with pytest.raises(HandBackError):
        pipeline(stop)._engine_outcome(ProcessOutcome(returncode=-15, duration_s=3.0))


def test_an_engine_killed_with_no_stop_in_sight_is_a_failure_naming_the_signal() -> None:
    with pytest.raises(SampleFailedError) as err:
        pipeline(threading.Event())._engine_outcome(ProcessOutcome(returncode=-9, duration_s=3.0))
    assert err.value.reason == "the engine was killed by SIGKILL"


def test_an_engine_that_exits_non_zero_is_a_failure_and_zero_is_not() -> None:
    with pytest.raises(SampleFailedError, match="exited with status 2"):
        pipeline(threading.Event())._engine_outcome(ProcessOutcome(returncode=2, duration_s=1.0))
    pipeline(threading.Event())._engine_outcome(ProcessOutcome(returncode=0, duration_s=1.0))
