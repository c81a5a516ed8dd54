"""What a centre installs, built the way a release builds it: `make collection` and `make wheel`.

Tests that run Capillary from outside the checkout build the products into their own temporary
directories (so parallel test workers never share a stage) and install them from there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Products:
    collection: Path  # capillary-pcgr-<version>.tar.gz
    wheel: Path  # capillary_pcgr-<version>-py3-none-any.whl


def _make(*targets: str, dist: Path, stage: Path) -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "-s", *targets, f"DIST={dist}", f"STAGE={stage}", f"BIN={BIN}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("MAKE")},
    )
    if result.returncode != 0:
        shown = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        raise RuntimeError(f"make {' '.join(targets)} failed:\n{shown}")


def build_collection(workdir: Path) -> Path:
    """`make collection` into `workdir/dist`; the tarball's path."""
    dist = workdir / "dist"
    _make("collection", dist=dist, stage=workdir / "stage")
    (tarball,) = dist.glob("capillary-pcgr-*.tar.gz")
    return tarball


def build_wheel(workdir: Path) -> Path:
    """`make wheel` into `workdir/dist`; the wheel's path."""
    dist = workdir / "dist"
    _make("wheel", dist=dist, stage=workdir / "stage")
    (wheel,) = dist.glob("capillary_pcgr-*.whl")
    return wheel


def install_collection(tarball: Path, collections_path: Path, galaxy: Path = BIN / "ansible-galaxy") -> Path:
    """`ansible-galaxy collection install` of the tarball (its Galaxy dependencies come from the
    `ansible` package, Galaxy being out of reach); the installed collection's directory."""
    command = [str(galaxy), "collection", "install", "--no-deps", "--force", "-p", str(collections_path)]
    result = subprocess.run(
        [*command, str(tarball)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")},
        cwd=collections_path.parent,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ansible-galaxy collection install failed:\n{result.stdout}\n{result.stderr}")
    return collections_path / "ansible_collections" / "capillary" / "pcgr"
