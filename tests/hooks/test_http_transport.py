"""HTTP(S) hooks (tusserver/coordination/hooks/http.py) against a real receiver: uvicorn in this process, on a
free loopback port, running an ASGI app that records each request and answers what the test scripted.

Failures are provoked for real: a receiver that answers 500, a closed port, a receiver that never answers,
garbage, an answer past the cap. Timeouts and backoffs are a fraction of a second, so each failure is
also checked to come within a bound.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from tests.server_process import free_ports
from tests.tls import self_signed_certificate
from tusserver.coordination.hooks.dispatch import HookFailedError
from tusserver.coordination.hooks.http import MAX_RESPONSE, HTTPHooks, _checked_url
from tusserver.coordination.hooks.model import (
    HookEventData,
    HookHTTPRequest,
    HookHTTPResponse,
    HookRequest,
    HookResponse,
    HookUpload,
)

pytestmark = pytest.mark.anyio

FAST = {"timeout": 2.0, "backoff": 0.01}  # failures come within a second or two, not tusd's minute
BOUND = 5.0  # seconds any single invoke may take here


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    hang: bool = False  # never answer (until the receiver stops)
    drip: float = 0.0  # seconds between the body's bytes, sent one at a time


@dataclass
class Received:
    headers: list[tuple[str, str]]  # names lower-cased by uvicorn
    body: bytes
    client_port: int

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records each request and answers the scripted answers in turn; the last one repeats."""

    answers: list[Answer] = field(default_factory=lambda: [Answer()])
    received: list[Received] = field(default_factory=list)
    released: anyio.Event = field(default_factory=anyio.Event)
    url: str = ""

    def script(self, *answers: Answer) -> None:
        self.answers = list(answers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        headers = [(name.decode(), value.decode()) for name, value in scope["headers"]]
        self.received.append(Received(headers, body, scope["client"][1]))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if answer.hang:
            await self.released.wait()
        start = {"type": "http.response.start", "status": answer.status}
        await send(start | {"headers": [(b"content-type", answer.content_type.encode())]})
        if answer.drip:
            for byte in answer.body:
                await send({"type": "http.response.body", "body": bytes([byte]), "more_body": True})
                with anyio.move_on_after(answer.drip):
                    await self.released.wait()  # stop dripping once the receiver stops
        await send({"type": "http.response.body", "body": b"" if answer.drip else answer.body})


@asynccontextmanager
async def serving(app: Receiver, **ssl: str) -> AsyncIterator[int]:
    """uvicorn running `app` on a free port of 127.0.0.1 (TLS with `ssl_certfile`/`ssl_keyfile`)."""
    server = uvicorn.Server(uvicorn.Config(app=app, lifespan="off", log_level="warning", **ssl))  # type: ignore[arg-type]
    with socket.create_server(("127.0.0.1", 0)) as listener:
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, [listener])
            try:
                yield listener.getsockname()[1]
            finally:
                app.released.set()  # uvicorn waits for requests in progress before it stops
                server.should_exit = True


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    app = Receiver()
    async with serving(app) as port:
        app.url = f"http://127.0.0.1:{port}/hooks?token=s3cret"
        yield app


HooksFactory = Callable[..., HTTPHooks]


@pytest.fixture
async def make_hooks() -> AsyncIterator[HooksFactory]:
    """HTTPHooks(url, **options), each closed at the end of the test."""
    made: list[HTTPHooks] = []

    def make(url: str, **options: Any) -> HTTPHooks:
        made.append(HTTPHooks(url, **options))
        return made[-1]

    yield make
    for hooks in made:
        await hooks.aclose()


def hook_request(*, event_id: str = "evt-1", header: dict[str, list[str]] | None = None) -> HookRequest:
    upload = HookUpload(ID="abc", Size=11, Offset=5, MetaData={"filename": "a.txt"}, Storage={"Type": "filestore"})
    http = HookHTTPRequest(
        Method="PATCH", URI="/files/abc", RemoteAddr="127.0.0.1:5000", Header=header or {"Tus-Resumable": ["1.0.0"]}
    )
    return HookRequest(Type="post-receive", EventID=event_id, Event=HookEventData(Upload=upload, HTTPRequest=http))


