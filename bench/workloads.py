"""The five workloads. Each has an unmeasured prepare(), a measured execute() and a verify() after the server stops.

- W1: one upload of `size` bytes in a single PATCH, sent by `curl -T` (PUT for nginx).
- W2: the same bytes in `chunk`-sized PATCHes, all sent by one curl process over one keep-alive connection.
- W3: `small_count` uploads of `small_size` bytes (POST + PATCH each) at `concurrency` (`Connection`, a minimal
  keep-alive client, one connection per worker).
- W4: `head_count` HEAD requests at `concurrency` over `head_uploads` half-filled uploads, the same client.
- W5: the W1 bytes as `parts` partial uploads streamed at once (one `curl -T` each), then the final upload that
  joins them (the concatenation extension, what tus-js-client's `parallelUploads` does). Only servers with
  concatenation take part; the report compares W5 with W1 of the same server.
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import anyio
import anyio.abc
import xxhash
from servers import HOST, RunningServer, Server

TUS = {"Tus-Resumable": "1.0.0"}
PATCH_HEADERS = {**TUS, "Content-Type": "application/offset+octet-stream"}
CURL_WRITE_OUT = "%{http_code} %{num_connects} %{size_upload}\\n"
HASH_BLOCK = 8 << 20


class WorkloadError(RuntimeError):
    """A request failed in a way that makes the run meaningless."""


@dataclass
class Inputs:
    """What the workloads send; built once per benchmark and shared by every run."""

    source: Path
    source_hash: str
    size: int
    chunk: int
    pieces: list[Path]
    payloads: list[bytes]
    small_size: int
    concurrency: int
    head_count: int
    head_uploads: int
    timeout: float
    parts: list[Path] = field(default_factory=list)  # W5: the source split like tus-js-client splits it


@dataclass
class Outcome:
    """What the client saw: bytes sent, operations done, their latencies, and anything that went wrong."""

    wall_s: float = 0.0
    bytes: int = 0
    ops: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    connections: int | None = None


@dataclass
class Verification:
    """Whether what the server stored (or answered) matches what was sent."""

    ok: bool
    checked: int
    bytes: int
    detail: str


def file_digest(path: Path) -> tuple[int, str]:
    """(size, xxh128 hex) of a file."""
    digest = xxhash.xxh3_128()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def tus_create(url: str, length: int, timeout: float) -> str:
    """POST a tus creation request; returns the absolute upload URL."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or HOST, parts.port, timeout=timeout)
    try:
        connection.request("POST", parts.path, headers={**TUS, "Upload-Length": str(length)})
        response = connection.getresponse()
        response.read()
        location = response.getheader("Location")
    finally:
        connection.close()
    if response.status != 201 or not location:
        raise WorkloadError(f"POST {url} answered {response.status}")
    return urljoin(url, location)


def _exchange(
    connection: http.client.HTTPConnection, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> http.client.HTTPResponse:
    connection.request(method, path, body=body or None, headers=headers)
    response = connection.getresponse()
    response.read()
    return response


def warm_up(url: str, count: int, timeout: float) -> None:
    """`count` tiny uploads (POST, PATCH of 1 KiB, HEAD) on one connection, untimed.

    So that no measured request pays for first use (imports, database set-up, V8 compiling the hot paths).
    """
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or HOST, parts.port, timeout=timeout)
    body = bytes(1024)
    try:
        for _ in range(count):
            created = _exchange(connection, "POST", parts.path, {**TUS, "Upload-Length": str(len(body))})
            path = urlsplit(urljoin(url, created.getheader("Location") or "")).path
            patched = _exchange(connection, "PATCH", path, {**PATCH_HEADERS, "Upload-Offset": "0"}, body)
            head = _exchange(connection, "HEAD", path, TUS)
            if (created.status, patched.status, head.status) != (201, 204, 200):
                raise WorkloadError(f"warm-up answered {created.status}, {patched.status}, {head.status}")
    finally:
        connection.close()


