"""Issue 23, packaging: the licence ships, the build-system bound builds, and the wheel installs into a fresh virtual
environment whose `tusserver` runs. The build works on a copy of what the sdist and the Dockerfile take, so nothing
else in the tree is needed and nothing is written into it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["pyproject.toml", "README.md", "LICENSE", "tusserver", "storage_backends"]  # the Dockerfile's COPY too


def run(*command: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_licence_file_is_the_one_the_metadata_names() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert (project["license"], project["license-files"]) == ("MIT", ["LICENSE"])
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")


@pytest.mark.timeout(240)
def test_the_wheel_builds_and_installs_into_a_fresh_environment(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    # With build isolation: the build-system requirement (setuptools>=77) is fetched, as any user's pip does.
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, source)
    (wheel,) = wheels.glob("tusserver-*.whl")
    run(sys.executable, "-m", "venv", tmp_path / "venv")
    python = tmp_path / "venv" / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", wheel)
    version = run(tmp_path / "venv" / "bin" / "tusserver", "--version", cwd=tmp_path)
    assert version == f"tusserver {wheel.name.split('-')[1]}\n"
    listing = "import importlib.metadata as m; print(*m.files('tusserver'), sep='\\n')"
    files = run(python, "-c", listing, cwd=tmp_path).split()  # not in the checkout: its egg-info would answer
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in files)
    assert "tusserver/ui/static/index.html" in files  # package data: the upload page
