"""The intake handler's Lambda zip: reproducible, and enough to import and run the handler."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

from capillary.intake.lambda_package import build_zip, write_if_changed


def test_the_zip_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    assert build_zip() == build_zip()
    dest = tmp_path / "intake.zip"
    assert write_if_changed(dest) is True
    assert write_if_changed(dest) is False


def test_the_zip_alone_imports_the_handler(tmp_path: Path) -> None:
    # GIVEN only the zip's contents on the path (as in a Lambda runtime)
    with zipfile.ZipFile(io.BytesIO(build_zip())) as archive:
        archive.extractall(tmp_path / "lambda")
    # WHEN the runtime imports the handler THEN it resolves inside the zip, with no other module
    code = (
        "import sys, capillary.intake.handler as i; "
        "assert i.__file__.startswith(sys.argv[1]), i.__file__; "
        "mods = sorted(m for m in sys.modules if m.startswith('capillary')); print(mods); "
        "assert callable(i.handler)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "lambda")],
        env={"PYTHONPATH": str(tmp_path / "lambda"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "capillary.intake.handler" in result.stdout
    # AND the work message it writes comes from the contract, inside the zip too
    assert "capillary.contract.message" in result.stdout
