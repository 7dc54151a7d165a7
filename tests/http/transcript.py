"""Protocol transcripts: each HTTP step declared as data, in the style of tusd's httpTest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import httpx

TUS = {"Tus-Resumable": "1.0.0"}
PATCH_HEADERS = TUS | {"Content-Type": "application/offset+octet-stream"}


@dataclass(frozen=True)
class Exchange:
    """One request and what its response must show.

    `{location}` in the URL is replaced by the Location of the latest 201 in the transcript.
    `expect_headers` values of None assert that the header is absent.
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    expect: int = 200
    expect_headers: Mapping[str, str | None] = field(default_factory=dict)
    expect_code: str | None = None


async def run(client: httpx.AsyncClient, exchanges: Sequence[Exchange]) -> list[httpx.Response]:
    """Send each exchange in order, asserting its status, headers and error code."""
    location = ""
    answers: list[httpx.Response] = []
    for step, exchange in enumerate(exchanges):
        url = exchange.url.replace("{location}", location)
        response = await client.request(exchange.method, url, headers=dict(exchange.headers), content=exchange.body)
        context = f"step {step}: {exchange.method} {url} -> {response.status_code} {response.text!r}"
        assert response.status_code == exchange.expect, context
        for name, value in exchange.expect_headers.items():
            assert response.headers.get(name) == value, f"{context}: header {name}"
        if exchange.expect_code is not None:
            assert error_code(response) == exchange.expect_code, context
        if response.status_code == 201:
            location = response.headers["location"]
        answers.append(response)
    return answers


def error_code(response: httpx.Response) -> str:
    """The error code of a tus error response ("ERR_...: reason")."""
    return response.text.split(":", 1)[0]


async def create(client: httpx.AsyncClient, length: int | None = None, **headers: str) -> str:
    """POST a new upload (deferred length if `length` is None) and return its Location."""
    length_header = {"Upload-Length": str(length)} if length is not None else {"Upload-Defer-Length": "1"}
    response = await client.post("/files/", headers=TUS | length_header | headers)
    assert response.status_code == 201, response.text
    return response.headers["location"]