class Workload(ABC):
    """One run of one workload against one started server."""

    key: ClassVar[str]
    title: ClassVar[str]
    unit: ClassVar[str]  # "MB/s" or "op/s"

    def __init__(self, inputs: Inputs, server: RunningServer) -> None:
        self.inputs = inputs
        self.server = server

    @classmethod
    def skip_reason(cls, server: Server) -> str | None:
        """Why `server` does not take part in this workload: None if it does; "" if it is simply not compared
        here (the report does not mention it); otherwise the reason the report shows."""
        return None if cls.key in server.workloads else ""

    def prepare(self) -> None:  # noqa: B027 - an optional hook, not an abstract method
        """Unmeasured set-up (creating uploads)."""

    @abstractmethod
    def execute(self) -> Outcome:
        """The measured part."""

    @abstractmethod
    def verify(self, outcome: Outcome) -> Verification:
        """Checks after the server has stopped."""

    def extra(self) -> dict[str, Any]:
        """Workload-specific facts for the JSON record."""
        return {}

    def finished_uploads(self) -> int | None:
        """How many uploads the measured part creates (in prepare or execute) and finishes, each with one POST and
        one PATCH: each sends every hook event of an upload once (post-receive at least once). None: not counted,
        so this workload cannot check a hook receiver."""
        return None


# --- W1 / W2: curl -------------------------------------------------------------------------------------------


def _curl_base(timeout: float) -> list[str]:
    return ["-sS", "--noproxy", "*", "-o", "/dev/null", "-w", CURL_WRITE_OUT, "--max-time", str(int(timeout))]


def _curl_patch(url: str, path: Path, offset: int, timeout: float) -> list[str]:
    headers = [f"{key}: {value}" for key, value in PATCH_HEADERS.items()] + [f"Upload-Offset: {offset}", "Expect:"]
    header_args = [arg for header in headers for arg in ("-H", header)]
    return [*_curl_base(timeout), "-X", "PATCH", "-T", str(path), *header_args, url]


def _curl_put(url: str, path: Path, timeout: float) -> list[str]:
    return [*_curl_base(timeout), "-T", str(path), "-H", "Expect:", url]


def run_curl(transfers: list[list[str]], timeout: float, expected: set[int]) -> Outcome:
    """One curl process for all transfers (joined with --next, so the connection is reused)."""
    curl = shutil.which("curl")
    if curl is None:
        raise WorkloadError("curl is not on PATH")
    command = [curl]
    for index, transfer in enumerate(transfers):
        command += (["--next"] if index else []) + transfer
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 30, check=False)
    outcome = Outcome(wall_s=time.perf_counter() - start)
    lines = done.stdout.split()
    codes, connects, sent = (lines[0::3], lines[1::3], lines[2::3])
    outcome.bytes = sum(int(value) for value in sent)
    outcome.ops = len(codes)
    outcome.connections = sum(int(value) for value in connects)
    if done.returncode != 0:
        outcome.errors.append(f"curl exited {done.returncode}: {done.stderr.strip()[:300]}")
    bad = [code for code in codes if int(code) not in expected]
    if bad or len(codes) != len(transfers):
        outcome.errors.append(f"{len(codes)}/{len(transfers)} transfers, unexpected status codes {sorted(set(bad))}")
    return outcome


class BigUpload(Workload):
    """Shared by W1 and W2: one upload of the source file; verified by size and xxh128 of the stored file."""

    unit = "MB/s"
    upload_url = ""

    def prepare(self) -> None:
        if self.server.server.protocol == "tus":
            self.upload_url = tus_create(self.server.url, self.inputs.size, self.inputs.timeout)
        else:
            self.upload_url = self.server.url + f"{self.key.lower()}.bin"

    def verify(self, outcome: Outcome) -> Verification:
        path = self.server.stored_path(self.upload_url)
        if not path.exists():
            return Verification(False, 0, 0, f"{path} does not exist")
        size, digest = file_digest(path)
        ok = size == self.inputs.size and digest == self.inputs.source_hash
        detail = "size and xxh128 match" if ok else f"stored {size} B xxh128 {digest}"
        return Verification(ok, 1, size, detail)


