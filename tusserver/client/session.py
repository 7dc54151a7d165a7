"""The client's HTTP: one httpx.AsyncClient (a keep-alive pool) and the retry budget every transfer uses.

httpx is the one HTTP library of the client, sync and async alike (the sync API runs this on a private event
loop thread, see `sync.py`): it streams request bodies from an async iterator with a known `Content-Length`,
keeps connections open between the requests of an upload, and has a timeout per phase (connect, each read,
each write) rather than one for a whole request, which a 200 GB PATCH could never meet.
"""

from __future__ import annotations

import random
import urllib.request
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from tusserver.client.errors import ExtraMissingError, TransferError
from tusserver.client.protocol import backoff, retry_after

try:
    import httpx
except ImportError:  # pragma: no cover - exercised by the CLI test that hides httpx
    raise ExtraMissingError() from None

__all__ = ["DEFAULT_READ", "Attempts", "NetworkError", "RetryPolicy", "Session", "describe", "httpx"]

NetworkError = httpx.TransportError  # connect/read/write errors, timeouts, a peer that closed mid-answer
DEFAULT_READ = -1.0  # `Session.request(read_timeout=...)`: the session's own read timeout


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long a transfer keeps trying without progress.

    Attributes:
        retries: attempts after the first one that made no progress; any progress starts the count again, so a
            long upload over a flaky link never runs out while it moves.
        base: seconds before the first retry; doubled each time, up to `cap`, spread by a random factor.
        cap: the longest wait between two attempts, unless the server's `Retry-After` asks for longer.
    """

    retries: int = 10
    base: float = 0.5
    cap: float = 30.0


def describe(response: httpx.Response) -> str:
    """`<status> <reason>: <the first line of the body>`; tusserver's bodies are `ERR_CODE: reason`."""
    try:
        lines = response.text.strip().splitlines()
    except (httpx.ResponseNotRead, UnicodeDecodeError):
        lines = []
    reason = f"{response.status_code} {response.reason_phrase}".strip()
    return f"{reason}: {lines[0][:200]}" if lines else reason


class Attempts:
    """The retry budget of one transfer: `wait()` sleeps before the next attempt, or raises once it is spent."""

    def __init__(self, policy: RetryPolicy, what: str) -> None:
        self.policy = policy
        self.what = what
        self.failed = 0

    def progressed(self) -> None:
        """The transfer moved: the next failure starts a fresh budget."""
        self.failed = 0

    async def wait(
        self, *, response: httpx.Response | None = None, error: Exception | None = None, at_once: bool = False
    ) -> None:
        """Sleep as the server asked (`Retry-After`) or by backoff; raise TransferError when out of retries.

        `at_once` spends an attempt without sleeping: for answers that call for a HEAD now (409), which could
        otherwise loop for ever against a server that keeps contradicting itself.

        Raises:
            TransferError: `policy.retries` attempts in a row failed; the message names the last failure.
        """
        reason = describe(response) if response is not None else f"{type(error).__name__}: {error}"
        if self.failed >= self.policy.retries:
            status = response.status_code if response is not None else None
            raise TransferError(f"{self.what}: gave up after {self.failed + 1} attempts: {reason}", status=status)
        asked = retry_after(response.headers.get("retry-after")) if response is not None else None
        jitter = random.random()  # spreading retries, not cryptography
        policy = self.policy
        delay = asked if asked is not None else backoff(self.failed, base=policy.base, cap=policy.cap, jitter=jitter)
        self.failed += 1
        if not at_once:
            await anyio.sleep(delay)


class Session:
    """A keep-alive connection pool with the user's headers (authorization) on every request."""

    def __init__(self, headers: Mapping[str, str], *, timeout: float, connections: int) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        # httpx honours the environment's proxies (HTTPS_PROXY, NO_PROXY...) only with the transports it makes.
        transport = None if urllib.request.getproxies() else _TransportPerScheme(limits)
        self.client = httpx.AsyncClient(
            headers=dict(headers), timeout=httpx.Timeout(timeout), limits=limits, transport=transport
        )

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        content: AsyncIterator[bytes] | bytes | None = None,
        read_timeout: float | None = DEFAULT_READ,
    ) -> httpx.Response:
        """Send one request and read its (small) answer; redirects are not followed (RUFH R3: a tus server
        answers where it is asked). `read_timeout` None waits for ever for the answer (a final upload's join)."""
        extensions = {} if read_timeout == DEFAULT_READ else {"timeout": self._timeout_with(read_timeout)}
        request = self.client.build_request(method, url, headers=headers, content=content, extensions=extensions)
        return await self.client.send(request)

    @asynccontextmanager
    async def stream(self, url: str, headers: Mapping[str, str]) -> AsyncIterator[httpx.Response]:
        """A GET whose body is read as it arrives; redirects are followed (a download may live elsewhere)."""
        async with self.client.stream("GET", url, headers=headers, follow_redirects=True) as response:
            yield response

    def _timeout_with(self, read: float | None) -> dict[str, float | None]:
        timeout = self.client.timeout
        return {"connect": timeout.connect, "read": read, "write": timeout.write, "pool": timeout.pool}

    async def aclose(self) -> None:
        await self.client.aclose()


class _TransportPerScheme(httpx.AsyncBaseTransport):
    """httpx's transport, made for a scheme when a request first uses it (a pool each, of `limits`). A transport
    reads the CA bundle into a verifying TLS context when it is made, 20-36 ms of every command's start here,
    which a client of an http:// server never needs: its transport is made without one. https:// verifies as
    httpx does (`SSL_CERT_FILE` and `SSL_CERT_DIR` name other CAs). Not used where the environment names
    proxies (`Session`)."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        self._made: dict[str, httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        scheme = request.url.scheme
        transport = self._made.get(scheme)
        if transport is None:
            transport = self._made[scheme] = httpx.AsyncHTTPTransport(limits=self._limits, verify=scheme != "http")
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        for transport in self._made.values():
            await transport.aclose()
