"""An issuer's signing keys, fetched from its JWKS URL (RFC 7517 §5) and kept (`--auth-jwks-url`).

Fetched when a token first needs them; again when a token names a `kid` they lack (the issuer rotated its keys),
but at most once per `COOLDOWN`, so tokens with made-up `kid`s cannot make the server hammer the issuer; and
after `MAX_AGE`, so that a key the issuer withdrew stops being accepted. One fetch at a time: requests that need
it wait for it, in a worker thread; every other request goes on with the keys it has, also a stale key while a
refresh runs, or failed (an issuer that is down does not stop tokens it signed before).
"""

from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import anyio
import anyio.to_thread
from jwt import PyJWK, PyJWTError

from tusserver.coordination.auth.keys import Verifier
from tusserver.protocol.errors import ServiceUnavailableError, UnauthorizedError

__all__ = ["COOLDOWN", "MAX_AGE", "JWKSKeys", "http_fetcher", "parse_jwks"]

logger = logging.getLogger("tusserver.auth")

COOLDOWN = 30.0  # seconds between two fetches for unknown kids (or after a failure)
MAX_AGE = 600.0  # seconds the keys are used before they are fetched again
TIMEOUT = 5.0
MAX_DOCUMENT = 1024 * 1024  # a JWKS is a few KiB; a larger answer is not one
ASYMMETRIC = frozenset({"RSA", "EC", "OKP"})  # a published "oct" key would let anyone sign: never taken

Fetch = Callable[[], Awaitable[bytes]]
"""Returns the JWKS document; raises OSError (or http.client.HTTPException) when it cannot."""


class JWKSKeys:
    """The keys of one JWKS, by `kid` (a `KeySource`).

    Args:
        fetch: gets the document (`http_fetcher(url)`).
        clock: seconds, monotonic; tests pass their own.
    """

    def __init__(self, fetch: Fetch, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch, self._clock = fetch, clock
        self._keys: Sequence[PyJWK] | None = None  # None until a fetch succeeded
        self._fetched_at = self._tried_at = -float("inf")
        self._tries = 0  # fetches begun: a request that waited for another's fetch does not fetch again
        self._lock = anyio.Lock()

    async def verifier(self, kid: str | None) -> Verifier:
        now = self._clock()
        key = self._find(kid)
        fresh = now - self._fetched_at < MAX_AGE or now - self._tried_at < COOLDOWN
        if key is not None and (fresh or self._lock.locked()):
            return Verifier(key, (key.algorithm_name,))
        if key is not None or now - self._tried_at >= COOLDOWN:
            await self._refresh()
            key = self._find(kid)
        if key is None:
            raise self._missing(kid)
        return Verifier(key, (key.algorithm_name,))

    def _find(self, kid: str | None) -> PyJWK | None:
        keys = self._keys or ()
        if kid is None:  # a token that names no key: fine while the issuer has only one
            return keys[0] if len(keys) == 1 else None
        return next((key for key in keys if key.key_id == kid), None)

    def _missing(self, kid: str | None) -> Exception:
        if self._keys is None:
            return ServiceUnavailableError("the token issuer's keys (JWKS) cannot be fetched; retry later")
        if kid is None:
            return UnauthorizedError("the token names no key (kid), and the issuer has several", invalid_token=True)
        return UnauthorizedError("the token's key (kid) is not one of the issuer's", invalid_token=True)

    async def _refresh(self) -> None:
        begun = self._tries
        async with self._lock:
            if self._tries != begun:  # fetched (or tried) while this request waited: take that
                return
            self._tries += 1
            self._tried_at = self._clock()
            try:
                keys = parse_jwks(await self._fetch())
            except (OSError, ValueError, http.client.HTTPException) as exc:
                logger.warning("cannot fetch the token issuer's keys (JWKS): %s", exc)
                return  # the keys it had, if any, stay in use
            self._keys, self._fetched_at = keys, self._tried_at


def parse_jwks(document: bytes) -> list[PyJWK]:
    """The signing keys of a JWKS document; keys of unknown kinds, symmetric ones and encryption keys are left out.

    Raises:
        ValueError: not a JWKS (a JSON object with a "keys" list).
    """
    data = json.loads(document)
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError('not a JWKS: a JSON object with a "keys" list expected')
    keys = []
    for entry in data["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") not in ASYMMETRIC or entry.get("use", "sig") != "sig":
            continue
        try:
            keys.append(PyJWK(entry))
        except PyJWTError as exc:  # malformed, or of a kind PyJWT lacks: the issuer's other keys still count
            logger.info("JWKS key %s left out: %s", entry.get("kid", "-"), exc)
    return keys


def http_fetcher(url: str, *, timeout: float = TIMEOUT) -> Fetch:
    """GETs `url` in a worker thread (urllib: no client library needed for one small GET now and then)."""

    async def fetch() -> bytes:
        return await anyio.to_thread.run_sync(partial(_get, url, timeout))

    return fetch


def _get(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "tusserver"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # an http(s) URL: Settings checks it
        document: bytes = response.read(MAX_DOCUMENT + 1)
    if len(document) > MAX_DOCUMENT:
        raise ValueError(f"the JWKS is over {MAX_DOCUMENT} bytes")
    return document
