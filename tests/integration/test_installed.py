"""Capillary as a centre installs it: the built collection and wheel, used from outside the checkout.

The collection tarball (`make collection`) and the wheel (`make wheel`) are installed into a fresh
virtualenv (no system site-packages, no checkout on sys.path) and a fresh collections path in a
temporary directory, with amazon.aws and community.aws copied from the `ansible` package (Galaxy is
out of reach here). Everything then runs from a working directory there, with no ANSIBLE_*
variable pointing into the checkout: the collection's intake, up and down playbooks by name, the
`capillary` command of the installed wheel, and the StackStorm pack's playbook action.

The virtualenv is built from the StackStorm pack's requirements.txt (ansible-core, capillary-pcgr,
boto3, botocore), which is what `pip install capillary-pcgr ansible-core` gives a centre too: one
virtualenv proves both.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from capillary.contract.naming import deployment_names
from capillary.local.endpoint import LocalAWS, SpotPrice
from capillary.local.playbook import Recap, parse_recap
from tests.support.products import build_collection, build_wheel, install_collection
from tests.support.samples import make_sample_tarball

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / "integrations" / "stackstorm" / "capillary"
CONSTRAINTS = (
    REPO / "requirements" / ("constraints-py311.txt" if sys.version_info < (3, 12) else "constraints.txt")
)
# What the collection's playbooks call, taken from the `ansible` package: galaxy.yml's
# dependencies, and openstack.cloud for the OpenStack platform (optional, so not a dependency).
_GALAXY = yaml.safe_load((REPO / "collections/ansible_collections/capillary/pcgr/galaxy.yml").read_text())
BUNDLED = (*(name.replace(".", "/") for name in _GALAXY["dependencies"]), "openstack/cloud")
DEPLOYMENT = "installed"
NAMES = deployment_names(DEPLOYMENT)
RELEASE = "2.3.2"


def _site_packages() -> Path:
    import ansible

    return Path(ansible.__file__).resolve().parents[1]


@dataclass(frozen=True)
class Installation:
    root: Path

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def collections(self) -> Path:
        return self.root / "collections"

    @property
    def work(self) -> Path:
        return self.root / "work"

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def env(self, aws: LocalAWS | None = None, **extra: str) -> dict[str, str]:
        """A user's shell: the venv first on PATH, the installed collections, nothing of the checkout."""
        kept = {k: os.environ[k] for k in ("HOME", "LANG", "TMPDIR", "USER") if k in os.environ}
        return {
            **kept,
            **(aws.env if aws else {}),
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "PATH": f"{self.venv / 'bin'}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
            "ANSIBLE_COLLECTIONS_PATH": str(self.collections),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            **extra,
        }

    def run(self, *cmd: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(cmd), cwd=self.work, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def capillary(self, *args: str, aws: LocalAWS | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(self.bin("capillary"), *args, env=self.env(aws))

    def playbook(self, name: str, aws: LocalAWS, extra_vars: dict[str, Any], **env: str) -> Recap:
        proc = self.run(
            self.bin("ansible-playbook"),
            name,
            "-e",
            json.dumps(extra_vars),
            env=self.env(aws, **env),
            timeout=900,
        )
        return Recap(
            rc=proc.returncode, hosts=parse_recap(proc.stdout), stdout=proc.stdout, stderr=proc.stderr
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    """Build both products, then install them the way the README says, into a fresh venv and path."""
    site = Installation(tmp_path_factory.mktemp("installed"))
    assert not site.root.resolve().is_relative_to(REPO)
    site.work.mkdir()
    tarball = build_collection(site.root / "build")
    wheel = build_wheel(site.root / "build")

    base_python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    subprocess.run([str(base_python), "-m", "venv", str(site.venv)], check=True, timeout=300)
    # The StackStorm pack's requirements (ansible-core, capillary-pcgr, boto3), capillary-pcgr from
    # the wheel just built, the rest at the versions the checkout tests.
    pip_install = [site.bin("python"), "-m", "pip", "install", "--quiet", "-c", str(CONSTRAINTS)]
    pip = subprocess.run(
        [*pip_install, "--find-links", str(wheel.parent), "-r", str(PACK / "requirements.txt")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env=site.env(),
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    for collection in BUNDLED:
        shutil.copytree(
            _site_packages() / "ansible_collections" / collection,
            site.collections / "ansible_collections" / collection,
            ignore=shutil.ignore_patterns("tests", "__pycache__"),
        )
    # ansible-galaxy collection install capillary-pcgr-<version>.tar.gz
    install_collection(tarball, site.collections, galaxy=Path(site.bin("ansible-galaxy")))
    return site


# --------------------------------------------------------------------------------------------
# The installation itself


def test_the_venv_holds_the_wheel_and_nothing_of_the_checkout(installed: Installation) -> None:
    proc = installed.run(
        installed.bin("python"),
        "-c",
        "import json, sys, capillary, capillary.release.catalogue as c; "
        "print(json.dumps({'capillary': capillary.__file__, 'catalogue': str(c.default_path()), "
        "'path': sys.path}))",
        env=installed.env(),
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    venv = installed.venv.resolve()
    assert Path(found["capillary"]).resolve().is_relative_to(venv)
    # The catalogue is the wheel's own file, the same content as the checkout's.
    catalogue = Path(found["catalogue"])
    assert catalogue.resolve().is_relative_to(venv) and not catalogue.is_symlink()
    assert catalogue.read_text() == (REPO / "catalogue" / "pcgr_releases.yml").read_text()
    assert not any(Path(p).resolve().is_relative_to(REPO) for p in found["path"] if p)


def test_the_collection_carries_roles_playbooks_and_eda(installed: Installation) -> None:
    root = installed.collections / "ansible_collections" / "capillary" / "pcgr"
    for role in (REPO / "roles").iterdir():
        assert (root / "roles" / role.name / "tasks" / "main.yml").is_file(), role.name
        assert not (root / "roles" / role.name / "molecule").exists(), role.name
    assert {p.name for p in (root / "playbooks").glob("*.yml")} == {
        p.name for p in (REPO / "playbooks").glob("*.yml")
    }
    assert (root / "extensions" / "eda" / "plugins" / "event_source" / "sqs_queue_depth.py").is_file()
    assert (root / "meta" / "execution-environment.yml").is_file()
    assert (root / "LICENSE").read_text() == (REPO / "LICENSE").read_text()
    # ansible-doc finds the collection's plugins there
    proc = installed.run(installed.bin("ansible-doc"), "-l", "capillary.pcgr", env=installed.env())
    assert proc.returncode == 0, proc.stderr
    assert "capillary.pcgr.ec2_spot_price_info" in proc.stdout


# awx.awx is not in the `ansible` package and Galaxy is out of reach here (as in .ansible-lint).
NEEDS_GALAXY = {"awx_setup": "awx.awx"}


@pytest.mark.parametrize(
    "playbook", sorted(p.stem for p in (REPO / "playbooks").glob("*.yml") if p.stem not in NEEDS_GALAXY)
)
def test_every_installed_playbook_parses_by_its_fqcn(installed: Installation, playbook: str) -> None:
    # WHEN ansible-playbook checks the installed collection's playbook by name, from outside the
    # checkout: its roles (named by short name in the playbook) resolve inside the collection
    proc = installed.run(
        installed.bin("ansible-playbook"), "--syntax-check", f"capillary.pcgr.{playbook}", env=installed.env()
    )
    # THEN it parses, and it was the installed copy that was read
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ERROR" not in proc.stderr, proc.stderr


def test_the_installed_plugins_import_the_installed_package(installed: Installation) -> None:
    # GIVEN the collection's filters, which import capillary (requirements.txt: capillary-pcgr)
    root = installed.collections / "ansible_collections" / "capillary" / "pcgr"
    assert "capillary-pcgr" in (root / "requirements.txt").read_text()
    # WHEN a filter and the release lookup run from the installed collection
    found = installed.work / "plugins.json"
    content = (
        "{{ {'bucket': ('demo' | capillary.pcgr.deployment_names).bucket,"
        f" 'release': lookup('capillary.pcgr.pcgr_release', '{RELEASE}').version}} | to_json }}}}"
    )
    proc = installed.run(
        installed.bin("ansible"), "localhost", "-m", "ansible.builtin.copy",
        "-a", json.dumps({"dest": str(found), "content": content, "mode": "0644"}),
        env=installed.env(),
    )  # fmt: skip
    # THEN both answer from the venv's capillary-pcgr (the lookup from the catalogue inside it)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(found.read_text()) == {"bucket": deployment_names("demo").bucket, "release": RELEASE}


# --------------------------------------------------------------------------------------------
# The execution environment, from the same two products

# Modules the playbooks and roles call, by collection (what the EE must hold for them). Not in the
# EE: ansible.builtin (ansible-core), ours (the tarball), containers.podman (the local platform,
# never under AWX) and awx.awx (awx_setup.yml configures AWX from outside it).
_MODULE = re.compile(r"^\s*-?\s*(?:name:\s*)?([a-z_]+\.[a-z_]+)\.[a-z_0-9]+:", re.MULTILINE)
_NOT_IN_EE = {"ansible.builtin", "capillary.pcgr", "containers.podman", "awx.awx"}


def test_ansible_builder_context_holds_every_playbooks_needs(installed: Installation) -> None:
    # GIVEN the EE definition beside the products it names (dist/), as after `make collection wheel`
    ee = installed.root / "ee"
    ee.mkdir()
    shutil.copy(REPO / "execution-environment.yml", ee)
    (ee / "dist").symlink_to(installed.root / "build" / "dist")
    # WHEN ansible-builder writes the build context (no image build: its base image is out of reach)
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-builder"), "create",
         "--file", "execution-environment.yml", "--context", "context"],
        cwd=ee, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    context = ee / "context"
    build = context / "_build"
    # THEN the Galaxy requirements name every collection the playbooks' and roles' modules come from
    used = {
        m.group(1)
        for f in [*(REPO / "playbooks").glob("*.yml"), *(REPO / "roles").glob("*/tasks/*.yml")]
        for m in _MODULE.finditer(f.read_text())
    }
    galaxy = yaml.safe_load((build / "requirements.yml").read_text())["collections"]
    assert used - _NOT_IN_EE <= {c["name"] for c in galaxy}, used
    # AND ours is the built tarball, which declares its Python and system needs for the build to read
    ours = [c["name"] for c in galaxy if c.get("type") == "file"]
    assert ours == [f"/build/capillary/{next((installed.root / 'build' / 'dist').glob('*.tar.gz')).name}"]
    with tarfile.open(build / "capillary" / Path(ours[0]).name) as tar:
        names = set(tar.getnames())
        assert {"meta/execution-environment.yml", "requirements.txt", "bindep.txt"} <= names
        assert "capillary-pcgr" in tar.extractfile("requirements.txt").read().decode()  # type: ignore[union-attr]
    # AND the Python requirements name the package (resolved to the wheel in the context, which
    # carries the catalogue), boto3 and botocore; ansible-core comes from its own pin
    python = (build / "requirements.txt").read_text().split()
    assert {"capillary-pcgr==0.1.0", "boto3==1.44.5", "botocore==1.44.5"} <= set(python), python
    (wheel,) = (build / "capillary").glob("capillary_pcgr-*.whl")
    with zipfile.ZipFile(wheel) as whl:
        assert "capillary/release/data/pcgr_releases.yml" in whl.namelist()
    # AND the Containerfile finds the wheel before any index and installs packer (bake.yml)
    containerfile = (context / "Containerfile").read_text()
    assert "ENV PIP_FIND_LINKS=/build/capillary" in containerfile
    assert "/usr/local/bin/packer" in containerfile and "packer version" in containerfile


# --------------------------------------------------------------------------------------------
# The CLI of the installed wheel


class _Releases(BaseHTTPRequestHandler):
    """GitHub's releases API shape: one page, with releases newer than the catalogue's."""

    body: ClassVar[bytes] = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def releases_url() -> Iterator[str]:
    _Releases.body = (REPO / "tests" / "data" / "releases" / "pcgr-page1.json").read_bytes()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Releases)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/repos/sigven/pcgr/releases"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["submit", "--help"],
        ["validate", "--help"],
        ["status", "--help"],
        ["consume", "--help"],
        ["intake-local", "--help"],
        ["releases", "check", "--help"],
    ],
    ids=" ".join,
)
def test_every_subcommand_answers(installed: Installation, args: list[str]) -> None:
    proc = installed.capillary(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: capillary")


def test_releases_check_reads_the_catalogue_inside_the_wheel(
    installed: Installation, releases_url: str
) -> None:
    # GIVEN upstream has 2.4.0 and 2.3.3, newer than every catalogue release
    # WHEN the installed CLI checks, with no catalogue given and none in the working directory
    proc = installed.capillary("releases", "check", "--url", releases_url, "--json")
    # THEN it read the packaged catalogue and reports the two (exit 10: new releases)
    assert proc.returncode == 10, proc.stdout + proc.stderr
    assert [r["version"] for r in json.loads(proc.stdout)["new"]] == ["2.4.0", "2.3.3"]


# --------------------------------------------------------------------------------------------
# The flow, from the installed collection and CLI


def _workers(aws: LocalAWS) -> list[dict[str, Any]]:
    pages = aws.client("ec2").describe_instances(
        Filters=[
            {"Name": "tag:capillary:deployment", "Values": [DEPLOYMENT]},
            {"Name": "tag:capillary:role", "Values": ["worker"]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )
    return [i for r in pages["Reservations"] for i in r["Instances"]]


def _record_an_image(aws: LocalAWS) -> str:
    """What bake.yml leaves for up: the release's image registered and its id in SSM."""
    image_id: str = aws.client("ec2").register_image(
        Name=f"capillary-{DEPLOYMENT}-{RELEASE}",
        RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
    )["ImageId"]
    aws.client("ssm").put_parameter(Name=NAMES.image_parameter(RELEASE), Value=image_id, Type="String")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    aws.seed_spot_prices(
        SpotPrice("m5.xlarge", zone, 0.07, now - dt.timedelta(hours=h))
        for zone in ("eu-west-1a", "eu-west-1b")
        for h in (12, 2)
    )
    return image_id


def test_intake_submit_up_and_down_from_the_installed_products(
    aws: LocalAWS, installed: Installation, tmp_path: Path
) -> None:
    # GIVEN an empty account and the installed products
    # WHEN the collection's intake playbook builds the cloud side (the local layout: an events queue)
    # (intake_package_dir: where the local runner's environment goes; its default is beside the
    # playbook, i.e. inside the installed collection)
    package_dir = installed.root / "intake"
    intake_vars = {
        "capillary_deployment": DEPLOYMENT,
        "intake_platform": "local",
        "intake_package_dir": str(package_dir),
    }
    installed.playbook("capillary.pcgr.intake", aws, intake_vars).assert_ok()
    # THEN the deployment's bucket and queues exist
    assert NAMES.bucket in [b["Name"] for b in aws.client("s3").list_buckets()["Buckets"]]
    sqs = aws.client("sqs")
    events_url = sqs.get_queue_url(QueueName=NAMES.events_queue)["QueueUrl"]
    work_url = sqs.get_queue_url(QueueName=NAMES.work_queue)["QueueUrl"]

    # WHEN a sample is validated and submitted with the installed CLI, and the local intake runner
    # turns its S3 event into a work message
    tarball = make_sample_tarball(tmp_path, batch="inst", kind="somatic")
    validated = installed.capillary("validate", str(tarball))
    assert validated.returncode == 0, validated.stdout + validated.stderr
    submitted = installed.capillary("submit", str(tarball), "--bucket", NAMES.bucket, "--json", aws=aws)
    assert submitted.returncode == 0, submitted.stderr
    key = json.loads(submitted.stdout)["key"]
    runner_env = dict(
        line.split("=", 1)
        for line in (package_dir / f"{DEPLOYMENT}-intake.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert runner_env["CAPILLARY_EVENTS_QUEUE_URL"] == events_url
    intake = installed.run(
        installed.bin("capillary"), "intake-local", "--queue-url", events_url,
        "--once", "--wait-seconds", "5", env=installed.env(aws, **runner_env),
    )  # fmt: skip
    assert intake.returncode == 0, intake.stderr

    # THEN `capillary status` sees it waiting in the work queue
    status = installed.capillary("status", "--deployment", DEPLOYMENT, "--json", aws=aws)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["queue"]["visible"] == 1, status.stdout
    body = json.loads(sqs.receive_message(QueueUrl=work_url, VisibilityTimeout=0)["Messages"][0]["Body"])
    assert body["key"] == key

    # WHEN the collection's up playbook sizes the fleet from the queue (the image as bake records it)
    image_id = _record_an_image(aws)
    up_vars = {
        "capillary_deployment": DEPLOYMENT,
        "capillary_release": RELEASE,
        "capillary_platform": "aws",
        "capillary_instance_types": ["m5.xlarge"],
        "capillary_max_workers": 2,
        "capillary_event": key,
    }
    installed.playbook("capillary.pcgr.up", aws, up_vars).assert_ok()
    # THEN one worker runs the release's image, tagged with the sample's key
    (worker,) = _workers(aws)
    assert worker["ImageId"] == image_id
    tags = {t["Key"]: t["Value"] for t in worker["Tags"]}
    assert tags["capillary:release"] == RELEASE and tags["capillary:event"] == key

    # WHEN the collection's down playbook runs THEN no worker is left, and a re-run changes nothing
    installed.playbook("capillary.pcgr.down", aws, {"capillary_deployment": DEPLOYMENT}).assert_ok()
    assert _workers(aws) == []
    installed.playbook("capillary.pcgr.down", aws, {"capillary_deployment": DEPLOYMENT}).assert_idempotent()


# --------------------------------------------------------------------------------------------
# module_defaults and the action groups, as meta/runtime.yml documents them


def test_group_capillary_aws_reaches_both_collections_and_group_aws_only_amazons(
    aws: LocalAWS, installed: Installation
) -> None:
    # GIVEN a queue, and a shell without a region: only module_defaults can give one
    aws.client("sqs").create_queue(QueueName=NAMES.work_queue)
    play = [
        {
            "name": f"module_defaults from {group}",
            "hosts": "localhost",
            "gather_facts": False,
            "module_defaults": {group: {"region": aws.region}},
            "tasks": [
                {
                    "name": "Ours",
                    "capillary.pcgr.sqs_queue_info": {"name": NAMES.work_queue},
                    "register": "ours",
                    "ignore_errors": True,
                },
                {
                    "name": "amazon.aws's",
                    "amazon.aws.ec2_instance_info": {},
                    "register": "amazons",
                    "ignore_errors": True,
                },
                {
                    "name": "Record the outcomes",
                    "ansible.builtin.copy": {
                        "dest": f"{installed.work}/{label}.json",
                        "content": "{{ {'ours': ours is succeeded, 'amazons': amazons is succeeded,"
                        " 'why': ours.msg | default('')} | to_json }}",
                        "mode": "0644",
                    },
                },
            ],
        }
        for label, group in (("ours", "group/capillary.pcgr.aws"), ("theirs", "group/aws"))
    ]
    (installed.work / "groups.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    # (and no instance metadata to ask for one: botocore would try it, slowly, before failing)
    env = {k: v for k, v in installed.env(aws).items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    proc = installed.run(installed.bin("ansible-playbook"), "groups.yml", env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]
    ours, theirs = (
        json.loads((installed.work / f"{label}.json").read_text()) for label in ("ours", "theirs")
    )
    # THEN group/capillary.pcgr.aws gives the region to our module and, by extend_group, to amazon.aws's
    assert ours == {"ours": True, "amazons": True, "why": ""}, proc.stdout[-4000:]
    # AND group/aws reaches amazon.aws's module only: ours asks for a region
    assert theirs["amazons"] is True and theirs["ours"] is False, proc.stdout[-4000:]
    assert "region" in theirs["why"].lower(), theirs


# --------------------------------------------------------------------------------------------
# The StackStorm pack's action, in the pack's own virtualenv

_ST2_ACTION = """
import json, sys
# StackStorm's Action base class as st2common defines it (st2common is not on PyPI).
import types
base = types.ModuleType("st2common.runners.base_action")
class Action:
    def __init__(self, config=None, action_service=None):
        self.config = config or {}
base.Action = Action
sys.modules.update({"st2common": types.ModuleType("st2common"),
                    "st2common.runners": types.ModuleType("st2common.runners"),
                    "st2common.runners.base_action": base})
import importlib.util
spec = importlib.util.spec_from_file_location("playbook", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
ok, result = module.Playbook(config=json.loads(sys.argv[2])).run(**json.loads(sys.argv[3]))
print("RESULT " + json.dumps({"ok": ok, **result}))
"""


def test_the_stackstorm_action_runs_the_collection_from_the_pack_virtualenv(
    aws: LocalAWS, installed: Installation
) -> None:
    # GIVEN the pack as `st2 pack install` lays it out, and its virtualenv (the one built above
    # from the pack's requirements.txt), with the collections where the pack configuration says
    packs = installed.root / "packs"
    shutil.copytree(PACK, packs / "capillary", dirs_exist_ok=True)
    runner = installed.root / "st2_action.py"
    runner.write_text(_ST2_ACTION)
    config = {"collections_path": str(installed.collections)}
    run = {"playbook": "capillary.pcgr.down", "extra_vars": {"capillary_deployment": DEPLOYMENT}}

    # WHEN StackStorm runs capillary.run with the virtualenv's Python, outside any checkout
    env = {k: v for k, v in installed.env(aws).items() if k != "ANSIBLE_COLLECTIONS_PATH"}
    proc = installed.run(
        installed.bin("python"), str(runner), str(packs / "capillary" / "actions" / "run.py"),
        json.dumps(config), json.dumps(run), env=env, timeout=600,
    )  # fmt: skip

    # THEN the playbook ran with that virtualenv's ansible-playbook and succeeded (no workers: no change)
    assert proc.returncode == 0, proc.stderr
    (line,) = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    result = json.loads(line.removeprefix("RESULT "))
    assert result["ok"] is True, proc.stdout[-4000:]
    assert result["ansible_playbook"] == installed.bin("ansible-playbook")
    assert result["recap"]["localhost"]["failed"] == 0
    assert result["recap"]["localhost"]["changed"] == 0