class W1(BigUpload):
    key = "W1"
    title = "one upload in a single PATCH (curl -T)"

    def finished_uploads(self) -> int:
        return 1

    def execute(self) -> Outcome:
        if self.server.server.protocol == "tus":
            transfer = _curl_patch(self.upload_url, self.inputs.source, 0, self.inputs.timeout)
            return run_curl([transfer], self.inputs.timeout, {204})
        return run_curl(
            [_curl_put(self.upload_url, self.inputs.source, self.inputs.timeout)], self.inputs.timeout, {201, 204}
        )


class W2(BigUpload):
    key = "W2"
    title = "the same upload in chunked PATCHes, one connection (curl --next)"

    def prepare(self) -> None:
        if self.server.server.protocol != "tus":
            raise WorkloadError(f"{self.server.server.name} does not take part in W2")
        super().prepare()

    def execute(self) -> Outcome:
        transfers = [
            _curl_patch(self.upload_url, piece, index * self.inputs.chunk, self.inputs.timeout)
            for index, piece in enumerate(self.inputs.pieces)
        ]
        outcome = run_curl(transfers, self.inputs.timeout, {204})
        if outcome.connections != 1:
            outcome.errors.append(f"curl opened {outcome.connections} connections, expected 1")
        return outcome

    def extra(self) -> dict[str, Any]:
        return {"patches": len(self.inputs.pieces), "chunk": self.inputs.chunk}


# --- W3 / W4: a minimal keep-alive HTTP/1.1 client --------------------------------------------------------


def _run_async(function: Callable[[], Awaitable[None]]) -> None:
    anyio.run(function, backend="asyncio", backend_options={"use_uvloop": True})


_NO_BODY = {204, 304}
_CLIENT_ERRORS = (OSError, anyio.EndOfStream, anyio.BrokenResourceError, WorkloadError)


