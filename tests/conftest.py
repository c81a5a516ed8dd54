"""Fixtures every test layer shares: the local AWS endpoint and the playbook runner."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from capillary.local.endpoint import LocalAWS
from capillary.local.playbook import Recap, run_playbook


@pytest.fixture(scope="session")
def _local_aws_server() -> Iterator[LocalAWS]:
    aws = LocalAWS().start()
    try:
        yield aws
    finally:
        aws.stop()


@pytest.fixture
def aws(_local_aws_server: LocalAWS, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalAWS]:
    """A clean local AWS endpoint for this test, exported to it and to its subprocesses.

    One moto server lives for the session; each test starts from an empty account and no
    seeded spot prices. The environment variables are set in this process, so boto3 clients
    and `ansible-playbook` subprocesses reach the endpoint with no further configuration.
    """
    _local_aws_server.reset()
    _local_aws_server.set_iam_enforcement(None)
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in _local_aws_server.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    yield _local_aws_server
    _local_aws_server.set_iam_enforcement(None)


# Under `pytest -n N` (make test runs two workers, one per core), tests that share a host-wide
# resource run in one group, on one worker, one after another: the bake, the whole local run and
# the gate tests that read the baked image share the `localhost/capillary-worker:<release>` tag
# and its cache (baking it twice at once would cost minutes and race on the tag); the Packer
# tests take loop devices; the installed-products tests share one build of the wheel. Everything else
# is independent: each worker has its own local endpoint, and containers carry per-test names.
XDIST_GROUPS = {
    "tests/e2e/": "worker-image",
    "tests/integration/test_bake.py": "worker-image",
    "tests/integration/test_gate_corpus.py": "worker-image",
    "tests/integration/test_image_record.py": "worker-image",
    "tests/integration/test_installed.py": "installed",
    "tests/integration/test_packer_amazon_ebs.py": "packer",
}
# The longest files start first, so the last minutes of a parallel run are not one long test.
SLOW_FIRST = (
    "tests/e2e/",
    "tests/integration/test_bake.py",
    "tests/integration/test_intake_playbook.py",
    "tests/integration/test_packer_amazon_ebs.py",
    "tests/integration/test_refdata.py",
    "tests/integration/test_up_down.py",
    "tests/integration/test_consumer_faults.py",
)


def _rank(nodeid: str) -> int:
    for rank, prefix in enumerate(SLOW_FIRST):
        if nodeid.startswith(prefix):
            return rank
    return len(SLOW_FIRST)


def _join_group(config: pytest.Config, item: pytest.Item, group: str) -> None:
    """Mark `item` as one of `group`, and under `--dist loadgroup` give it the `@group` node id
    suffix the scheduler groups by. xdist 3.8 writes that suffix to `item._nodeid`, which pytest
    9.2 no longer reads (node ids are structured, `item._id`): without this, grouped tests ran
    on both workers at once."""
    item.add_marker(pytest.mark.xdist_group(group))
    if getattr(config.option, "loadgroup", False) and "@" not in item.nodeid:
        try:
            from _pytest.nodeid import coerce_node_id
        except ImportError:  # pytest < 9.2: xdist's own suffix works
            return
        item._id = coerce_node_id(f"{item.nodeid}@{group}")  # type: ignore[attr-defined]


# `long` tests wait out a production default in real time (the 300 s visibility window) or run an
# unfinished check at full cost; each has a scaled sibling that `make test` runs. They run with
# CAPILLARY_LONG=1 (`make test-long`, before a release); otherwise they are deselected, not skipped,
# so the count of what ran stays honest.
LONG = "CAPILLARY_LONG"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(LONG) != "1":
        deselected = [item for item in items if item.get_closest_marker("long")]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = [item for item in items if not item.get_closest_marker("long")]
    for item in items:
        for prefix, group in XDIST_GROUPS.items():
            if item.nodeid.startswith(prefix):
                _join_group(config, item, group)
    items.sort(key=lambda item: _rank(item.nodeid))  # stable: file order kept within a rank


STRICT_SKIPS = "CAPILLARY_STRICT_SKIPS"
ALLOWED_SKIP = "cannot run here"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under `make test`, a skip is a failure unless its reason says the thing cannot run here.

    Tests skip when a tool or package is missing; on a machine set up by `make test` nothing
    should be, and a green run must not hide a check that silently did not happen.
    """
    if os.environ.get(STRICT_SKIPS) != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    unexpected = [r for r in skipped if ALLOWED_SKIP not in str(r.longrepr)]
    if unexpected:
        for report in unexpected:
            print(f"\nunexpected skip ({STRICT_SKIPS}=1): {report.nodeid}: {report.longrepr}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


class PlaybookRunner:
    """`run(playbook, **kwargs)` with the local endpoint's environment already applied."""

    def __init__(self, aws: LocalAWS) -> None:
        self.aws = aws

    def __call__(self, playbook: str, **kwargs: object) -> Recap:
        env = {**self.aws.env, **dict(kwargs.pop("env", {}) or {})}  # type: ignore[call-overload]
        return run_playbook(playbook, env=env, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def playbook(aws: LocalAWS) -> PlaybookRunner:
    return PlaybookRunner(aws)
