"""Issue 19: a property-based HTTP fuzzer (hypothesis) run in-process against the ASGI app.

Requests mix methods (the tus ones, others, odd tokens), upload URLs (real ids, unknown ones, `../`,
`%2e%2e`, encoded slashes and backslashes), tus headers with valid and hostile values (non-ASCII,
huge and negative numbers, control characters other than NUL, CR and LF, repeated fields) and small
bodies. The server runs on its defaults (local files and SQLite) in a data directory four levels down
`tmp_path`, with CORS limited to one origin, a Tus-Max-Size and trusted proxies, so that every branch
has something to refuse. For every response:

- no 5xx, and no traceback in the body;
- an error (4xx) carries one line in the error table's form, `ERR_CODE: reason` (empty for a HEAD);
- the app answers within seconds (it never waits on a body that is not coming);

and after each example no file or directory exists outside the data directory that was not there before.
Derandomized (a fixed seed), no example database, and a bounded number of examples: a few seconds.
"""

from __future__ import annotations

import itertools
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import anyio
import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.types import Message, Scope

from tests.http.asgi import Captured, ScriptedReceive, asgi_call, chunk
from tusserver import Settings, create_app

MAX_EXAMPLES = 250
ERROR_LINE = re.compile(rb"ERR_[A-Z_]+: [^\n]+\n")
DISCONNECT: Message = {"type": "http.disconnect"}
TUS = {"Tus-Resumable": "1.0.0"}
PATCH_HEADERS = TUS | {"Content-Type": "application/offset+octet-stream"}
SHA1_HELLO_WORLD = "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="
PLACEHOLDERS = ("{upload}", "{deferred}", "{partial}", "{complete}")

METHODS = ["POST", "HEAD", "PATCH", "GET", "DELETE", "OPTIONS", "PUT", "TRACE", "CONNECT", "PROPFIND", "QUERY",
           "patch", "M-SEARCH", "X" * 40]  # fmt: skip
PATHS = ["/files/", "/files", "/", "/other", "/files/{upload}", "/files/{deferred}", "/files/{partial}",
         "/files/{complete}", "/files/{upload}/", "/files/{upload}/x", "/files/" + "0" * 32, "/files/" + "x" * 300,
         "/files//{upload}", "/files/{upload}%00", "/files/{upload}%0d%0aX-Injected:%201"]  # fmt: skip
TRAVERSAL_STEPS = ["../", "..%2f", "..%2F", "%2e%2e/", "%2e%2e%2f", "..%5c", "..\\", "%252e%252e%252f", "....//",
                   "%c0%ae%c0%ae/", "./", "%2f", "//", ".%2e/"]  # fmt: skip
TRAVERSAL_TARGETS = ["", "x", "state.sqlite3", "uploads", "etc/passwd", "{upload}", "a.txt"]

