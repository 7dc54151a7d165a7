"""Every command and program of the README's "Python client and command line" section runs, as written, against a
real tusserver (its URL put in place of http://127.0.0.1:8080/files/, an upload's id in place of `<id>`)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.e2e.helpers import ServerProcess, clean_environ, random_file

REPO = Path(__file__).resolve().parents[2]
README_URL = "http://127.0.0.1:8080/files/"
MiB = 1024 * 1024


def section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("\n## Python client and command line\n")
    return text[start : text.index("\n## ", start + 1)]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def test_the_install_line_names_the_client_extra() -> None:
    (install,) = blocks(section(), "sh")[0].splitlines()
    assert install == "pip install 'tusserver[client]'"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert [requirement.split(">")[0] for requirement in extras["client"]] == ["httpx"]


def test_every_command_and_program_of_the_section_runs(
    tus_server: ServerProcess, tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    genome = random_file(tmp_path / "genome.fastq.gz", 3 * MiB)
    (tmp_path / "dataset" / "run1").mkdir(parents=True)
    random_file(tmp_path / "dataset" / "run1" / "a.csv", 40 * MiB)  # large enough for parallel parts
    random_file(tmp_path / "dataset" / "notes.txt", 100)
    environ = clean_environ({"TUSSERVER_CLIENT_STORE": str(store), "TOKEN": "t0k3n"})
    environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environ['PATH']}"
    commands = [line for block in blocks(section(), "sh")[1:] for line in block.splitlines() if line.strip()]
    assert len(commands) == 5
    upload_id = ""
    for written in commands:
        command = written.replace(README_URL, tus_server.url).replace("<id>", upload_id)
        done = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, env=environ, cwd=tmp_path, timeout=60, check=False
        )
        assert done.returncode == 0, f"{command}\n{done.stderr}"
        if not upload_id:  # the first command uploads genome.fastq.gz: its id serves the downloads
            upload_id = done.stdout.split("\t")[0].rsplit("/", 1)[-1]
    assert (tmp_path / "genome-copy.fastq.gz").read_bytes() == genome.read_bytes()
    assert (tmp_path / "downloads" / "genome.fastq.gz").read_bytes() == genome.read_bytes()

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUSSERVER_CLIENT_STORE", str(store))
    (tmp_path / "genome-copy.fastq.gz").unlink()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for program in blocks(section(), "python"):
            exec(compile(program.replace(README_URL, tus_server.url), "README.md", "exec"), {"__name__": "readme"})
    assert (tmp_path / "genome-copy.fastq.gz").read_bytes() == genome.read_bytes()
    lines = printed.getvalue().splitlines()
    assert lines[0].startswith(f"{tus_server.url}{upload_id} xxh128 ")  # the store knew the upload: the same URL
    assert f"{tus_server.url[:-1]}" in lines[-1]
    assert lines[-1].endswith("dataset/run1/a.csv") or lines[-1].endswith("dataset/notes.txt")
    assert any(line.endswith(f"{40 * MiB} of {40 * MiB} bytes") for line in lines)