async def timed(call: Awaitable[HookResponse]) -> HookResponse:
    with anyio.fail_after(BOUND):
        return await call


async def fails(call: Awaitable[HookResponse], match: str) -> HookFailedError:
    with anyio.fail_after(BOUND), pytest.raises(HookFailedError, match=match) as caught:
        await call
    assert "\n" not in str(caught.value)
    return caught.value


# --- what is sent ---------------------------------------------------------------------------------------------


async def test_the_event_is_posted_as_tusd_json(receiver: Receiver, make_hooks: HooksFactory) -> None:
    header = {"Tus-Resumable": ["1.0.0"], "Host": ["localhost:8080"], "X-Twice": ["a", "b"]}
    await timed(make_hooks(receiver.url).invoke(hook_request(header=header)))
    [sent] = receiver.received
    assert sent.values("content-type") == ["application/json"]
    body = sent.json()
    assert (body["Type"], body["EventID"]) == ("post-receive", "evt-1")
    assert body["Event"]["Upload"] | {"MetaData": None} == {
        "ID": "abc", "Size": 11, "SizeIsDeferred": False, "Offset": 5, "MetaData": None, "IsPartial": False,
        "IsFinal": False, "PartialUploads": None, "Storage": {"Type": "filestore"}, "Owner": None, "State": None,
    }  # fmt: skip
    assert body["Event"]["Upload"]["MetaData"] == {"filename": "a.txt"}
    assert body["Event"]["HTTPRequest"] == {
        "Method": "PATCH", "URI": "/files/abc", "RemoteAddr": "127.0.0.1:5000", "Header": header
    }  # fmt: skip


async def test_the_event_id_is_sent_as_idempotency_key(receiver: Receiver, make_hooks: HooksFactory) -> None:
    hooks = make_hooks(receiver.url)
    await timed(hooks.invoke(hook_request(event_id="evt-42")))
    await timed(hooks.invoke(hook_request(event_id="")))
    assert [sent.values("idempotency-key") for sent in receiver.received] == [["evt-42"], []]


async def test_named_client_headers_are_forwarded_with_all_their_values(
    receiver: Receiver, make_hooks: HooksFactory
) -> None:
    header = {"Authorization": ["Bearer t0ken"], "Cookie": ["a=1", "b=2"], "X-Other": ["not asked for"]}
    hooks = make_hooks(receiver.url, forward_headers=["authorization", "Cookie", "X-Absent"])
    await timed(hooks.invoke(hook_request(header=header)))
    [sent] = receiver.received
    assert sent.values("authorization") == ["Bearer t0ken"]
    assert sent.values("cookie") == ["a=1", "b=2"]
    assert sent.values("x-other") == sent.values("x-absent") == []


async def test_url_credentials_are_basic_auth_in_place_of_a_forwarded_one_and_never_shown(
    receiver: Receiver, make_hooks: HooksFactory
) -> None:
    receiver.script(Answer(status=500))
    url = receiver.url.replace("://", "://hooks:s3cret@")
    hooks = make_hooks(url, forward_headers=["Authorization"], retries=0, **FAST)
    failure = await fails(hooks.invoke(hook_request(header={"Authorization": ["Bearer client"]})), "answered 500")
    assert "s3cret" not in str(failure)
    [sent] = receiver.received
    assert sent.values("authorization") == ["Basic aG9va3M6czNjcmV0"]  # hooks:s3cret


async def test_one_pooled_connection_carries_consecutive_events(receiver: Receiver, make_hooks: HooksFactory) -> None:
    hooks = make_hooks(receiver.url)
    for _ in range(3):
        await timed(hooks.invoke(hook_request()))
    assert len({sent.client_port for sent in receiver.received}) == 1
    await hooks.aclose()
    await timed(hooks.invoke(hook_request()))  # after aclose, a new client
    assert len(receiver.received) == 4