# Values that take a request down a tus path; "{upload}" etc. become real upload ids when sent.
VALID: dict[str, list[str]] = {
    "tus-resumable": ["1.0.0"],
    "upload-length": ["0", "5", "10", "1048576", "1048577"],
    "upload-offset": ["0", "5", "10"],
    "upload-defer-length": ["1"],
    "content-type": ["application/offset+octet-stream", "application/offset+octet-stream; charset=binary"],
    "content-length": ["0", "5", "64", "100"],
    "transfer-encoding": ["chunked"],
    "upload-metadata": ["filename aGVsbG8=", "k", "filetype dGV4dC9wbGFpbg==,filename YS50eHQ="],
    "upload-concat": ["partial", "final;/files/{partial}", "final;/files/{partial} /files/{partial}",
                      "final;http://testserver/files/{partial} {complete}", "final;/files/{upload}",
                      "final;" + " ".join(["/files/{partial}"] * 150), "final;../files/{partial}"],
    "upload-checksum": ["sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=", "sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                        "md5 XUFAKrxLKna5cZ2REBfFkg==", "crc32 AAAAAA==", "xxh3 AAAAAAAAAAA=", "md4 AAAA"],
    "x-http-method-override": ["PATCH", "DELETE", "HEAD", "GET", "OPTIONS", "POST", "PUT", "head"],
    "origin": ["https://app.example", "https://evil.example", "null"],
    "access-control-request-method": ["PATCH", "PUT", "POST"],
    "access-control-request-headers": ["tus-resumable,upload-offset", "x-evil", "tus-resumable, content-type"],
    "range": ["bytes=0-4", "bytes=-3", "bytes=100-", "bytes=5-2", "bytes=0-0,2-3", "items=0-1"],
    "if-range": ['"x"', "Thu, 01 Jan 2026 00:00:00 GMT"],
    "if-none-match": ['"x"', "*", 'W/"x"'],
    "host": ["testserver", "evil.example:99999", "", "a b", "[::1]:8080"],
    "forwarded": ["proto=https;host=evil.example", "for=1.2.3.4", 'host="a\\"b"'],
    "x-forwarded-host": ["evil.example", "a/b"],
    "x-forwarded-proto": ["https", "gopher"],
}  # fmt: skip
# Hostile values that only mean something in one field: the probe's findings of issue 19 among them.
PROBES: dict[str, list[str]] = {
    "upload-checksum": ["sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0\xe9", "sha1 \xff", "sh\xe41 AAAA", "sha1\xa0AAAA", "sha1 ",
                        "sha1 " + "A" * 200],
    "upload-defer-length": ["1\xa0", "\xa01", "1\x0b"],
    "upload-concat": ["final;/files/{partial}\xa0/files/{partial}", "final;" + " ".join(["{partial}"] * 1001),
                      "final;/files/%2e%2e/{partial}", "final;/files/..%2f{partial}", "partial\xa0", "final;\xa0"],
    "upload-metadata": ["\xa0", "k \xe9", "\xe9 YQ==", "k YQ==,k YQ=="],
    "x-http-method-override": ["PATCH\xa0", "HEAD\t", "\x85DELETE"],
    "content-type": ["application/offset+octet-stream\xa0"],
    "tus-resumable": ["1.0.0\xa0", "1.0.0\x85"],
}  # fmt: skip
HOSTILE = ["", " ", "\t", "\xa0", "1\xa0", "\x851", "0x10", "1e3", "+1", "-0", "-1", "9" * 30, "9" * 300,
           str(2**63), str(2**64), "1, 1", "\xff\xfe", "é", "\x01\x02", "\x7f", "\x1b[31m"]  # fmt: skip
# Latin-1 without NUL, CR and LF (which no HTTP server lets through to the app).
HEADER_CHARS = "".join(chr(code) for code in range(1, 256) if chr(code) not in "\r\n")
PATH_CHARS = "".join(char for char in string.printable if char not in " ?#\t\n\r\x0b\x0c")


@dataclass(frozen=True)
class FuzzRequest:
    """One generated request; placeholders in the path and header values name the seeded uploads."""

    method: str
    raw_path: str
    headers: tuple[tuple[str, str], ...]
    chunks: tuple[bytes, ...]

    def scope(self, ids: dict[str, str]) -> Scope:
        """An HTTP scope as a server builds it, with repeated header fields kept."""
        raw_path, headers = fill(self.raw_path, ids), [(name, fill(value, ids)) for name, value in self.headers]
        if not any(name == "host" for name, _ in headers):
            headers.insert(0, ("host", "testserver"))
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": self.method,
            "scheme": "http",
            "path": unquote(raw_path),
            "raw_path": raw_path.encode("latin-1"),
            "root_path": "",
            "query_string": b"",
            "headers": [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers],
            "client": ("127.0.0.1", 1234),
            "server": ("testserver", 80),
        }


def fill(text: str, ids: dict[str, str]) -> str:
    for placeholder, upload_id in ids.items():
        text = text.replace(placeholder, upload_id)
    return text


# Requests that follow a tus path (creation, append, HEAD, download, termination, concatenation, CORS,
# method override), which the fuzzer then bends: another method or path, extra, repeated or replaced fields.
BASES: list[tuple[str, str, dict[str, str]]] = [
    ("POST", "/files/", TUS | {"Upload-Length": "10"}),
    ("POST", "/files/", TUS | {"Upload-Defer-Length": "1"}),
    ("POST", "/files/", PATCH_HEADERS | {"Upload-Length": "11"}),
    ("POST", "/files/", PATCH_HEADERS | {"Upload-Length": "5", "Upload-Concat": "partial"}),
    ("POST", "/files/", TUS | {"Upload-Concat": "final;/files/{partial} /files/{complete}"}),
    ("PATCH", "/files/{upload}", PATCH_HEADERS | {"Upload-Offset": "0"}),
    ("PATCH", "/files/{deferred}", PATCH_HEADERS | {"Upload-Offset": "0", "Upload-Length": "11"}),
    ("PATCH", "/files/{upload}", PATCH_HEADERS | {"Upload-Offset": "0", "Upload-Checksum": SHA1_HELLO_WORLD}),
    ("POST", "/files/", PATCH_HEADERS | {"Upload-Length": "11", "Upload-Checksum": SHA1_HELLO_WORLD}),
    ("HEAD", "/files/{upload}", TUS),
    ("GET", "/files/{complete}", {}),
    ("DELETE", "/files/{upload}", TUS),
    ("OPTIONS", "/files/", {}),
    ("OPTIONS", "/files/{upload}", {"Origin": "https://app.example", "Access-Control-Request-Method": "PATCH"}),
    ("POST", "/files/{upload}", PATCH_HEADERS | {"Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"}),
    ("POST", "/files/{upload}", TUS | {"X-HTTP-Method-Override": "HEAD"}),
]
ONE_IN_FOUR = st.sampled_from([True, False, False, False])
TUS_FIELDS = ["tus-resumable", "upload-length", "upload-offset", "upload-defer-length", "upload-metadata",
              "upload-concat", "upload-checksum", "content-type", "content-length",
              "x-http-method-override"]  # fmt: skip