class Connection:
    """One keep-alive connection that sends a request and reads its response, nothing more.

    W3 and W4 do not use aiohttp: on two cores its client costs as much CPU per request as the server under test
    (about 0.4 ms per small request here), so it capped the faster server and compressed the ratios. Its C parser
    (llhttp) also closes the connection after every HEAD response without Content-Length, which is what Node
    sends, so W4 would measure TCP connects on one server and HEADs on the other. This client costs ~0.1 ms.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.stream: anyio.abc.SocketStream | None = None
        self.buffer = b""
        self.opened = 0

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, dict[str, str]]:
        """Send one request and read its response; returns (status, lower-cased headers)."""
        if self.stream is None:
            self.stream = await anyio.connect_tcp(HOST, self.port)
            self.buffer = b""
            self.opened += 1
        fields = {"Host": f"{HOST}:{self.port}", **headers, **({"Content-Length": str(len(body))} if body else {})}
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{key}: {value}\r\n" for key, value in fields.items())
        await self.stream.send(head.encode("latin-1") + b"\r\n" + body)
        status, response_headers = await self._read_head()
        if method != "HEAD" and status not in _NO_BODY:
            await self._skip_body(response_headers)
        if response_headers.get("connection", "").lower() == "close":
            await self.aclose()
        return status, response_headers

    async def _read_head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self.buffer:
            if len(self.buffer) > 65536:
                raise WorkloadError("response head too large")
            self.buffer += await self._receive()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        return int(status_line.split(" ", 2)[1]), headers

    async def _skip_body(self, headers: dict[str, str]) -> None:
        if headers.get("transfer-encoding", "").lower() == "chunked":  # Node answers a POST so
            while (size := int(await self._read_line(), 16)) > 0:
                await self._skip(size + 2)  # the chunk and its CRLF
            while await self._read_line():  # trailer fields, up to the empty line
                pass
        else:
            await self._skip(int(headers.get("content-length", "0")))

    async def _read_line(self) -> str:
        while b"\r\n" not in self.buffer:
            self.buffer += await self._receive()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line.decode("latin-1")

    async def _skip(self, length: int) -> None:
        while len(self.buffer) < length:
            self.buffer += await self._receive()
        self.buffer = self.buffer[length:]

    async def _receive(self) -> bytes:
        assert self.stream is not None
        return await self.stream.receive(65536)

    async def aclose(self) -> None:
        if self.stream is not None:
            await self.stream.aclose()
            self.stream = None


async def _upload(connection: Connection, url: str, length: int, body: bytes) -> str:
    """POST + PATCH one upload; returns its URL."""
    status, headers = await connection.request("POST", urlsplit(url).path, {**TUS, "Upload-Length": str(length)})
    location = headers.get("location")
    if status != 201 or not location:
        raise WorkloadError(f"POST answered {status}")
    upload_url = urljoin(url, location)
    patch = {**PATCH_HEADERS, "Upload-Offset": "0"}
    status, headers = await connection.request("PATCH", urlsplit(upload_url).path, patch, body)
    if status != 204 or headers.get("upload-offset") != str(len(body)):
        raise WorkloadError(f"PATCH answered {status}, Upload-Offset {headers.get('upload-offset')}")
    return upload_url


async def _workers(
    concurrency: int, count: int, port: int, job: Callable[[Connection, int], Awaitable[None]]
) -> list[Connection]:
    """Run job(connection, 0..count-1) with `concurrency` workers, each on a connection of its own; returns them."""
    indices: Iterator[int] = iter(range(count))
    connections: list[Connection] = []

    async def worker() -> None:
        connection = Connection(port)
        connections.append(connection)
        try:
            for index in indices:
                await job(connection, index)
        finally:
            await connection.aclose()

    async with anyio.create_task_group() as group:
        for _ in range(concurrency):
            group.start_soon(worker)
    return connections


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


class W3(Workload):
    key = "W3"
    title = "small uploads (POST + PATCH) at concurrency"
    unit = "uploads/s"

    def __init__(self, inputs: Inputs, server: RunningServer) -> None:
        super().__init__(inputs, server)
        self.urls: list[str | None] = [None] * len(inputs.payloads)

    def execute(self) -> Outcome:
        outcome = Outcome()
        _run_async(lambda: self._run(outcome))
        outcome.ops = sum(url is not None for url in self.urls)
        outcome.bytes = sum(len(body) for url, body in zip(self.urls, self.inputs.payloads, strict=True) if url)
        return outcome

    async def _run(self, outcome: Outcome) -> None:
        payloads = self.inputs.payloads

        async def job(connection: Connection, index: int) -> None:
            started = time.perf_counter()
            try:
                self.urls[index] = await _upload(connection, self.server.url, len(payloads[index]), payloads[index])
            except _CLIENT_ERRORS as exc:
                outcome.errors.append(_describe(exc))
                await connection.aclose()  # the next upload opens a fresh one
                return
            outcome.latencies_ms.append((time.perf_counter() - started) * 1000)

        start = time.perf_counter()
        with anyio.fail_after(self.inputs.timeout):
            connections = await _workers(self.inputs.concurrency, len(payloads), self.server.port, job)
        outcome.wall_s = time.perf_counter() - start
        outcome.connections = sum(connection.opened for connection in connections)

    def verify(self, outcome: Outcome) -> Verification:
        good = total = 0
        for url, body in zip(self.urls, self.inputs.payloads, strict=True):
            if url is None:
                continue
            path = self.server.stored_path(url)
            stored = path.read_bytes() if path.exists() else b""
            good += stored == body
            total += len(stored)
        ok = good == len(self.inputs.payloads)
        return Verification(ok, good, total, f"{good}/{len(self.inputs.payloads)} stored files match (size + bytes)")

    def extra(self) -> dict[str, Any]:
        return {"uploads": len(self.inputs.payloads), "upload_size": self.inputs.small_size}

    def finished_uploads(self) -> int:
        return len(self.inputs.payloads)


class W4(Workload):
    key = "W4"
    title = "HEAD requests on existing uploads at concurrency"
    unit = "HEAD/s"

    def __init__(self, inputs: Inputs, server: RunningServer) -> None:
        super().__init__(inputs, server)
        self.targets: list[str] = []
        self.mismatches = 0
        self.answered = 0

    @property
    def filled(self) -> int:
        return self.inputs.small_size // 2

    def prepare(self) -> None:
        async def create() -> None:
            body = self.inputs.payloads[0][: self.filled]
            connection = Connection(self.server.port)
            try:
                for _ in range(self.inputs.head_uploads):
                    self.targets.append(await _upload(connection, self.server.url, self.inputs.small_size, body))
            finally:
                await connection.aclose()

        _run_async(create)

    def execute(self) -> Outcome:
        outcome = Outcome()
        _run_async(lambda: self._run(outcome))
        outcome.ops = self.answered
        return outcome

    async def _run(self, outcome: Outcome) -> None:
        expected = (str(self.filled), str(self.inputs.small_size))
        paths = [urlsplit(url).path for url in self.targets]

        async def job(connection: Connection, index: int) -> None:
            started = time.perf_counter()
            try:
                status, headers = await connection.request("HEAD", paths[index % len(paths)], TUS)
            except _CLIENT_ERRORS as exc:
                outcome.errors.append(_describe(exc))
                await connection.aclose()
                return
            outcome.latencies_ms.append((time.perf_counter() - started) * 1000)
            self.answered += 1
            got = (headers.get("upload-offset"), headers.get("upload-length"))
            self.mismatches += status != 200 or got != expected

        start = time.perf_counter()
        with anyio.fail_after(self.inputs.timeout):
            connections = await _workers(self.inputs.concurrency, self.inputs.head_count, self.server.port, job)
        outcome.wall_s = time.perf_counter() - start
        outcome.connections = sum(connection.opened for connection in connections)

    def verify(self, outcome: Outcome) -> Verification:
        good = self.answered - self.mismatches
        ok = good == self.inputs.head_count
        detail = f"{good}/{self.inputs.head_count} HEADs answered 200 with the right Upload-Offset and Upload-Length"
        return Verification(ok, good, 0, detail)

    def extra(self) -> dict[str, Any]:
        return {"heads": self.inputs.head_count, "uploads": self.inputs.head_uploads}


# --- W5: parallel partial uploads + final (concatenation) ---------------------------------------------------


def split_sizes(size: int, parts: int) -> list[int]:
    """Part sizes as tus-js-client's `splitSizeIntoParts` makes them: equal, the remainder in the last part."""
    each = size // parts
    return [each] * (parts - 1) + [size - each * (parts - 1)]


