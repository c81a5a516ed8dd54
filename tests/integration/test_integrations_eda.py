"""Event-Driven Ansible for real: ansible-rulebook runs the collection's rulebooks against the local endpoint.

The collection is built (`make collection`) and installed into a collections path outside the
checkout, and ansible-rulebook runs from there by name, as a centre runs it: a sample waits in the
work queue (or the intake handler's webhook payload arrives) → the rule fires → the collection's
up playbook runs → workers tagged with the event exist in the local account.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from capillary.contract.samples import SampleKey
from capillary.intake.handler import IntakeConfig, Record, webhook_payload
from capillary.local.endpoint import LocalAWS
from tests.support.deployments import seed_worker_deployment
from tests.support.products import build_collection, install_collection

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EDA = REPO / "collections" / "ansible_collections" / "capillary" / "pcgr" / "extensions" / "eda"
DEPLOYMENT = "edatest"
RELEASE = "2.3.2"  # in catalogue/pcgr_releases.yml
TOKEN = "eda-test-token"
BIN = Path(sys.executable).parent


def _java_home() -> str:
    for candidate in (os.environ.get("JAVA_HOME", ""), "/usr/lib/jvm/java-17-openjdk-amd64"):
        if candidate and (Path(candidate) / "bin" / "java").is_file():
            return candidate
    pytest.skip("ansible-rulebook needs a Java 17 runtime (JAVA_HOME) and none was found")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built collection, installed into a collections path of its own (outside the checkout)."""
    root = tmp_path_factory.mktemp("eda")
    install_collection(build_collection(root / "build"), root / "collections")
    inventory = root / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        "localhost": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                        }
                    }
                }
            }
        )
    )
    return root


@pytest.fixture
def rulebook_env(aws: LocalAWS, installed: Path) -> dict[str, str]:
    pytest.importorskip("ansible_rulebook", reason="ansible-rulebook is not installed")
    # jpy loads libjvm on import, so only look for it here: ansible-rulebook imports it with JAVA_HOME set.
    if importlib.util.find_spec("jpy") is None:
        pytest.skip("ansible-rulebook's Drools bridge (jpy) is not installed")
    # Nothing of the checkout's Ansible configuration: the installed collection is all it has.
    outside = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    return {
        **outside,
        **aws.env,
        "JAVA_HOME": _java_home(),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_COLLECTIONS_PATH": str(installed / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "CAPILLARY_EDA_TOKEN": TOKEN,
    }


