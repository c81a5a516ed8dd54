"""A local OCI registry (Debian's `docker-registry`) and a small PCGR-like image, for the pcgr role.

ghcr.io cannot be reached here: `OciRegistry` runs a registry on a free loopback port and
`push_pcgr_image` builds an image whose `pcgr --version` answers, tagged like the PCGR image.

    python -m tests.support.registry --registry-vars-out F   # for Molecule, which has no fixtures
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import yaml

from capillary.local.podman import PODMAN_ENV, free_port
from tests.support.podman_targets import BASE_IMAGE

REGISTRY_BIN = "/usr/bin/docker-registry"


class OciRegistry:
    """`docker-registry` on 127.0.0.1:<free port>, with a temporary config and storage dir."""

    def __init__(self) -> None:
        self.port = free_port()
        self._tmp = Path(tempfile.mkdtemp(prefix="capillary-registry-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> OciRegistry:
        config = self._tmp / "config.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "version": 0.1,
                    "log": {"level": "warn"},
                    "storage": {"filesystem": {"rootdirectory": str(self._tmp / "storage")}},
                    "http": {"addr": self.host},
                }
            )
        )
        log = open(self._tmp / "registry.log", "wb")  # noqa: SIM115 - closed with the process
        self._proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"docker-registry did not start: {(self._tmp / 'registry.log').read_text()}")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> OciRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


PCGR_SCRIPT = """#!/bin/sh
# A stand-in for PCGR inside the test image: answers --version like pcgr does, and reports
# what it sees of its mounts and identity, so the wrapper's work can be checked.
case "$1" in
  --version) echo "pcgr {version}"; exit 0 ;;
  --whoami) echo "uid=$(id -u) gid=$(id -g) xdg=$XDG_CACHE_HOME"; ls -A /mnt; exit 0 ;;
  *) echo "pcgr stand-in: $*" >&2; exit 2 ;;
esac
"""


def push_pcgr_image(registry: OciRegistry, image: str, version: str) -> tuple[str, str]:
    """Build a small image FROM the base image with a `pcgr` that answers --version; push it.

    `image` is the catalogue's reference (e.g. ghcr.io/sigven/pcgr:2.3.2); the pushed copy keeps
    its repository path and tag under the local registry: 127.0.0.1:<port>/sigven/pcgr:2.3.2.
    Returns (that reference, its manifest digest).
    """
    path_and_tag = image.split("/", 1)[1] if "." in image.split("/", 1)[0] else image
    local_ref = f"{registry.host}/{path_and_tag}"
    build = Path(tempfile.mkdtemp(prefix="capillary-pcgr-image-"))
    try:
        (build / "pcgr").write_text(PCGR_SCRIPT.replace("{version}", version))
        (build / "Containerfile").write_text(
            f"FROM {BASE_IMAGE}\nCOPY pcgr /usr/local/bin/pcgr\nRUN chmod 0755 /usr/local/bin/pcgr\n"
            'CMD ["/usr/local/bin/pcgr", "--version"]\n'
        )
        env = PODMAN_ENV
        subprocess.run(
            ["podman", "build", "-q", "-t", local_ref, str(build)], check=True, env=env, capture_output=True
        )
        digest_file = build / "digest"
        subprocess.run(
            ["podman", "push", "--tls-verify=false", "--digestfile", str(digest_file), local_ref],
            check=True,
            env=env,
            capture_output=True,
        )
        subprocess.run(["podman", "rmi", "-f", local_ref], check=False, env=env, capture_output=True)
        return local_ref, digest_file.read_text().strip()
    finally:
        shutil.rmtree(build, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Run the registry, push the PCGR stand-in image of the current release, and write the pcgr
    role's variables for it to --registry-vars-out; serve until SIGTERM (or --lifetime)."""
    import argparse
    import signal

    from capillary.release.catalogue import load_catalogue

    p = argparse.ArgumentParser(prog="python -m tests.support.registry")
    p.add_argument("--registry-vars-out", type=Path, required=True)
    p.add_argument("--lifetime", type=float, default=0, help="exit after this many seconds (0: never)")
    args = p.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    release = load_catalogue().current
    with OciRegistry() as registry:
        ref, digest = push_pcgr_image(registry, release.install.image, release.version)
        tmp = args.registry_vars_out.with_suffix(".tmp")
        tmp.write_text(
            yaml.safe_dump(
                {
                    "pcgr_container_image": ref,
                    "pcgr_container_tls_verify": False,
                    "pcgr_test_release": release.version,
                    "pcgr_test_digest": digest,
                }
            )
        )
        tmp.replace(args.registry_vars_out)  # appears whole: Molecule waits for it
        print(ref, flush=True)
        stop.wait(args.lifetime or None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
