"""`tusserver --storage azure --azure-account-url URL` with neither key nor SAS: DefaultAzureCredential (Entra ID),
and concatenation's user delegation SAS (`SourceSigner` in storage_backends/azure/auth.py), against a real Azurite,
with nothing beyond 127.0.0.1.

- Azurite runs with `--oauth basic` over HTTPS (tests/tls.py's self-signed certificate; the server trusts it
  through SSL_CERT_FILE, which the default SSL context of aiohttp under azure-core loads). It checks a bearer
  token's issuer, audience and lifetime, not its signature (`OAuthAzurite` in tests/azure_server.py).
- The token comes from DefaultAzureCredential's managed identity source, App Service flavour: IDENTITY_ENDPOINT
  and IDENTITY_HEADER name a token server run by the test (`IdentityEndpoint`), which answers
  `GET ?api-version=2019-08-01&resource=https://storage.azure.com` (header `X-IDENTITY-HEADER`) with an unsigned
  JWT. The sources before it in the chain are kept out (no AZURE_* variable), and as it succeeds, the ones after
  it (shared token cache, Azure CLI, ...) are never asked.
- What the server stored is read straight from Azurite with the account key; which requests Azurite got (the
  user delegation key, the SAS on each partial's read) comes from its access log.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

from tests.azure_server import ACCOUNT, OAuthAzurite
from tests.e2e.helpers import IO_TIMEOUT, TUS, MiB, StartServer, create_upload, patch, upload_id, wait_until
from tests.e2e.test_azure_e2e import start_up_failure
from tests.json_server import JsonServer
from tests.tls import self_signed_certificate

pytestmark = pytest.mark.e2e

CONTAINER = "entra"
TENANT = "72f988bf-0000-4000-8000-000000000001"
OBJECT_ID = "0f1e2d3c-0000-4000-8000-000000000002"
IDENTITY_HEADER = "identity-header-secret"
STORAGE_RESOURCE = "https://storage.azure.com"
GOOD_CLAIMS = {"iss": f"https://sts.windows.net/{TENANT}/", "aud": STORAGE_RESOURCE, "oid": OBJECT_ID, "tid": TENANT}
# What would let another credential in, or send requests elsewhere: the server must see none of it.
FOREIGN = ("AZURE_", "IDENTITY_", "MSI_", "IMDS_")
PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """A JWT with `claims` and no signature (alg none): Azurite's basic OAuth reads it without verifying."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def token_claims(overrides: dict[str, Any]) -> dict[str, Any]:
    now = int(time.time())
    return GOOD_CLAIMS | {"iat": now, "nbf": now - 60, "exp": now + 3600} | overrides


@dataclass
class IdentityEndpoint:
    """App Service's managed identity endpoint, as azure-identity 1.27 calls it (`_credentials/app_service.py`):
    GET with `api-version` and `resource`, the secret in `X-IDENTITY-HEADER`; the answer is JSON with
    `access_token`, `expires_on` (epoch seconds), `resource` and `token_type`. Records every request."""

    claims: dict[str, Any] = field(default_factory=dict)  # overrides of GOOD_CLAIMS
    requests: list[tuple[dict[str, list[str]], str | None]] = field(default_factory=list)  # (query, header)
    server: JsonServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"{self.server.origin}/msi/token"

    def start(self) -> None:
        self.server = JsonServer(self._answer)
        self.server.start()

    def _answer(self, path: str, headers: Message) -> tuple[int, dict[str, str]]:
        query = parse_qs(urlsplit(path).query)
        self.requests.append((query, headers.get("X-IDENTITY-HEADER")))
        claims = token_claims({"aud": query["resource"][0]} | self.claims)
        return 200, {"access_token": unsigned_jwt(claims), "expires_on": str(claims["exp"]),
                     "resource": query["resource"][0], "token_type": "Bearer"}  # fmt: skip

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


@dataclass(frozen=True)
class Secured:
    """The HTTPS Azurite with OAuth, its certificate and a key client that trusts it."""

    azurite: OAuthAzurite
    cert: Path

    def key_client(self) -> BlobServiceClient:
        connection_string = self.azurite.connection_string
        return BlobServiceClient.from_connection_string(connection_string, connection_verify=str(self.cert))

    def log_since(self, offset: int) -> str:
        return self.azurite.log_path.read_bytes()[offset:].decode(errors="replace")

    def log_size(self) -> int:
        return self.azurite.log_path.stat().st_size


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    directory = tmp_path_factory.mktemp("azurite-oauth")
    cert, key = self_signed_certificate(directory)
    azurite = OAuthAzurite(directory, cert=cert, key=key)
    azurite.start()
    try:
        secured = Secured(azurite, cert)
        with secured.key_client() as service:
            service.create_container(CONTAINER)
        yield secured
    finally:
        azurite.stop()


