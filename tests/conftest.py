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
