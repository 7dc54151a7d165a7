"""An issuer's keys from its JWKS URL (tusserver/coordination/auth/jwks.py): fetched when needed, kept, fetched again
for an unknown kid at most once per cooldown and after the maximum age; one fetch at a time, off the event loop."""

from __future__ import annotations

import json
import threading
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from tests.auth.jwt_keys import JWKSServer, SigningKey, ec_key, token
from tusserver.coordination.auth.jwks import COOLDOWN, MAX_AGE, JWKSKeys, http_fetcher, parse_jwks
from tusserver.coordination.auth.tokens import BearerAuth
from tusserver.protocol.errors import ServiceUnavailableError, UnauthorizedError

pytestmark = pytest.mark.anyio


class Issuer:
    """A scripted JWKS document and a clock: counts fetches; `failing` makes them fail."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.failing = False
        self.now = 1000.0

    async def fetch(self) -> bytes:
        self.fetches += 1
        if self.failing:
            raise ConnectionRefusedError("the issuer is down")
        return json.dumps({"keys": [key.jwk() for key in self.keys]}).encode()

    def clock(self) -> float:
        return self.now

    def source(self) -> JWKSKeys:
        return JWKSKeys(self.fetch, clock=self.clock)


async def test_fetched_once_when_first_needed_then_kept(rsa_signer: SigningKey) -> None:
    issuer = Issuer(rsa_signer)
    source = issuer.source()
    assert issuer.fetches == 0
    for _ in range(3):
        verifier = await source.verifier("rsa-1")
        assert verifier.algorithms == ("RS256",)
    assert issuer.fetches == 1


async def test_an_unknown_kid_fetches_again_at_most_once_per_cooldown(rsa_signer: SigningKey) -> None:
    issuer = Issuer(rsa_signer)
    source = issuer.source()
    await source.verifier("rsa-1")
    rotated = ec_key("ec-2")
    issuer.keys.append(rotated)
    with pytest.raises(UnauthorizedError, match="not one of the issuer's"):
        await source.verifier("ec-2")  # within the cooldown of the first fetch: no fetch for made-up kids
    assert issuer.fetches == 1
    issuer.now += COOLDOWN
    assert (await source.verifier("ec-2")).algorithms == ("ES256",)
    assert issuer.fetches == 2
    for _ in range(3):
        with pytest.raises(UnauthorizedError):
            await source.verifier("made-up")
    assert issuer.fetches == 2


async def test_keys_are_fetched_again_after_the_maximum_age_and_withdrawn_ones_stop(rsa_signer: SigningKey) -> None:
    issuer = Issuer(rsa_signer, ec_key("ec-2"))
    source = issuer.source()
    await source.verifier("rsa-1")
    issuer.keys.pop(0)  # the issuer withdrew rsa-1
    issuer.now += MAX_AGE - 1
    await source.verifier("rsa-1")
    assert issuer.fetches == 1
    issuer.now += 1
    with pytest.raises(UnauthorizedError):
        await source.verifier("rsa-1")
    assert issuer.fetches == 2


async def test_an_issuer_that_is_down_gives_503_until_it_answers(rsa_signer: SigningKey) -> None:
    issuer = Issuer(rsa_signer)
    issuer.failing = True
    source = issuer.source()
    for _ in range(2):
        with pytest.raises(ServiceUnavailableError):
            await source.verifier("rsa-1")
    assert issuer.fetches == 1  # not hammered: once per cooldown
    issuer.failing = False
    issuer.now += COOLDOWN
    await source.verifier("rsa-1")
    assert issuer.fetches == 2


async def test_stale_keys_stay_in_use_while_the_issuer_is_down(rsa_signer: SigningKey) -> None:
    issuer = Issuer(rsa_signer)
    source = issuer.source()
    await source.verifier("rsa-1")
    issuer.failing = True
    issuer.now += MAX_AGE
    await source.verifier("rsa-1")
    await source.verifier("rsa-1")
    assert issuer.fetches == 2


async def test_a_token_without_kid_takes_the_only_key(rsa_signer: SigningKey) -> None:
    issuer = Issuer(rsa_signer)
    assert (await issuer.source().verifier(None)).algorithms == ("RS256",)
    issuer = Issuer(rsa_signer, ec_key("ec-2"))
    with pytest.raises(UnauthorizedError, match="names no key"):
        await issuer.source().verifier(None)


async def test_requests_waiting_for_one_fetch_share_it(rsa_signer: SigningKey) -> None:
    issuer = Issuer(rsa_signer)
    release = anyio.Event()
    fetch = issuer.fetch

    async def slow_fetch() -> bytes:
        await release.wait()
        return await fetch()

    source = JWKSKeys(slow_fetch, clock=issuer.clock)
    done: list[str] = []

    async def check() -> None:
        await source.verifier("rsa-1")
        done.append("ok")

    async with anyio.create_task_group() as tasks:
        for _ in range(5):
            tasks.start_soon(check)
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert (done, issuer.fetches) == (["ok"] * 5, 1)


def test_only_signing_keys_of_known_kinds_are_taken(rsa_signer: SigningKey) -> None:
    entries: list[Any] = [
        rsa_signer.jwk(),
        {"kty": "oct", "k": "c2VjcmV0", "kid": "symmetric"},  # published, anyone could sign with it
        {**ec_key("enc").jwk(), "use": "enc"},
        {"kty": "RSA", "kid": "broken"},
        {"kty": "EC", "crv": "P-999", "x": "AA", "y": "AA", "kid": "odd-curve"},
        "not a key",
    ]
    keys = parse_jwks(json.dumps({"keys": entries}).encode())
    assert [key.key_id for key in keys] == ["rsa-1"]
    for document in (b"[]", b'{"keys": {}}', b"not json"):
        with pytest.raises(ValueError):  # noqa: PT011 (json's and ours)
            parse_jwks(document)


async def test_fetched_over_http_without_stalling_the_event_loop(
    jwks_server: JWKSServer, rsa_signer: SigningKey
) -> None:
    """While the issuer takes its time, other requests (here a counter) go on: the fetch runs in a thread."""
    auth = BearerAuth(JWKSKeys(http_fetcher(jwks_server.url)))
    jwks_server.held.clear()
    ticks = 0
    started = threading.Event()

    async def tick() -> None:
        nonlocal ticks
        while not jwks_server.held.is_set():
            ticks += 1
            if ticks == 100:
                started.set()
                jwks_server.held.set()  # the issuer answers once the loop has shown it runs
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(tick)
        principal = await auth.principal(f"Bearer {token(rsa_signer, 'dave')}")
    assert principal.id == "dave"
    assert started.is_set()
    assert jwks_server.fetches == 1