@pytest.fixture
def identity(monkeypatch: pytest.MonkeyPatch, secured: Secured) -> Iterator[IdentityEndpoint]:
    """A token server, named in the environment the server is started with (see the module docstring)."""
    endpoint = IdentityEndpoint()
    endpoint.start()
    for name in list(os.environ):
        if name.upper().startswith(FOREIGN) or name.upper() in PROXIES:
            monkeypatch.delenv(name)
    monkeypatch.setenv("IDENTITY_ENDPOINT", endpoint.url)
    monkeypatch.setenv("IDENTITY_HEADER", IDENTITY_HEADER)
    monkeypatch.setenv("SSL_CERT_FILE", str(secured.cert))
    yield endpoint
    endpoint.stop()


def entra_flags(secured: Secured, prefix: str) -> tuple[str, ...]:
    """The README's Entra ID command: an account URL and a container, nothing else."""
    return ("--storage", "azure", "--azure-account-url", secured.azurite.account_url,
            "--azure-container", CONTAINER, "--azure-prefix", prefix)  # fmt: skip


def check_tokens_came_from(identity: IdentityEndpoint) -> None:
    assert identity.requests, "the server asked no token of the managed identity endpoint"
    for query, header in identity.requests:
        assert header == IDENTITY_HEADER
        assert (query["api-version"], query["resource"]) == (["2019-08-01"], [STORAGE_RESOURCE])


# --- 1. an upload through DefaultAzureCredential -------------------------------------------------------------


@pytest.mark.parametrize("asgi_server", ["uvicorn"])  # the credential is the storage's, whatever serves HTTP
def test_upload_with_default_azure_credential_is_byte_exact(
    start_server: StartServer, secured: Secured, identity: IdentityEndpoint
) -> None:
    prefix = f"upload-{uuid.uuid4().hex}/"
    server = start_server(*entra_flags(secured, prefix), "--azure-block-size", "1M")
    data = os.urandom(10 * MiB + 4)  # several blocks and a partial one
    location = create_upload(server, len(data))
    for start, end in [(0, MiB + 3), (MiB + 3, 7 * MiB), (7 * MiB, len(data))]:
        response = patch(location, start, data[start:end])
        assert (response.status_code, response.headers["Upload-Offset"]) == (204, str(end)), response.text
    with secured.key_client() as service:
        stored = service.get_blob_client(CONTAINER, prefix + upload_id(location)).download_blob().readall()
    assert stored == data
    check_tokens_came_from(identity)


README = Path(__file__).parents[2] / "README.md"


