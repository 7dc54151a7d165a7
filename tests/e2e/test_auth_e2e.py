"""Issue 21 items 1-3 as a new user meets them: `tusserver` started with the README "Authorization" commands, real
clients (tus-js-client under Node, tuspy) sending bearer tokens as the README shows; tokens signed HS256 with the
shared secret, and RS256 with a key served from a local JWKS endpoint. Two users who cannot see, download, append
to or delete each other's uploads, nor join them; an admin who reaches both; 401s in the error table's form."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import requests
from tusclient.client import TusClient

from tests.auth.jwt_keys import TUS, JWKSServer, SigningKey, rsa_key, token
from tests.auth.readme import section_blocks
from tests.e2e.helpers import IO_TIMEOUT, PATCH_HEADERS, KiB, ServerProcess, StartServer, random_file, tool
from tests.e2e.hook_receiver import Answer, HookReceiver

pytestmark = pytest.mark.e2e

JS_DIR = Path(__file__).with_name("js")
NOT_FOUND = "ERR_UPLOAD_NOT_FOUND: upload not found\n"


@pytest.fixture
def asgi_server() -> str:
    return "uvicorn"  # authorization runs above the ASGI server: one of them is enough here


@pytest.fixture(scope="module")
def signer() -> SigningKey:
    return rsa_key("issuer-key-1")


@pytest.fixture
def jwks(signer: SigningKey) -> Iterator[JWKSServer]:
    server = JWKSServer()
    server.keys = [signer.jwk()]
    with server.running():
        yield server


def readme_server(start_server: StartServer, block: int, **replace: str) -> tuple[ServerProcess, dict[str, str]]:
    """Start the server as the README's `block`-th sh block of "Authorization" does, `replace`d where it names
    places that exist only there; returns it and the environment the block exported."""
    lines = section_blocks("sh")[block].strip().splitlines()
    exports = [line for line in lines if line.startswith("export ")]
    script = "\n".join([*exports, "env"])  # the block's own exports, run by a shell as written
    path = {"PATH": "/usr/bin:/bin"}
    shown = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True, env=path)
    environ = dict(line.split("=", 1) for line in shown.stdout.splitlines() if line.startswith("TUSSERVER_AUTH_"))
    command = next(line for line in lines if line.startswith("tusserver "))
    for old, new in replace.items():
        command = command.replace(old, new)
    return start_server(*shlex.split(command)[1:], env=environ), environ


def run_node(server: ServerProcess, source: Path, bearer_token: str, upload_url: str | None = None) -> dict[str, Any]:
    """Run js/auth_upload.mjs; returns its JSON report (see the script's header)."""
    assert (JS_DIR / "node_modules" / "tus-js-client").is_dir(), "run `npm ci` in tests/e2e/js"
    resume = [upload_url] if upload_url else []
    command = [tool("node"), "auth_upload.mjs", server.url, str(source), bearer_token, *resume]
    done = subprocess.run(command, cwd=JS_DIR, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"node exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def tuspy_upload(server: ServerProcess, stream: BinaryIO, bearer_token: str) -> str:
    """Upload with tuspy, its client built by the README's line."""
    namespace: dict[str, Any] = {"TusClient": TusClient, "token": bearer_token}
    exec(section_blocks("python")[0].replace("https://uploads.example.com/files/", server.url), namespace)
    uploader = namespace["client"].uploader(file_stream=stream, chunk_size=16 * KiB)
    uploader.upload()
    url: object = uploader.url
    assert isinstance(url, str)
    return url


def auth(bearer_token: str) -> dict[str, str]:
    return TUS | {"Authorization": f"Bearer {bearer_token}"}


def assert_hidden_from(url: str, bearer_token: str) -> None:
    """Every method answers `bearer_token`'s principal as for an upload that does not exist."""
    headers = auth(bearer_token)
    head = requests.head(url, headers=headers, timeout=IO_TIMEOUT)
    assert head.status_code == 404
    for method in ("GET", "PATCH", "DELETE"):
        extra = PATCH_HEADERS | {"Upload-Offset": "0"} if method == "PATCH" else {}
        body = b"x" if extra else None
        answer = requests.request(method, url, headers=headers | extra, data=body, timeout=IO_TIMEOUT)
        assert (answer.status_code, answer.text) == (404, NOT_FOUND), method


def test_readme_commands_and_clients_show_the_snippets_they_run() -> None:
    (js,) = section_blocks("js")
    script = (JS_DIR / "auth_upload.mjs").read_text()
    for line in js.strip().splitlines()[2:-1]:  # the options the README sets, but for the endpoint
        assert line.strip() in script
    assert "new Upload(file, {" in script


def test_two_users_with_hs256_tokens_and_real_clients(start_server: StartServer, tmp_path: Path) -> None:
    server, environ = readme_server(start_server, 0)
    secret = environ["TUSSERVER_AUTH_JWT_SECRET"]
    assert len(secret) == 64  # openssl rand -hex 32, as the README runs it
    ana, ben, curator = (token(secret, name) for name in ("ana", "ben", "curator"))
    source = random_file(tmp_path / "source.bin", 200 * KiB)
    report = run_node(server, source, ana)
    assert report.get("done"), report
    anas = report["url"]
    with source.open("rb") as stream:
        bens = tuspy_upload(server, stream, ben)

    assert_hidden_from(anas, ben)
    assert_hidden_from(bens, ana)
    resumed = run_node(server, source, ben, anas)  # tus-js-client resuming another's URL: its HEAD is refused
    assert (resumed["status"], resumed.get("done")) == (404, None)
    for url in (anas, bens):
        assert requests.get(url, headers=auth(curator), timeout=IO_TIMEOUT).content == source.read_bytes()
        assert requests.get(url, headers=TUS, timeout=IO_TIMEOUT).status_code == 401

    partial = requests.post(server.url, headers=auth(ana) | {"Upload-Length": "0", "Upload-Concat": "partial"},
                            timeout=IO_TIMEOUT)  # fmt: skip
    joined = requests.post(server.url, headers=auth(ben) | {"Upload-Concat": f"final;{partial.headers['Location']}"},
                           timeout=IO_TIMEOUT)  # fmt: skip
    assert (joined.status_code, joined.text) == (404, NOT_FOUND)
    assert requests.delete(anas, headers=auth(ana), timeout=IO_TIMEOUT).status_code == 204

    anonymous = requests.post(server.url, headers=TUS | {"Upload-Length": "1"}, timeout=IO_TIMEOUT)
    assert (anonymous.status_code, anonymous.headers["WWW-Authenticate"]) == (401, "Bearer")
    assert anonymous.text.startswith("ERR_UNAUTHORIZED: ")
    expired = requests.head(bens, headers=auth(token(secret, "ben", expires_in=-3600)), timeout=IO_TIMEOUT)
    (answer,) = section_blocks("text")  # the README's example refusal, header and body
    assert f"WWW-Authenticate: {expired.headers['WWW-Authenticate']}" in answer
    assert requests.get(bens, headers=auth(token(secret, "ben", expires_in=-3600)), timeout=IO_TIMEOUT).text in answer


def test_rs256_tokens_from_a_jwks_endpoint(
    start_server: StartServer, jwks: JWKSServer, signer: SigningKey, tmp_path: Path
) -> None:
    server, _ = readme_server(start_server, 1, **{"https://idp.example.com/.well-known/jwks.json": jwks.url})
    claims: dict[str, Any] = {"iss": "https://idp.example.com/", "aud": "tus"}
    ana, ben = token(signer, "ana", **claims), token(signer, "ben", **claims)
    admin = token(signer, "ops", roles=["admin"], **claims)
    source = random_file(tmp_path / "source.bin", 64 * KiB)
    with source.open("rb") as stream:
        anas = tuspy_upload(server, stream, ana)
    report = run_node(server, source, ben)
    assert report.get("done"), report
    assert_hidden_from(anas, ben)
    assert_hidden_from(report["url"], ana)
    assert requests.get(anas, headers=auth(admin), timeout=IO_TIMEOUT).content == source.read_bytes()
    for wrong in (token(signer, "ana", iss="https://idp.example.com/"), token(signer, "ana", aud="tus")):
        refused = requests.head(anas, headers=auth(wrong), timeout=IO_TIMEOUT)
        assert refused.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert jwks.fetches == 1  # fetched once, then kept


def test_a_pre_access_http_hook_names_the_owner_and_denies(start_server: StartServer, tmp_path: Path) -> None:
    """The webhook transport, as tusd's receivers are reached: pre-access is sent only when enabled by name."""
    (tmp_path / "receiver").mkdir()
    receiver = HookReceiver(tmp_path / "receiver")
    receiver.start()
    try:
        receiver.script({"pre-access": Answer(body=json.dumps({"Principal": {"ID": "lab-7"}}))})
        events = "pre-create,post-create,post-receive,post-finish,post-terminate,pre-access"
        server = start_server("--hooks-http", receiver.url, "--hooks-enabled-events", events)
        created = requests.post(server.url, headers=TUS | {"Upload-Length": "1"}, timeout=IO_TIMEOUT)
        assert created.status_code == 201
        assert requests.head(created.headers["Location"], headers=TUS, timeout=IO_TIMEOUT).status_code == 200
        creation, head = receiver.received("pre-access")
        assert (creation.request["Event"]["HTTPRequest"]["Method"], creation.upload_id) == ("POST", "")
        assert (head.upload["Owner"], head.upload["State"]) == ("lab-7", "uploading")
        denial = {"RejectAccess": True, "HTTPResponse": {"StatusCode": 401, "Body": "no\n", "Header": {"X-Why": "no"}}}
        receiver.script({"pre-access": Answer(body=json.dumps(denial))})
        refused = requests.head(created.headers["Location"], headers=TUS, timeout=IO_TIMEOUT)
        assert (refused.status_code, refused.headers["X-Why"]) == (401, "no")
    finally:
        receiver.stop()
