"""Package the `capillary` package as a Lambda zip, byte-for-byte reproducible.

Same sources, same zip: fixed timestamps and permissions, sorted entries. So the intake role's
Lambda task sees an unchanged code hash on a re-run and reports no change. Only the modules the
handler imports go in (`HANDLER_FILES`), so work elsewhere in the package never redeploys it.
boto3 is provided by the Lambda runtime; the handler needs nothing else.

    python -m capillary.intake.lambda_package DEST.zip   # prints "changed" or "unchanged"
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import capillary

_EPOCH = (1980, 1, 1, 0, 0, 0)
# The handler's import closure (tests/unit/test_lambda_package.py proves it is closed).
HANDLER_FILES = (
    "__init__.py",
    "contract/__init__.py",
    "contract/message.py",
    "contract/samples.py",
    "contract/vocabulary.py",
    "intake/__init__.py",
    "intake/data/webhook_payload.schema.json",
    "intake/handler.py",
    "logs.py",
    "py.typed",
)


def package_files(root: Path | None = None) -> list[Path]:
    """The files that go into the zip, sorted."""
    package = root or Path(capillary.__file__).resolve().parent
    return sorted(package / name for name in HANDLER_FILES)


def build_zip(root: Path | None = None) -> bytes:
    package = root or Path(capillary.__file__).resolve().parent
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in package_files(package):
            info = zipfile.ZipInfo(f"capillary/{path.relative_to(package).as_posix()}", date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def write_if_changed(dest: Path, root: Path | None = None) -> bool:
    """Write the zip to `dest` unless identical bytes are already there; True when written."""
    data = build_zip(root)
    if dest.is_file() and dest.read_bytes() == data:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(dest)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m capillary.intake.lambda_package", description=__doc__)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--source", type=Path, default=None, help="the capillary package directory")
    args = parser.parse_args(argv)
    print("changed" if write_if_changed(args.dest, args.source) else "unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