def readme_account_url_words() -> list[str]:
    """The README's "Azure Blob storage" line that runs on an account URL alone (DefaultAzureCredential)."""
    section = README.read_text().split("\n## Azure Blob storage\n", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    (line,) = [line for line in block.splitlines() if "--azure-account-url" in line]
    return shlex.split(line)


@pytest.mark.parametrize("asgi_server", ["uvicorn"])
def test_readme_account_url_line_runs_on_default_azure_credential(
    start_server: StartServer, secured: Secured, identity: IdentityEndpoint
) -> None:
    """The README's line, its placeholder account URL replaced by this Azurite's (the container is its `uploads`)."""
    words = readme_account_url_words()
    assert words[:2] == ["tusserver", "--storage"], words
    account_url = secured.azurite.account_url
    arguments = [account_url if word == "https://ACCOUNT.blob.core.windows.net" else word for word in words[1:]]
    assert account_url in arguments, words
    assert arguments[-2:] == ["--azure-container", "uploads"], words
    with secured.key_client() as service:
        if not service.get_container_client("uploads").exists():
            service.create_container("uploads")
    server = start_server(*arguments)
    data = os.urandom(MiB + 9)
    location = create_upload(server, len(data))
    assert patch(location, 0, data).status_code == 204
    with secured.key_client() as service:
        assert service.get_blob_client("uploads", upload_id(location)).download_blob().readall() == data
    check_tokens_came_from(identity)


# --- 2. concatenation: partials read through a user delegation SAS ---------------------------------------------

SAS_READ = re.compile(r'"GET /devstoreaccount1/(?P<path>[^?" ]+)\?(?P<query>\S+) HTTP/1\.1" (?P<status>\d+) ')
DELEGATION_KEY = '"POST /devstoreaccount1/?restype=service&comp=userdelegationkey HTTP/1.1" 200 '


@pytest.mark.parametrize("asgi_server", ["uvicorn"])
def test_concatenation_reads_partials_through_a_user_delegation_sas(
    start_server: StartServer, secured: Secured, identity: IdentityEndpoint
) -> None:
    """Three partials (odd sizes, one of 1 byte) joined by Put Block From URL: the final blob is byte-exact, the
    server got one user delegation key, and Azurite read every partial through a SAS signed with it (`skoid` and
    `sktid` are the token's `oid` and `tid`; Azurite recomputes the signature, see the next test)."""
    prefix = f"concat-{uuid.uuid4().hex}/"
    server = start_server(*entra_flags(secured, prefix), "--azure-block-size", "1M")
    log_start = secured.log_size()
    parts = [os.urandom(size) for size in (2 * MiB + 5, 1, MiB - 3)]
    locations = []
    for part in parts:
        location = create_upload(server, len(part), {"Upload-Concat": "partial"})
        response = patch(location, 0, part)
        assert response.status_code == 204, response.text
        locations.append(location)
    final = requests.post(
        server.url,
        headers=TUS | {"Upload-Concat": "final;" + " ".join(urlsplit(url).path for url in locations)},
        timeout=IO_TIMEOUT,
    )
    assert final.status_code == 201, final.text
    final_name = prefix + upload_id(final.headers["Location"])
    with secured.key_client() as service:
        assert service.get_blob_client(CONTAINER, final_name).download_blob().readall() == b"".join(parts)

    partial_paths = {f"{CONTAINER}/{quote(prefix + upload_id(url), safe='/~')}" for url in locations}

    def sas_reads() -> dict[str, tuple[dict[str, list[str]], str]]:
        found = (match for match in SAS_READ.finditer(secured.log_since(log_start)))
        return {match["path"]: (parse_qs(match["query"]), match["status"]) for match in found}

    # Azurite writes a request's log line as its answer ends: before the Put Block From URL that read it answers.
    wait_until(lambda: partial_paths <= sas_reads().keys(), what="Azurite's reads of the partials", timeout=5)
    for path in partial_paths:
        query, status = sas_reads()[path]
        assert status in {"200", "206"}, (path, status)
        assert (query["skoid"], query["sktid"], query["sp"], query["sks"]) == ([OBJECT_ID], [TENANT], ["r"], ["b"])
    assert secured.log_since(log_start).count(DELEGATION_KEY) == 1  # fetched once, used for every partial
    check_tokens_came_from(identity)


# --- 3. what makes the two tests above mean something: Azurite does check --------------------------------------


class StaticToken:
    """A token credential handing out one token (the SDK's sync clients, in this process)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


def test_azurite_checks_user_delegation_sas_signatures(secured: Secured) -> None:
    """A user delegation SAS made by the SDK from Azurite's key reads the blob; the same SAS with another
    signature, or claiming another object id, is refused."""
    blob_name = f"checked-{uuid.uuid4().hex}"
    with secured.key_client() as service:
        service.get_blob_client(CONTAINER, blob_name).upload_blob(b"secret bytes")
    credential = StaticToken(unsigned_jwt(token_claims({})))
    with BlobServiceClient(
        secured.azurite.account_url, credential=credential, connection_verify=str(secured.cert)
    ) as service:
        now = datetime.now(UTC)
        key = service.get_user_delegation_key(now - timedelta(minutes=5), now + timedelta(hours=1))
    assert (key.signed_oid, key.signed_tid) == (OBJECT_ID, TENANT)
    sas = generate_blob_sas(ACCOUNT, CONTAINER, blob_name, user_delegation_key=key,
                            permission=BlobSasPermissions(read=True), expiry=now + timedelta(minutes=10))  # fmt: skip
    url = f"{secured.azurite.account_url}/{CONTAINER}/{blob_name}"
    assert requests.get(f"{url}?{sas}", verify=str(secured.cert), timeout=IO_TIMEOUT).content == b"secret bytes"
    forged = re.sub(r"sig=[^&]+", "sig=" + quote(base64.b64encode(b"x" * 32).decode()), sas)
    other_oid = sas.replace(f"skoid={OBJECT_ID}", "skoid=" + str(uuid.uuid4()))
    assert sas not in {forged, other_oid}
    for refused in (forged, other_oid):
        response = requests.get(f"{url}?{refused}", verify=str(secured.cert), timeout=IO_TIMEOUT)
        assert response.status_code == 403, response.text


def test_token_with_a_foreign_issuer_fails_start_up_naming_the_credentials(
    secured: Secured, identity: IdentityEndpoint, tmp_path: Path
) -> None:
    """Azurite refuses a token from an issuer that is not Entra ID's (it checks iss, aud and lifetime), and the
    server says so in one line at start-up, having taken its token from the endpoint."""
    identity.claims = {"iss": "https://login.example.com/tenant/"}
    line = start_up_failure(*entra_flags(secured, "refused/"), "--data-dir", str(tmp_path / "data"))
    assert line.startswith(f"tusserver: cannot use the Azure container {CONTAINER!r} (check the credentials)")
    check_tokens_came_from(identity)
