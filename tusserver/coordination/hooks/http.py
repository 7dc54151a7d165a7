"""HTTP(S) hooks: one POST per event to a receiver, tusd's JSON both ways (tusd's `-hooks-http`).

The body is `HookRequest.to_json()`, sent with `Content-Type: application/json`, the event id as
`Idempotency-Key` (beyond tusd: an event sent again after a crash or a lost answer carries the same key), and
the client headers named in `forward_headers` (Authorization, Cookie) copied from the event, so the receiver
can authorize the client itself. A 2xx answer is the hook's response; tusd requires `application/json` on
it, we take a JSON body whatever its content type, since receivers written for other servers often forget
it. Network errors, timeouts and non-2xx answers are tried again `retries` times, `backoff` seconds apart; an
answer that arrived but is not a hook response (not JSON, or over `max_response` bytes) is not, as it would
be the same again. Certificates are verified (`SSL_CERT_FILE` names a private CA); redirects are not followed.
Credentials in the URL are sent as Basic auth. The transport is `client.HTTPClient`, a keep-alive pool.
"""

from __future__ import annotations

from base64 import b64encode
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit

import anyio

from tusserver.coordination.hooks.client import HTTPClient, HTTPError, Target
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
# Requests in flight to the receiver at once, and connections kept open to it: more wait for a slot, rather
# than a connection each (one post-receive per PATCH in flight: 42 were seen at once; BENCHMARKS.md, Hooks).
_CONNECTIONS = 16
_REASON_LENGTH = 200  # characters of a non-2xx answer's body quoted in the failure
_TARGET_SAFE = "/?:@!$&'()*+,;=-._~%"  # RFC 3986's pchar, "/" and "?"; "%" keeps the escapes already there


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
        # Where failures say they went: without the query or credentials, which often hold a webhook secret.
        self.url, (self._target, self._where) = url, _checked_url(url)
        self.forward_headers = _checked_forward_headers(forward_headers)
        if self._target.authorization is not None:  # the URL's credentials win, as with httpx
            self.forward_headers = tuple(name for name in self.forward_headers if name.lower() != "authorization")
        if timeout <= 0 or retries < 0 or backoff < 0 or max_response < 0:
            raise ValueError("HTTP hooks need timeout > 0, retries >= 0, backoff >= 0 and max_response >= 0")
        self.timeout, self.retries, self.backoff, self.max_response = timeout, retries, backoff, max_response
        self._client: HTTPClient | None = None  # made on first use, inside the event loop

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
        """The hook request's own headers (Content-Type is the client's): the forwarded client headers, in the
        case configured, then the event id."""
        headers: list[tuple[str, str]] = []
        if self.forward_headers:
            received = {name.lower(): values for name, values in request.Event.HTTPRequest.Header.items()}
            headers = [(name, value) for name in self.forward_headers for value in received.get(name.lower(), ())]
        if request.EventID:
            headers.append(("Idempotency-Key", request.EventID))
        return headers

    async def _attempt(self, body: bytes, headers: list[tuple[str, str]]) -> bytes:
        """One POST; returns a 2xx answer's body.

        Raises:
            _RetryError: unreachable, timed out, or a non-2xx answer.
            _UnusableError: a 2xx answer over `max_response` bytes.
        """
        try:
            answer = await self._pooled().post(body, headers)
        except TimeoutError:
            raise _RetryError(f"no answer within {self.timeout:g} s") from None
        except HTTPError as exc:
            raise _RetryError(_one_line(f"{type(exc).__name__}: {exc}")) from None
        if not 200 <= answer.status < 300:
            raise _RetryError(f"answered {answer.status}{_quote(answer.body)}")
        if answer.truncated:
            raise _UnusableError(f"answer over {self.max_response} bytes")
        return answer.body

    def _decode(self, request: HookRequest, answer: bytes) -> HookResponse:
        try:
            return HookResponse.decode(answer)
        except InvalidHookResponseError as exc:
            raise HookFailedError(
                f"{request.Type} hook at {self._where}: answer is not a hook response: {exc}"
            ) from None

    def _pooled(self) -> HTTPClient:
        """The one client of this transport, created on first use: its pool keeps connections to the receiver
        open between events."""
        if self._client is None:
            self._client = HTTPClient(
                self._target,
                timeout=self.timeout,
                max_body=self.max_response,
                headers=[("Content-Type", "application/json")],
                connections=_CONNECTIONS,
            )
        return self._client


def _checked_url(url: str) -> tuple[Target, str]:
    """The client's target, and the URL as failures show it (no credentials, query or fragment)."""
    try:
        parts = urlsplit(url)
        port = parts.port
        host = (parts.hostname or "").encode("idna").decode("ascii")
    except (ValueError, UnicodeError) as exc:
        raise ValueError(f"HTTP hooks URL {url!r} is not a URL: {exc}") from None
    if parts.scheme not in {"http", "https"} or not host:
        raise ValueError(f"HTTP hooks URL {url!r} must be http:// or https:// with a host")
    authority = f"[{host}]" if ":" in host else host
    if port is not None:
        authority += f":{port}"
    path = quote(parts.path or "/", safe=_TARGET_SAFE)
    query = f"?{quote(parts.query, safe=_TARGET_SAFE)}" if parts.query else ""
    authorization = None
    if parts.username is not None or parts.password is not None:  # sent as Basic auth, as httpx did
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}".encode()
        authorization = f"Basic {b64encode(pair).decode('ascii')}"
    tls = parts.scheme == "https"
    target = Target(tls, host, port or (443 if tls else 80), authority, path + query, authorization)
    return target, f"{parts.scheme}://{authority}{path}"


def _checked_forward_headers(names: Iterable[str]) -> tuple[str, ...]:
    names = tuple(name.strip() for name in names if name.strip())
    refused = sorted(name for name in names if name.lower() in _NOT_FORWARDED)
    if refused:
        raise ValueError(f"HTTP hooks cannot forward {', '.join(refused)}: the hook request sets its own")
    return names


def _quote(body: bytes) -> str:
    """The start of a non-2xx answer's body, for the failure's reason (": ..."), or nothing."""
    text = _one_line(body[: _REASON_LENGTH * 4].decode(errors="replace"))[:_REASON_LENGTH]
    return f": {text}" if text else ""


def _one_line(text: str) -> str:
    return " ".join(text.split())