def _tus_request(url: str, method: str, headers: dict[str, str], timeout: float) -> http.client.HTTPResponse:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or HOST, parts.port, timeout=timeout)
    try:
        return _exchange(connection, method, parts.path, headers)
    finally:
        connection.close()


def run_parallel_curls(transfers: list[list[str]], timeout: float, expected: set[int]) -> Outcome:
    """One curl process per transfer, all running at once; the outcome sums them (wall time not set)."""
    curl = shutil.which("curl")
    if curl is None:
        raise WorkloadError("curl is not on PATH")
    processes = [
        subprocess.Popen([curl, *transfer], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for transfer in transfers
    ]
    outcome = Outcome(connections=0)
    deadline = time.monotonic() + timeout + 30
    for process in processes:
        try:
            stdout, stderr = process.communicate(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            outcome.errors.append("curl did not finish in time")
        fields = stdout.split()
        if process.returncode != 0:
            outcome.errors.append(f"curl exited {process.returncode}: {stderr.strip()[:300]}")
        if len(fields) != 3:
            outcome.errors.append(f"unexpected curl output {stdout[:100]!r}")
            continue
        code, connects, sent = (int(value) for value in fields)
        outcome.bytes += sent
        outcome.ops += 1
        outcome.connections = (outcome.connections or 0) + connects
        if code not in expected:
            outcome.errors.append(f"a PATCH answered {code}")
    return outcome


class W5(Workload):
    """POST `parts` partial uploads, PATCH them all at once (one curl -T each), POST the final.

    Measured from the first POST to the final's 201, so the join (the final POST) is inside the time.
    Verified like W1: the final's stored file has the source's size and xxh128.
    """

    key = "W5"
    title = "parallel partial uploads + final (concatenation), one curl -T per partial"
    unit = "MB/s"

    def __init__(self, inputs: Inputs, server: RunningServer) -> None:
        super().__init__(inputs, server)
        self.final_url = ""
        self.part_sizes: list[int] = []
        self.timings: dict[str, float] = {}

    @classmethod
    def skip_reason(cls, server: Server) -> str | None:
        if cls.key in server.workloads:  # tusserver on every ASGI server it offers
            return None
        if server.role == "peer":
            return f"absent: {server.label} has no concatenation here (its file store does not implement it); see W1"
        if server.role == "ceiling":
            return "absent: a ceiling keeps no tus state, so it cannot join uploads; see W1"
        return ""

    def prepare(self) -> None:
        options = _tus_request(self.server.url, "OPTIONS", TUS, self.inputs.timeout)
        extensions = (options.getheader("Tus-Extension") or "").split(",")
        if "concatenation" not in extensions:
            raise WorkloadError(f"{self.server.server.name} does not advertise concatenation: {extensions}")
        self.part_sizes = [part.stat().st_size for part in self.inputs.parts]
        if sum(self.part_sizes) != self.inputs.size or not self.part_sizes:
            raise WorkloadError(f"the W5 parts hold {sum(self.part_sizes)} B, not {self.inputs.size}")

    def execute(self) -> Outcome:
        url, timeout = self.server.url, self.inputs.timeout
        start = time.perf_counter()
        partials = [self._create_partial(length) for length in self.part_sizes]
        created = time.perf_counter()
        transfers = [
            _curl_patch(partial, part, 0, timeout) for partial, part in zip(partials, self.inputs.parts, strict=True)
        ]
        outcome = run_parallel_curls(transfers, timeout, {204})
        patched = time.perf_counter()
        if not outcome.errors:
            final = _tus_request(url, "POST", {**TUS, "Upload-Concat": "final;" + " ".join(partials)}, timeout)
            location = final.getheader("Location")
            if final.status != 201 or not location:
                outcome.errors.append(f"final POST answered {final.status}")
            else:
                self.final_url = urljoin(url, location)
        outcome.wall_s = time.perf_counter() - start
        outcome.ops += len(partials) + 1  # the POSTs, besides the PATCHes
        self.timings = {
            "partial_posts_ms": (created - start) * 1000,
            "patches_ms": (patched - created) * 1000,
            "final_post_ms": (start + outcome.wall_s - patched) * 1000,
        }
        return outcome

    def _create_partial(self, length: int) -> str:
        headers = {**TUS, "Upload-Length": str(length), "Upload-Concat": "partial"}
        response = _tus_request(self.server.url, "POST", headers, self.inputs.timeout)
        location = response.getheader("Location")
        if response.status != 201 or not location:
            raise WorkloadError(f"partial POST answered {response.status}")
        return urljoin(self.server.url, location)

    def verify(self, outcome: Outcome) -> Verification:
        if not self.final_url:
            return Verification(False, 0, 0, "no final upload was created")
        path = self.server.stored_path(self.final_url)
        if not path.exists():
            return Verification(False, 0, 0, f"{path} does not exist")
        size, digest = file_digest(path)
        ok = size == self.inputs.size and digest == self.inputs.source_hash
        detail = "final: size and xxh128 match" if ok else f"final stored {size} B xxh128 {digest}"
        return Verification(ok, 1, size, detail)

    def extra(self) -> dict[str, Any]:
        return {"parts": len(self.inputs.parts), **self.timings}


WORKLOADS: dict[str, type[Workload]] = {cls.key: cls for cls in (W1, W2, W3, W4, W5)}
