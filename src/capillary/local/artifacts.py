"""Local stand-ins for PCGR's download sites: an HTTP server with Range support.

PCGR's bundles (GBs, on insilico.hpc.uio.no and ftp.ensembl.org) and images (ghcr.io) cannot be
reached here, so the tests serve small artifacts with the real names and layout:

- `build_artifacts(dir, release)` writes `pcgr_ref_data.<bundle>.<assembly>.tgz` holding
  `data/<assembly>/.PCGR_BUNDLE_VERSION`, and `homo_sapiens_vep_<v>_GRCh38.tar.gz` holding
  `homo_sapiens/<v>_GRCh38/`, named exactly as the catalogue names them;
- `ArtifactServer` serves a directory on 127.0.0.1 with single-range `Range` support, counts the
  bytes it serves per file, and can drop a connection mid-transfer once (`drop_after`);
- `make_test_catalogue(...)` writes a catalogue whose URLs point at the server (same file names) and
  whose sizes and sha256 are those of the small artifacts. Production reads the real catalogue
  unchanged; tests point `pcgr_refdata_catalogue` / `CAPILLARY_CATALOGUE` at this copy;

The artifacts are byte-for-byte reproducible (fixed mtimes, gzip header without a time), so a
catalogue made from them has the same checksums from run to run. Booted targets for the roles
live in `tests.support.podman_targets`, the OCI registry in `tests.support.registry`.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import re
import socket
import tarfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from capillary.release.catalogue import Release, default_path

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


# ---------------------------------------------------------------------------------------------
# artifacts with the real layout
# ---------------------------------------------------------------------------------------------


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1_700_000_000
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = 1_700_000_000
    tar.addfile(info)


def _filler(seed: str, size: int) -> bytes:
    """Incompressible bytes (so the tarball is about `size`), deterministic for a seed."""
    out = bytearray()
    block = hashlib.sha256(seed.encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block * 1  # 32 bytes a round: fine for the KB-MB sizes tests use
    return bytes(out[:size])


@contextlib.contextmanager
def _tgz(path: Path) -> Iterator[tarfile.TarFile]:
    """A .tar.gz whose bytes depend only on its members (no time or name in the gzip header)."""
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", compresslevel=1, fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        yield tar


def write_bundle(
    path: Path,
    bundle_version: str,
    assembly: str,
    *,
    payload: int = 256 * 1024,
    version_in_file: str | None = None,
) -> Path:
    """`pcgr_ref_data.<bundle>.<assembly>.tgz`: `data/<assembly>/.PCGR_BUNDLE_VERSION` and some data,
    including a public-data VCF like the real bundle's (which the image gate must tell apart from
    a sample)."""
    with _tgz(path) as tar:
        _add_dir(tar, "data")
        _add_dir(tar, f"data/{assembly}")
        _add(tar, f"data/{assembly}/.PCGR_BUNDLE_VERSION", f"{version_in_file or bundle_version}\n".encode())
        _add_dir(tar, f"data/{assembly}/variant")
        _add(tar, f"data/{assembly}/variant/clinvar.tsv.gz", _filler(f"{bundle_version}{assembly}", payload))
        _add_dir(tar, f"data/{assembly}/variant/vcf")
        _add_dir(tar, f"data/{assembly}/variant/vcf/clinvar")
        vcf = f"##fileformat=VCFv4.2\n##source=ClinVar (test bundle {bundle_version})\n"
        vcf += "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        _add(tar, f"data/{assembly}/variant/vcf/clinvar/clinvar.vcf.gz", gzip.compress(vcf.encode(), mtime=0))
    return path


def write_vep(path: Path, vep_version: int, assembly: str, *, payload: int = 128 * 1024) -> Path:
    """`homo_sapiens_vep_<v>_<ASM>.tar.gz`: the indexed cache tree `homo_sapiens/<v>_<ASM>/`."""
    asm = "GRCh38" if assembly == "grch38" else "GRCh37"
    top = f"homo_sapiens/{vep_version}_{asm}"
    with _tgz(path) as tar:
        _add_dir(tar, "homo_sapiens")
        _add_dir(tar, top)
        _add(tar, f"{top}/info.txt", f"source_assembly\t{asm}\nversion\t{vep_version}\n".encode())
        _add_dir(tar, f"{top}/1")
        _add(tar, f"{top}/1/all_vars.gz", _filler(f"vep{vep_version}{asm}", payload))
    return path


def build_artifacts(
    directory: Path, release: Release, assemblies: tuple[str, ...] = ("grch38",), **sizes: int
) -> dict[str, Path]:
    """Every artifact `release` needs for `assemblies`, named as the catalogue names them."""
    directory.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for assembly in assemblies:
        bundle = release.bundle.assemblies[assembly]
        out[bundle.filename] = write_bundle(
            directory / bundle.filename,
            release.bundle.version,
            assembly,
            payload=sizes.get("bundle_payload", 256 * 1024),
        )
        if not release.vep.in_bundle:
            vep = release.vep.assemblies[assembly]
            out[vep.filename] = write_vep(
                directory / vep.filename,
                release.vep.version,
                assembly,
                payload=sizes.get("vep_payload", 128 * 1024),
            )
    return out


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def make_test_catalogue(
    target: Path,
    base_url: str,
    artifacts_dir: Path,
    *,
    versions: tuple[str, ...] | None = None,
    current: str | None = None,
    known_checksums: bool = True,
    sha_override: dict[str, str] | None = None,
    source: Path | None = None,
) -> Path:
    """A copy of the real catalogue pointing at `base_url`, with the local files' sizes and sha256.

    Keeps only `versions` (all by default), moves `current` if asked, and leaves sha256 empty
    when `known_checksums` is false (upstream's situation). `sha_override` forces a (wrong) sum.
    """
    raw: dict[str, Any] = yaml.safe_load((source or default_path()).read_text())
    releases = [r for r in raw["releases"] if versions is None or r["version"] in versions]
    for rel in releases:
        if current is not None:
            rel["current"] = rel["version"] == current
        for part in ("bundle", "vep"):
            for art in rel[part].get("assemblies", {}).values():
                name = art["url"].rsplit("/", 1)[1]
                art["url"] = f"{base_url.rstrip('/')}/{name}"
                local = artifacts_dir / name
                if local.exists():
                    art["size"] = local.stat().st_size
                    art["sha256"] = sha256_of(local) if known_checksums else ""
                if sha_override and name in sha_override:
                    art["sha256"] = sha_override[name]
    raw["releases"] = releases
    target.write_text(yaml.safe_dump(raw, sort_keys=False))
    return target


# ---------------------------------------------------------------------------------------------
# HTTP with Range
# ---------------------------------------------------------------------------------------------


@dataclass
class ServeStats:
    bytes_served: Counter[str] = field(default_factory=Counter)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, Range header or "")
    lock: threading.Lock = field(default_factory=threading.Lock)


class ArtifactServer:
    """Serve `root` on 127.0.0.1:<free port> with single-range support and fault injection.

    `drop_after[name] = n` makes the next response for `name` stop after n bytes of its body
    and close the connection (once). `bytes_served[name]` counts body bytes actually sent.
    """

    def __init__(self, root: Path, port: int = 0, throttle_bps: int = 0) -> None:
        self.root = root
        self.stats = ServeStats()
        self.drop_after: dict[str, int] = {}
        self.throttle_bps = throttle_bps
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def do_HEAD(self) -> None:
                self._serve(head=True)

            def do_GET(self) -> None:
                self._serve(head=False)

            def _serve(self, head: bool) -> None:
                name = self.path.split("?", 1)[0].lstrip("/")
                path = server.root / name
                if "/" in name or not path.is_file():
                    self.send_error(404)
                    return
                size = path.stat().st_size
                start, end = 0, size - 1
                rng = self.headers.get("Range", "")
                with server.stats.lock:
                    server.stats.requests.append((name, rng))
                status = 200
                if rng:
                    m = _RANGE.match(rng)
                    if not m or int(m.group(1)) >= size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    start = int(m.group(1))
                    end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                    status = 206
                length = end - start + 1
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(length))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.end_headers()
                if head:
                    return
                with server.stats.lock:
                    limit = server.drop_after.pop(name, None)
                sent = 0
                with open(path, "rb") as fh:
                    if limit is None and not server.throttle_bps:
                        # The common case at kernel speed, so a benchmark measures the client.
                        self.wfile.flush()
                        try:
                            sent = self.connection.sendfile(fh, start, length)
                        except (BrokenPipeError, ConnectionResetError):
                            return
                        finally:
                            with server.stats.lock:
                                server.stats.bytes_served[name] += sent
                        return
                    fh.seek(start)
                    while sent < length:
                        want = min(1 << 16, length - sent)
                        if limit is not None:
                            want = min(want, limit - sent)
                            if want <= 0:
                                self.close_connection = True
                                self.wfile.flush()
                                self.connection.shutdown(socket.SHUT_RDWR)
                                return
                        chunk = fh.read(want)
                        try:
                            self.wfile.write(chunk)
                        except (BrokenPipeError, ConnectionResetError):
                            return
                        sent += len(chunk)
                        with server.stats.lock:
                            server.stats.bytes_served[name] += len(chunk)
                        if server.throttle_bps:
                            time.sleep(len(chunk) / server.throttle_bps)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def bytes_served(self) -> Counter[str]:
        return self.stats.bytes_served

    def start(self) -> ArtifactServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ArtifactServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def iter_files(root: Path) -> Iterator[Path]:
    yield from sorted(p for p in root.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    """`python -m capillary.local.artifacts --dir D --catalogue-out F [--port P] [--versions 2.2.5,2.3.2]`

    Builds the artifacts of the chosen releases into D, serves D until SIGTERM, and writes a
    catalogue pointing at the server to F (for Molecule, which cannot run pytest fixtures).
    """
    import argparse
    import signal

    from capillary.release.catalogue import load_catalogue

    p = argparse.ArgumentParser(prog="python -m capillary.local.artifacts")
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--catalogue-out", type=Path, required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--versions", default="")
    p.add_argument("--current", default="")
    p.add_argument("--assemblies", default="grch38")
    p.add_argument("--lifetime", type=float, default=0, help="exit after this many seconds (0: never)")
    args = p.parse_args(argv)
    catalogue = load_catalogue()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    versions = tuple(v for v in args.versions.split(",") if v) or (catalogue.current.version,)
    for version in versions:
        build_artifacts(args.dir, catalogue.release(version), tuple(args.assemblies.split(",")))
    server = ArtifactServer(args.dir, port=args.port).start()
    make_test_catalogue(
        args.catalogue_out, server.base_url, args.dir, versions=versions, current=args.current or versions[-1]
    )
    print(server.base_url, flush=True)
    stop.wait(args.lifetime or None)
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
