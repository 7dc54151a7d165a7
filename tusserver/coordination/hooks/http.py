"""HTTP(S) hooks: one POST per event to a receiver, tusd's JSON both ways (tusd's `-hooks-http`).

The body is `HookRequest.to_json()`, sent with `Content-Type: application/json`, the event id as
`Idempotency-Key` (beyond tusd: an event sent again after a crash or a lost answer carries the same key), and
the client headers named in `forward_headers` (Authorization, Cookie) copied from the event, so the receiver
can authorize the client itself. A 2xx answer is the hook's response; tusd requires `application/json` on
it, we take a JSON body whatever its content type, since receivers written for other servers often forget
it. Network errors, timeouts and non-2xx answers are tried again `retries` times, `backoff` seconds apart; an
answer that arrived but is not a hook response (not JSON, or over `max_response` bytes) is not, as it would
be the same again. Certificates are verified (httpx's default; `SSL_CERT_FILE` names a private CA).
"""

from __future__ import annotations

from collections.abc import Iterable

import anyio
import httpx

from tusserver.coordination.hooks.dispatch import HookFailedError
from tusserver.coordination.hooks.model import HookRequest, HookResponse, InvalidHookResponseError

__all__ = ["MAX_RESPONSE", "HTTPHooks"]

MAX_RESPONSE = 64 * 1024
"""The largest answer taken, in bytes. tusd caps it at 5 KiB; a pre-finish answer may carry a document for
the client in `HTTPResponse.Body` (what tusd's users ask for), which 5 KiB cuts short, while 64 KiB still
bounds the memory a slow or hostile receiver can hold per call (64 MiB at 1,024 hooks at once)."""

# Set by the transport itself, or describing the client's connection to this server: copied onto the hook
# request they would misdescribe it, so asking to forward one is a configuration error.
_NOT_FORWARDED = frozenset(
    {"content-type", "content-length", "transfer-encoding", "host", "connection", "keep-alive", "te", "upgrade",
     "trailer", "expect", "idempotency-key"}
)  # fmt: skip
# Requests in flight to the receiver at once, and connections kept open to it: more only queue up in the
# client's pool, whose bookkeeping grows with it (httpcore: quadratic in the connections; BENCHMARKS.md, Hooks).
_CONNECTIONS = 16
_REASON_LENGTH = 200  # characters of a non-2xx answer's body quoted in the failure


class _RetryError(Exception):
    """This attempt failed in a way the next one may not: the message says how."""


class _UnusableError(Exception):
    """The receiver answered, with something that is not a hook response: the message says why."""


