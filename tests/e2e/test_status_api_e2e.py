"""The README's "Status API" commands as a new user runs them (issue 21 item 6): `tusserver` started as
"Authorization" starts it (a shared secret, `curator` an admin) with a pre-finish hook that holds FASTA files
for review; two users upload; each curl line of the section, run by a shell with the variables it names, answers
what the section says."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.auth.jwt_keys import TUS, token
from tests.auth.readme import section_blocks
from tests.e2e.helpers import IO_TIMEOUT, PATCH_HEADERS, ServerProcess, StartServer, upload_id

pytestmark = pytest.mark.e2e

HOLD_FASTA = """
from tusserver import HookRequest, HookResponse


async def pre_finish(request: HookRequest) -> HookResponse:
    held = request.Event.Upload.MetaData.get("filename", "").endswith(".fasta")
    return HookResponse(HoldUpload=held, Reason="awaiting review" if held else "")
"""


@pytest.fixture
def asgi_server() -> str:
    return "uvicorn"  # the API runs above the ASGI server: one of them is enough here


def readme_commands(server: ServerProcess) -> list[str]:
    """Every command line of the section's sh blocks, aimed at `server`."""
    lines = [line for block in section_blocks("sh", "Status API") for line in block.strip().splitlines()]
    return [line.replace("http://localhost:8080", server.origin) for line in lines]


def shell(command: str, **variables: str) -> Any:
    """Run `command` as the README shows it, with `variables` set; its output as JSON, else as text."""
    done = subprocess.run(
        ["bash", "-c", command],
        env={"PATH": "/usr/bin:/bin", **variables},
        capture_output=True,
        text=True,
        timeout=IO_TIMEOUT,
        check=True,
    )
    try:
        return json.loads(done.stdout)
    except ValueError:
        return done.stdout


def upload(server: ServerProcess, user_token: str, data: bytes, metadata: str = "") -> str:
    headers = TUS | {"Authorization": f"Bearer {user_token}", "Upload-Length": str(len(data))}
    if metadata:
        headers["Upload-Metadata"] = metadata
    created = requests.post(server.url, headers=headers, timeout=IO_TIMEOUT)
    assert created.status_code == 201, created.text
    location: str = created.headers["location"]
    if data:
        headers = TUS | PATCH_HEADERS | {"Authorization": f"Bearer {user_token}", "Upload-Offset": "0"}
        assert requests.patch(location, headers=headers, data=data, timeout=IO_TIMEOUT).status_code == 204
    return location


def test_readme_status_api_commands(start_server: StartServer, tmp_path: Path) -> None:
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / "review.py").write_text(HOLD_FASTA)
    secret = secrets.token_hex(32)  # as `openssl rand -hex 32` makes it
    environ = {"TUSSERVER_AUTH_JWT_SECRET": secret, "PYTHONPATH": str(tmp_path / "hooks")}
    server = start_server("--auth-admins", "curator", "--hooks-module", "review", env=environ)
    ana, ben, curator = (token(secret, name) for name in ("ana", "ben", "curator"))
    small = [upload(server, ana, b"") for _ in range(21)]  # empty files: finished, and accepted, at once
    fasta = upload(server, ana, b">r1\nACGT\n", "filename cmVhZHMuZmFzdGE=")  # reads.fasta
    bens = upload(server, ben, b"")

    first, following, one, held, accept, reject = readme_commands(server)
    page = shell(first, TOKEN=ana)
    assert [item["id"] for item in page["uploads"]] == [upload_id(url) for url in small[::-1][:20]]
    assert page["next_cursor"] is not None
    rest = shell(following, TOKEN=ana, NEXT_CURSOR=page["next_cursor"])
    assert ([item["id"] for item in rest["uploads"]], rest["next_cursor"]) == ([upload_id(small[0])], None)
    assert shell(first, TOKEN=ben)["uploads"][0]["id"] == upload_id(bens)  # ben's own only
    assert len(shell(first, TOKEN=ben)["uploads"]) == 1

    record = shell(one, TOKEN=ana, UPLOAD_ID=upload_id(fasta))
    assert (record["url"], record["owner"], record["state"]) == (fasta, "ana", "uploaded")
    assert (record["metadata"], record["length"], record["reason"]) == (
        {"filename": "reads.fasta"},
        9,
        "awaiting review",
    )
    assert shell(one, TOKEN=ben, UPLOAD_ID=upload_id(fasta)) == "ERR_UPLOAD_NOT_FOUND: upload not found\n"

    review = shell(held, ADMIN_TOKEN=curator)
    assert [item["id"] for item in review["uploads"]] == [upload_id(fasta)]
    assert shell(accept, ADMIN_TOKEN=curator, UPLOAD_ID=upload_id(fasta))["state"] == "accepted"
    assert shell(held, ADMIN_TOKEN=curator)["uploads"] == []
    verdict = shell(reject, ADMIN_TOKEN=curator, UPLOAD_ID=upload_id(fasta))
    assert (verdict["state"], verdict["reason"]) == ("rejected", "not a FASTA file")
    download = requests.get(fasta, headers={"Authorization": f"Bearer {ana}"}, timeout=IO_TIMEOUT)
    assert (download.status_code, download.text) == (403, "ERR_UPLOAD_REJECTED: not a FASTA file\n")
    refused = shell(reject, ADMIN_TOKEN=ana, UPLOAD_ID=upload_id(fasta))
    assert refused == "ERR_ADMIN_REQUIRED: only an admin may do this\n"