@st.composite
def raw_paths(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["known", "traversal", "random"]))
    if kind == "known":
        return draw(st.sampled_from(PATHS))
    if kind == "traversal":
        steps = draw(st.lists(st.sampled_from(TRAVERSAL_STEPS), min_size=1, max_size=6))
        return "/files/" + "".join(steps) + draw(st.sampled_from(TRAVERSAL_TARGETS))
    return "/files/" + draw(st.text(PATH_CHARS, max_size=40))


def header_values(name: str) -> st.SearchStrategy[str]:
    valid = st.sampled_from(VALID.get(name, ["1.0.0", "0"]))
    noise = st.text(HEADER_CHARS, max_size=40)
    probes = st.sampled_from(PROBES.get(name, HOSTILE))
    return st.one_of(  # valid values and this field's probes twice as often as the rest
        valid,
        valid,
        probes,
        probes,
        st.sampled_from(HOSTILE),
        noise,
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.tuples(valid, noise).map("".join),  # a valid value with something after it ("sha1 ..." + "\xe9")
        st.tuples(valid, st.sampled_from(HOSTILE), st.integers(0, 40)).map(spliced),
    )


def spliced(parts: tuple[str, str, int]) -> str:
    """A valid value with a hostile piece cut into it."""
    value, piece, at = parts
    at = min(at, len(value))
    return value[:at] + piece + value[at:]


@st.composite
def header_fields(draw: st.DrawFn, base: dict[str, str]) -> tuple[tuple[str, str], ...]:
    fields = [(name.lower(), value) for name, value in base.items()]
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        # A field of the request itself, a tus field, or any other field the server reads.
        name = draw(st.one_of(st.sampled_from([name for name, _ in fields] or TUS_FIELDS), st.sampled_from(TUS_FIELDS),
                              st.sampled_from(sorted(VALID))))  # fmt: skip
        value = draw(header_values(name))
        if draw(st.booleans()):  # a repeated field (servers pass every line to the app)
            fields.append((name, value))
        else:
            fields = [(other, old) for other, old in fields if other != name] + [(name, value)]
    return tuple(fields)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, ...]:
    body = draw(st.one_of(st.just(b""), st.binary(max_size=64), st.just(b"hello world")))
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(body)), max_size=2)))
    bounds = [0, *cuts, len(body)]
    return tuple(body[start:end] for start, end in itertools.pairwise(bounds))


@st.composite
def fuzz_requests(draw: st.DrawFn) -> FuzzRequest:
    method, path, base = draw(st.sampled_from(BASES))
    if draw(ONE_IN_FOUR):
        method = draw(st.sampled_from(METHODS))
    if draw(ONE_IN_FOUR):
        path = draw(raw_paths())
    return FuzzRequest(method, path, draw(header_fields(base)), draw(bodies()))


@dataclass
class Server:
    """The app under test, the portal whose event loop runs it, the test's tmp directory and the data directory."""

    app: Starlette
    portal: BlockingPortal
    root: Path
    data_dir: Path