class HTTPHooks:
    """Sends each event as a POST to `url` (http or https) and decodes the answer.

    Args:
        url: the receiver.
        forward_headers: client request headers copied onto each hook request (any case; all their values).
        timeout: seconds each attempt may take, from connecting to the answer's last byte.
        retries: attempts after the first, on a network error, a timeout or a non-2xx answer.
        backoff: seconds between attempts.
        max_response: the largest answer body taken, in bytes; a larger one is a failure.

    Raises:
        ValueError: the URL is not http(s), a header may not be forwarded, or a number is out of range.
    """

    def __init__(
        self,
        url: str,
        *,
        forward_headers: Iterable[str] = (),
        timeout: float = 15.0,
        retries: int = 3,
        backoff: float = 1.0,
        max_response: int = MAX_RESPONSE,
    ) -> None:
        self.url = _checked_url(url)
        self.forward_headers = _checked_forward_headers(forward_headers)
        if timeout <= 0 or retries < 0 or backoff < 0 or max_response < 0:
            raise ValueError("HTTP hooks need timeout > 0, retries >= 0, backoff >= 0 and max_response >= 0")
        self.timeout, self.retries, self.backoff, self.max_response = timeout, retries, backoff, max_response
        # Where failures say they went: without the query or credentials, which often hold a webhook secret.
        self._where = str(self.url.copy_with(username=None, password=None, query=None, fragment=None))
        self._client: httpx.AsyncClient | None = None
        self._slots: anyio.CapacityLimiter | None = None  # made on first use, inside the event loop

    async def invoke(self, request: HookRequest) -> HookResponse:
        """POST the event, trying again as configured, and decode the answer.

        Raises:
            HookFailedError: no 2xx answer after the retries, or an answer that is not a hook response.
        """
        body, headers = request.to_json(), self._headers(request)
        reason = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await anyio.sleep(self.backoff)
            try:
                answer = await self._attempt(body, headers)
            except _RetryError as exc:
                reason = str(exc)
                continue
            except _UnusableError as exc:
                raise HookFailedError(f"{request.Type} hook at {self._where}: {exc}") from None
            return self._decode(request, answer)
        attempts = f"{self.retries + 1} attempt{'s' if self.retries else ''}"
        raise HookFailedError(f"{request.Type} hook at {self._where}: {reason} ({attempts})")

    async def aclose(self) -> None:
        """Close the pooled connections; a later `invoke` opens new ones."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _headers(self, request: HookRequest) -> list[tuple[str, str]]:
        """The hook request's headers: the forwarded client headers, in the case configured, then ours."""
        received = {name.lower(): values for name, values in request.Event.HTTPRequest.Header.items()}
        headers = [(name, value) for name in self.forward_headers for value in received.get(name.lower(), ())]
        headers.append(("Content-Type", "application/json"))
        if request.EventID:
            headers.append(("Idempotency-Key", request.EventID))
        return headers

    async def _attempt(self, body: bytes, headers: list[tuple[str, str]]) -> bytes:
        """One POST; returns a 2xx answer's body.

        Raises:
            _RetryError: unreachable, timed out, or a non-2xx answer.
            _UnusableError: a 2xx answer over `max_response` bytes.
        """
        if self._slots is None:
            self._slots = anyio.CapacityLimiter(_CONNECTIONS)
        async with self._slots:
            return await self._post(body, headers)

    async def _post(self, body: bytes, headers: list[tuple[str, str]]) -> bytes:
        try:
            # httpx bounds each step (connect, each read); this bounds the whole, against a receiver that
            # answers a byte at a time.
            with anyio.fail_after(self.timeout):
                async with self._pooled().stream("POST", self.url, content=body, headers=headers) as response:
                    if not response.is_success:
                        raise _RetryError(f"answered {response.status_code}{await _quote(response)}")
                    return await _read_at_most(response, self.max_response)
        except (TimeoutError, httpx.TimeoutException):
            raise _RetryError(f"no answer within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise _RetryError(_one_line(f"{type(exc).__name__}: {exc}")) from None

    def _decode(self, request: HookRequest, answer: bytes) -> HookResponse:
        try:
            return HookResponse.decode(answer)
        except InvalidHookResponseError as exc:
            raise HookFailedError(
                f"{request.Type} hook at {self._where}: answer is not a hook response: {exc}"
            ) from None

    def _pooled(self) -> httpx.AsyncClient:
        """The one client of this transport, created on first use: its pool keeps connections to the receiver
        open between events."""
        if self._client is None:
            limits = httpx.Limits(max_connections=_CONNECTIONS, max_keepalive_connections=_CONNECTIONS)
            self._client = httpx.AsyncClient(timeout=self.timeout, limits=limits, follow_redirects=False)
        return self._client


def _checked_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"HTTP hooks URL {url!r} is not a URL: {exc}") from None
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        raise ValueError(f"HTTP hooks URL {url!r} must be http:// or https:// with a host")
    return parsed


def _checked_forward_headers(names: Iterable[str]) -> tuple[str, ...]:
    names = tuple(name.strip() for name in names if name.strip())
    refused = sorted(name for name in names if name.lower() in _NOT_FORWARDED)
    if refused:
        raise ValueError(f"HTTP hooks cannot forward {', '.join(refused)}: the hook request sets its own")
    return names


async def _read_at_most(response: httpx.Response, limit: int) -> bytes:
    """The whole body (decoded, so a compressed answer is capped at its real size), or `_UnusableError`."""
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise _UnusableError(f"answer over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _quote(response: httpx.Response) -> str:
    """The start of a non-2xx answer's body, for the failure's reason (": ..."), or nothing."""
    start = b""
    async for chunk in response.aiter_bytes():
        start += chunk
        if len(start) >= _REASON_LENGTH:
            break
    text = _one_line(start.decode(errors="replace"))[:_REASON_LENGTH]
    return f": {text}" if text else ""


def _one_line(text: str) -> str:
    return " ".join(text.split())
