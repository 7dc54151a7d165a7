"""The vendored Uppy bundle is exactly what scripts/vendor-uppy.sh makes from npm (docs/internals.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
VENDORED = ROOT / "tusserver" / "ui" / "static" / "vendor" / "uppy"


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("npm") is None, reason="needs npm")
def test_the_script_reproduces_the_vendored_files(tmp_path: Path) -> None:
    version = (VENDORED / "VERSION").read_text().strip().removeprefix("uppy@")
    environ = {**os.environ, "VENDOR_DEST": str(tmp_path)}
    script = ROOT / "scripts" / "vendor-uppy.sh"
    subprocess.run([str(script), version], cwd=ROOT, env=environ, check=True, capture_output=True, timeout=120)
    made = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert made == {path.name: path.read_bytes() for path in VENDORED.iterdir()}
    assert set(made) == {"uppy.min.mjs", "uppy.min.css", "LICENSE", "VERSION", "THIRD_PARTY_LICENSES"}