async def seed_uploads(app: Starlette) -> dict[str, str]:
    """An unfinished upload, a deferred one, a finished partial and a finished upload, to aim requests at."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:

        async def create(headers: dict[str, str], body: bytes = b"") -> str:
            response = await client.post("/files/", headers=headers, content=body)
            assert response.status_code == 201, response.text
            return response.headers["location"].rsplit("/", 1)[1]

        upload = await create(TUS | {"Upload-Length": "10"})
        deferred = await create(TUS | {"Upload-Defer-Length": "1"})
        partial = await create(PATCH_HEADERS | {"Upload-Length": "5", "Upload-Concat": "partial"}, b"hello")
        complete = await create(PATCH_HEADERS | {"Upload-Length": "5"}, b"world")
    return dict(zip(PLACEHOLDERS, (upload, deferred, partial, complete), strict=True))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """One app for every example of the test, on an event loop of its own (hypothesis calls the test
    synchronously); the uploads and records the examples leave behind are there for later examples."""
    data_dir = tmp_path / "a" / "b" / "c" / "data"
    settings_ = Settings(
        data_dir=data_dir,
        max_size=1024 * 1024,
        cors_origins=("https://app.example",),
        trusted_proxies=("127.0.0.1",),
        read_timeout=2,
        lock_timeout=2,
    )
    with start_blocking_portal(backend="asyncio") as portal:
        app = create_app(settings_)
        try:
            yield Server(app, portal, tmp_path, data_dir)
        finally:
            portal.call(app.state.tus.aclose)


async def send(app: Starlette, scope: Scope, chunks: tuple[bytes, ...]) -> Captured:
    """The request's body pieces, then a disconnect for any further `receive`, within a deadline."""
    messages = [chunk(piece) for piece in chunks[:-1]] + [chunk(chunks[-1], more=False), DISCONNECT]
    with anyio.fail_after(10):
        return await asgi_call(app, scope, ScriptedReceive(messages))


def outside(server: Server) -> set[Path]:
    """Every path under the test's tmp directory that is not inside the data directory."""
    return {path for path in server.root.rglob("*") if not path.is_relative_to(server.data_dir)}


def check_response(request: FuzzRequest, scope: Scope, response: Captured) -> None:
    context = f"{request.method} {scope['raw_path']!r} {scope['headers']!r} -> {response.status} {response.body!r}"
    assert response.status, f"no response: {context}"
    assert response.status < 500, context
    assert b"Traceback" not in response.body, context
    if response.status >= 400:
        if request.method == "HEAD":
            assert response.body == b"", context  # RFC 9110 §9.3.2: no content in a response to HEAD
        else:
            assert ERROR_LINE.fullmatch(response.body), context


def probe(method: str, raw_path: str, headers: dict[str, str], body: bytes = b"") -> list[FuzzRequest]:
    """One request as an explicit example: what issue 19's probe found, always tried before random ones."""
    return [FuzzRequest(method, raw_path, tuple((name.lower(), value) for name, value in headers.items()), (body,))]


PATCH_AT_0 = PATCH_HEADERS | {"Upload-Offset": "0"}
PREFLIGHT = {"Origin": "https://app.example", "Access-Control-Request-Method": "PATCH"}


@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(requests=st.lists(fuzz_requests(), min_size=1, max_size=3))
@example(requests=probe("PATCH", "/files/{upload}", PATCH_AT_0 | {"Upload-Checksum": SHA1_HELLO_WORLD[:-1] + "\xe9"}))
@example(
    requests=probe("POST", "/files/", PATCH_HEADERS | {"Upload-Length": "5", "Upload-Checksum": "sha1 \xff"}, b"hello")
)
@example(requests=probe("POST", "/files/", TUS | {"X-HTTP-Method-Override": "HEAD"}))
@example(requests=probe("POST", "/files/" + "0" * 32, TUS | {"X-HTTP-Method-Override": "HEAD"}))
@example(requests=probe("POST", "/files/{upload}", {"X-HTTP-Method-Override": "HEAD"}))
@example(requests=probe("OPTIONS", "/files/", PREFLIGHT | {"Origin": "https://evil.example"}))
@example(requests=probe("OPTIONS", "/files/{upload}", PREFLIGHT | {"Access-Control-Request-Method": "PUT"}))
@example(requests=probe("OPTIONS", "/files/", PREFLIGHT | {"Access-Control-Request-Headers": "x-evil"}))
@example(requests=probe("PATCH", "/files/..%2f..%2f..%2f..%2fescape", PATCH_AT_0, b"evil"))
@example(requests=probe("POST", "/files/", TUS | {"Upload-Concat": "final;" + " ".join(["{partial}"] * 1000)}))
def test_fuzzed_requests_get_table_errors_and_stay_in_the_data_directory(
    server: Server, requests: list[FuzzRequest]
) -> None:
    before = outside(server)
    ids = server.portal.call(seed_uploads, server.app)  # fresh targets: an earlier example may have deleted some
    for request in requests:
        scope = request.scope(ids)
        response = server.portal.call(send, server.app, scope, request.chunks)
        check_response(request, scope, response)
    assert outside(server) == before