# --- what is answered -----------------------------------------------------------------------------------------

TUSD_EXAMPLE = (
    b'{"HTTPResponse": {"StatusCode": 400, "Body": "no filename", "Headers": {"X-A": "b"}}, "RejectUpload": true}'
)
LOWER_CASE = b'{"rejectupload": true, "httpresponse": {"statuscode": 400, "body": "no filename"}, "Unknown": [1]}'


@pytest.mark.parametrize("body", [TUSD_EXAMPLE, LOWER_CASE], ids=["tusd-example-headers-ignored", "any-case"])
async def test_answers_are_decoded_as_go_decodes_json(
    receiver: Receiver, make_hooks: HooksFactory, body: bytes
) -> None:
    receiver.script(Answer(body=body))
    response = await timed(make_hooks(receiver.url).invoke(hook_request()))
    assert response == HookResponse(
        HTTPResponse=HookHTTPResponse(StatusCode=400, Body="no filename"), RejectUpload=True
    )


async def test_a_json_answer_is_taken_whatever_its_content_type(receiver: Receiver, make_hooks: HooksFactory) -> None:
    receiver.script(Answer(body=b'{"StopUpload": true}', content_type="text/plain"))
    response = await timed(make_hooks(receiver.url).invoke(hook_request()))
    assert response.StopUpload


@pytest.mark.parametrize("status", [200, 204])
async def test_an_empty_answer_is_an_empty_response(receiver: Receiver, make_hooks: HooksFactory, status: int) -> None:
    receiver.script(Answer(status=status, body=b""))
    assert await timed(make_hooks(receiver.url).invoke(hook_request())) == HookResponse()


async def test_an_answer_at_the_cap_is_taken_one_past_it_is_a_failure(
    receiver: Receiver, make_hooks: HooksFactory
) -> None:
    def answer_of(length: int) -> bytes:
        frame = b'{"HTTPResponse": {"Body": ""}}'
        return frame[:-3] + b"x" * (length - len(frame)) + frame[-3:]

    receiver.script(Answer(body=answer_of(1000)), Answer(body=answer_of(1001)))
    hooks = make_hooks(receiver.url, max_response=1000, retries=2, **FAST)
    assert (await timed(hooks.invoke(hook_request()))).HTTPResponse.Body == "x" * 970
    await fails(hooks.invoke(hook_request()), "answer over 1000 bytes")
    assert len(receiver.received) == 2  # not tried again: it would be as large again


def test_the_default_cap_is_64_kib() -> None:
    assert HTTPHooks("http://127.0.0.1/").max_response == MAX_RESPONSE == 64 * 1024


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"[1, 2]", b'{"RejectUpload": "maybe"}'])
async def test_garbage_fails_without_retrying(receiver: Receiver, make_hooks: HooksFactory, body: bytes) -> None:
    receiver.script(Answer(body=body))
    await fails(make_hooks(receiver.url, retries=3, **FAST).invoke(hook_request()), "not a hook response")
    assert len(receiver.received) == 1


# --- retries and failures -------------------------------------------------------------------------------------


async def test_failed_attempts_are_retried_until_one_succeeds(receiver: Receiver, make_hooks: HooksFactory) -> None:
    receiver.script(Answer(status=500), Answer(status=503), Answer(body=b'{"StopUpload": true}'))
    response = await timed(make_hooks(receiver.url, retries=3, **FAST).invoke(hook_request(event_id="evt-7")))
    assert response.StopUpload
    assert [sent.values("idempotency-key") for sent in receiver.received] == [["evt-7"]] * 3


async def test_non_2xx_after_every_retry_fails_with_the_status(receiver: Receiver, make_hooks: HooksFactory) -> None:
    receiver.script(Answer(status=500, body=b"database\ndown", content_type="text/plain"))
    failure = await fails(make_hooks(receiver.url, retries=2, **FAST).invoke(hook_request()), "answered 500")
    assert "database down" in str(failure)
    assert "3 attempts" in str(failure)
    assert "s3cret" not in str(failure)  # the query may hold the receiver's secret
    assert len(receiver.received) == 3