@pytest.fixture
def deployment(aws: LocalAWS) -> str:
    """What intake and bake leave behind for up.yml: the image recorded, the profile, the queue."""
    return seed_worker_deployment(aws, DEPLOYMENT, RELEASE).queue_url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def rulebook(name: str, env: dict[str, str], tmp_path: Path, **variables: Any) -> Iterator[Path]:
    """Run `ansible-rulebook -r capillary.pcgr.<name>` from outside the checkout until the block ends."""
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text(
        yaml.safe_dump(
            {
                "capillary_deployment": DEPLOYMENT,
                "capillary_release": RELEASE,
                "capillary_platform": "aws",
                **variables,
            }
        )
    )
    log = tmp_path / f"{name}.log"
    installed = Path(env["ANSIBLE_COLLECTIONS_PATH"]).parent
    cmd = [
        str(BIN / "ansible-rulebook"),
        "--rulebook", f"capillary.pcgr.{name}",
        "--inventory", str(installed / "inventory.yml"),
        "--vars", str(vars_file),
        "--env-vars", "CAPILLARY_EDA_TOKEN",
    ]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield log
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def workers(aws: LocalAWS) -> list[dict[str, Any]]:
    pages = aws.client("ec2").describe_instances(
        Filters=[
            {"Name": "tag:capillary:deployment", "Values": [DEPLOYMENT]},
            {"Name": "tag:capillary:role", "Values": ["worker"]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )
    return [i for r in pages["Reservations"] for i in r["Instances"]]


def wait_for_workers(aws: LocalAWS, count: int, log: Path, timeout: float = 180) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = workers(aws)
        if len(found) >= count:
            return found
        time.sleep(2)
    pytest.fail(f"no {count} workers after {timeout}s; ansible-rulebook said:\n{log.read_text()[-6000:]}")


def tag(instance: dict[str, Any], key: str) -> str:
    return next(t["Value"] for t in instance.get("Tags", []) if t["Key"] == key)


def test_waiting_samples_in_the_work_queue_bring_workers_up(
    aws: LocalAWS, deployment: str, rulebook_env: dict[str, str], tmp_path: Path
) -> None:
    # GIVEN two samples waiting in the work queue and no workers
    sqs = aws.client("sqs")
    for i in range(2):
        sqs.send_message(
            QueueUrl=deployment, MessageBody=json.dumps({"key": f"inputs/b-{i:06x}-somatic.tar.gz"})
        )
    assert workers(aws) == []

    # WHEN the queue rulebook watches the deployment
    with rulebook("work_queue", rulebook_env, tmp_path, capillary_eda_poll_seconds=1) as log:
        launched = wait_for_workers(aws, 2, log)
        time.sleep(3)  # a second poll inside the throttle window must launch nothing more
        again = workers(aws)

    # THEN up.yml launched one worker per waiting sample, tagged with the rulebook's event,
    # and the samples are still in the queue for those workers (the source never receives)
    assert len(launched) == len(again) == 2, log.read_text()[-3000:]
    assert all(tag(i, "capillary:event").startswith("eda-queue-") for i in launched)
    assert all(tag(i, "capillary:release") == RELEASE for i in launched)
    attrs = sqs.get_queue_attributes(QueueUrl=deployment, AttributeNames=["ApproximateNumberOfMessages"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "2"


def _received_payload(deployment: str) -> dict[str, Any]:
    config = IntakeConfig(deployment=deployment, work_queue_url="http://127.0.0.1/q")
    sample = SampleKey.parse("inputs/run-9-abc123-somatic.tar.gz")
    record = Record(
        event_name="ObjectCreated:Put",
        bucket=f"capillary-{deployment}-samples",
        raw_key=sample.input_key,
        key=sample.input_key,
        size=2048,
        etag="etag-1",
        sequencer="00A1",
        event_time="2026-11-21T06:00:00.000Z",
    )
    return webhook_payload("sample.received", config, record, sample=sample)


def _post(port: int, payload: dict[str, Any], token: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    try:
        # Generous: a loaded machine may take seconds to answer while the rule engine starts.
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _post_when_listening(port: int, payload: dict[str, Any], token: str, log: Path) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            return _post(port, payload, token)
        except (ConnectionError, urllib.error.URLError):
            time.sleep(0.5)
    pytest.fail(f"the webhook never listened on {port}:\n{log.read_text()[-4000:]}")


def test_the_intake_webhook_payload_brings_workers_up(
    aws: LocalAWS, deployment: str, rulebook_env: dict[str, str], tmp_path: Path
) -> None:
    # GIVEN the sample the intake handler just queued, and its webhook payload
    aws.client("sqs").send_message(QueueUrl=deployment, MessageBody="{}")
    payload = _received_payload(DEPLOYMENT)
    port = _free_port()

    with rulebook(
        "intake_webhook", rulebook_env, tmp_path, capillary_eda_host="127.0.0.1", capillary_eda_port=port
    ) as log:
        # WHEN a caller without the token posts, and another deployment's payload arrives
        refused = _post_when_listening(port, payload, "wrong-token", log)
        other = _post(port, _received_payload("someone-else"), TOKEN)
        time.sleep(5)
        after_noise = workers(aws)
        # AND the intake's own payload for this deployment arrives with the token
        accepted = _post(port, payload, TOKEN)
        launched = wait_for_workers(aws, 1, log)

    # THEN only the real, authenticated event launched a worker, tagged with the sample's key
    assert refused == 401
    assert other == accepted == 200
    assert after_noise == []
    assert [tag(i, "capillary:event") for i in launched] == [payload["key"]]


def _source() -> Any:
    spec = importlib.util.spec_from_file_location(
        "sqs_queue_depth", EDA / "plugins" / "event_source" / "sqs_queue_depth.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_queue_depth_source_emits_only_while_messages_wait(aws: LocalAWS) -> None:
    import asyncio

    source = _source()
    url = aws.client("sqs").create_queue(QueueName=f"capillary-{DEPLOYMENT}-work")["QueueUrl"]

    async def watch(seconds: float) -> list[dict[str, Any]]:
        events: asyncio.Queue[Any] = asyncio.Queue()
        task = asyncio.create_task(source.main(events, {"deployment": DEPLOYMENT, "interval": 0.2}))
        await asyncio.sleep(seconds)
        task.cancel()
        return [events.get_nowait() for _ in range(events.qsize())]

    # GIVEN an empty work queue THEN the source says nothing
    assert asyncio.run(watch(1.0)) == []
    # WHEN a sample waits THEN it reports the depth, and the message is still there afterwards
    aws.client("sqs").send_message(QueueUrl=url, MessageBody="{}")
    events = asyncio.run(watch(1.0))
    assert events and events[0] == {
        "capillary_queue": {
            "deployment": DEPLOYMENT,
            "queue": f"capillary-{DEPLOYMENT}-work",
            "visible": 1,
            "in_flight": 0,
        }
    }
    attrs = aws.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "1"


def test_queue_depth_source_names_a_missing_queue_and_a_bad_deployment(aws: LocalAWS) -> None:
    import asyncio

    source = _source()
    with pytest.raises(ValueError, match=r"capillary-nowhere-work.*capillary\.pcgr\.intake playbook"):
        asyncio.run(source.main(asyncio.Queue(), {"deployment": "nowhere", "interval": 1}))
    with pytest.raises(ValueError, match="deployment name 'Bad_Name' is invalid"):
        asyncio.run(source.main(asyncio.Queue(), {"deployment": "Bad_Name"}))
