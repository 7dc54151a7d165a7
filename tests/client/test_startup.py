"""`tusserver upload|download` start without the server: the command's entry imports the client alone.

The server's modules (Starlette, uvicorn, the app, its pipeline, coordination and serving) doubled the client's
start-up; these tests run the real entry point in a fresh interpreter, through a whole upload and a download,
and look at what it imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.helpers import ServerProcess, clean_environ, random_file

# Runs `tusserver.commands.main` (the console script's entry) as the command would, then prints its exit
# status and every module of the server that got imported.
_ENTRY = """
import json, sys
from tusserver.commands import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
server = ("starlette", "uvicorn", "granian", "tusserver.app", "tusserver.pipeline", "tusserver.coordination",
          "tusserver.serving", "tusserver.ui")
print(json.dumps([code, sorted(name for name in sys.modules if name.startswith(server))]))
"""


def run_entry(tmp_path: Path, *args: str) -> tuple[int, list[str], subprocess.CompletedProcess[str]]:
    environ = clean_environ({"TUSSERVER_CLIENT_STORE": str(tmp_path / "store.sqlite3")})
    done = subprocess.run(
        [sys.executable, "-c", _ENTRY, *args],
        capture_output=True, text=True, timeout=60, env=environ, cwd=tmp_path, check=False,
    )  # fmt: skip
    code, imported = json.loads(done.stdout.strip().splitlines()[-1])
    return code, imported, done


def test_upload_and_download_import_nothing_of_the_server(tmp_path: Path, tus_server: ServerProcess) -> None:
    source = random_file(tmp_path / "data.bin", 3 * 1024 * 1024)
    code, imported, done = run_entry(tmp_path, "upload", str(source), tus_server.url, "--quiet")
    assert (code, imported) == (0, []), done.stderr
    url = done.stdout.splitlines()[0].split("\t")[0]
    code, imported, done = run_entry(tmp_path, "download", url, str(tmp_path / "copy.bin"), "--quiet")
    assert (code, imported) == (0, []), done.stderr
    assert (tmp_path / "copy.bin").read_bytes() == source.read_bytes()


def test_the_server_command_still_runs_through_the_same_entry(tmp_path: Path) -> None:
    code, imported, done = run_entry(tmp_path, "--help")
    assert code == 0, done.stderr
    assert "tusserver.serving.cli" in imported
    assert "usage: tusserver [serve | cleanup]" in done.stdout