async def test_a_receiver_that_is_down_fails_after_the_retries(make_hooks: HooksFactory) -> None:
    [port] = free_ports(1)  # nothing listens there
    hooks = make_hooks(f"http://127.0.0.1:{port}/", retries=2, **FAST)
    await fails(
        hooks.invoke(hook_request()), r"post-receive hook at http://127\.0\.0\.1:\d+/: ConnectError.*3 attempts"
    )


async def test_a_slow_receiver_times_out_on_each_attempt(receiver: Receiver, make_hooks: HooksFactory) -> None:
    receiver.script(Answer(hang=True))
    hooks = make_hooks(receiver.url, timeout=0.3, retries=1, backoff=0.0)
    started = time.monotonic()
    await fails(hooks.invoke(hook_request()), r"no answer within 0\.3 s \(2 attempts\)")
    assert len(receiver.received) == 2
    assert time.monotonic() - started < 0.3 * 2 + 1.0


async def test_an_answer_trickling_in_is_bounded_as_a_whole(receiver: Receiver, make_hooks: HooksFactory) -> None:
    receiver.script(Answer(body=b'{"StopUpload": true}', drip=0.1))  # each byte in time, the whole in 2 s
    started = time.monotonic()
    await fails(make_hooks(receiver.url, timeout=0.5, retries=0).invoke(hook_request()), r"no answer within 0\.5 s")
    assert time.monotonic() - started < 1.5


async def test_the_backoff_separates_attempts(receiver: Receiver, make_hooks: HooksFactory) -> None:
    receiver.script(Answer(status=502))
    started = time.monotonic()
    await fails(make_hooks(receiver.url, retries=2, timeout=2.0, backoff=0.2).invoke(hook_request()), "502")
    assert time.monotonic() - started >= 0.4


def test_a_configuration_that_cannot_work_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        HTTPHooks("ftp://127.0.0.1/")
    with pytest.raises(ValueError, match="Content-Type"):
        HTTPHooks("http://127.0.0.1/", forward_headers=["Authorization", "Content-Type"])
    with pytest.raises(ValueError, match="timeout"):
        HTTPHooks("http://127.0.0.1/", timeout=0)


# --- https ----------------------------------------------------------------------------------------------------


async def test_https_receivers_are_verified_against_ssl_cert_file(
    tmp_path: Path, make_hooks: HooksFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    app = Receiver()
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    async with serving(app, ssl_certfile=str(cert), ssl_keyfile=str(key)) as port:
        url = f"https://127.0.0.1:{port}/"
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        await fails(make_hooks(url, retries=0, **FAST).invoke(hook_request()), "CERTIFICATE_VERIFY_FAILED")
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        trusting = make_hooks(url, retries=0, **FAST)
        assert await timed(trusting.invoke(hook_request())) == HookResponse()
        await trusting.aclose()  # else uvicorn's TLS close waits for an answer from the idle pooled connection
    assert len(app.received) == 1


# --- URLs -----------------------------------------------------------------------------------------------------


def test_urls_are_taken_apart_for_connecting_and_for_messages() -> None:
    target, public = _checked_url("https://us%3Aer:pa@[::1]:8443/a b/c?token=s3cret#part")
    assert (target.tls, target.host, target.port, target.authority) == (True, "::1", 8443, "[::1]:8443")
    assert target.path == "/a%20b/c?token=s3cret"
    assert public == "https://[::1]:8443/a%20b/c"
    assert target.authorization == "Basic " + base64.b64encode(b"us:er:pa").decode()
    plain, _ = _checked_url("http://Example.COM")
    assert (plain.host, plain.port, plain.authority, plain.path, plain.authorization) == (
        "example.com", 80, "example.com", "/", None
    )  # fmt: skip
    for url in ("ftp://host/", "http:///path", "http://host:port/", "https://[::1/"):
        with pytest.raises(ValueError, match="URL"):
            _checked_url(url)
