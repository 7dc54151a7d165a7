"""CPU per HTTP hook request, client side: tusserver's hook client against httpx (what it replaced).

Starts `bench/hook_receiver.py` (its own process, a free port), then, rounds interleaved, sends `--requests`
POSTs of a real hook event (about 700 bytes of tusd JSON; the receiver answers `{}`) with each client, one
at a time and then `--concurrency` at once (the clients keep 16 in flight, as `HTTPHooks` does), and prints
the CPU of this process per request (µs; median over the rounds, and the range). The receiver's CPU is not
counted: it is the same for every client.

- `lean`: `tusserver.coordination.hooks.client.HTTPClient` (asyncio protocols, httptools).
- `hooks`: `HTTPHooks.invoke` on it: the client plus the event's JSON, headers and the answer's decoding.
- `httpx`: httpx.AsyncClient used as `HTTPHooks` used it up to this client (a capacity limiter of 16, a
  whole-attempt `anyio.fail_after`, a streamed answer read up to the cap).
- `anyio`: the same exchange as `lean` on anyio's streams instead of a protocol: what anyio alone costs.

Usage: python bench/hook_client.py [--requests 2000] [--concurrency 32] [--rounds 3] [--loop uvloop|asyncio]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import httptools
import httpx

from tusserver.coordination.hooks.client import HTTPClient
from tusserver.coordination.hooks.http import MAX_RESPONSE, HTTPHooks, _checked_url
from tusserver.coordination.hooks.model import HookEventData, HookHTTPRequest, HookRequest, HookUpload

Post = Callable[[], Awaitable[object]]
HEADERS = [("Idempotency-Key", "0f9a3c2e-5b1d-4c8e-9a7f-1e2d3c4b5a69")]
EVENT = HookRequest(
    Type="post-receive",
    EventID=HEADERS[0][1],
    Event=HookEventData(
        Upload=HookUpload(ID="a" * 32, Size=65536, Offset=32768, MetaData={"filename": "report.pdf"},
                          Storage={"Type": "filestore", "Path": "/srv/tus/" + "a" * 32}),
        HTTPRequest=HookHTTPRequest(Method="PATCH", URI="/files/" + "a" * 32, RemoteAddr="127.0.0.1:50000",
                                    Header={"Tus-Resumable": ["1.0.0"], "Upload-Offset": ["32768"],
                                            "Content-Type": ["application/offset+octet-stream"]}),
    ),
)  # fmt: skip
BODY = EVENT.to_json()


class AnyioClient:
    """The lean client's exchange on anyio streams (keep-alive, LIFO pool of 16, whole-attempt timeout)."""

    def __init__(self, url: str) -> None:
        self.target = _checked_url(url)[0]
        self._slots = anyio.Semaphore(16)
        self._idle: list[anyio.abc.SocketStream] = []

    async def post(self, body: bytes, headers: list[tuple[str, str]]) -> bytes:
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
        head = f"POST {self.target.path} HTTP/1.1\r\nHost: {self.target.authority}\r\n{lines}"
        request = f"{head}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        async with self._slots:
            with anyio.fail_after(15):
                stream = self._idle.pop() if self._idle else await anyio.connect_tcp(self.target.host, self.target.port)
                answer = _Answer()
                parser = httptools.HttpResponseParser(answer)
                await stream.send(request)
                while not answer.done:
                    parser.feed_data(await stream.receive())
                self._idle.append(stream)
                return b"".join(answer.chunks)

    async def aclose(self) -> None:
        for stream in self._idle:
            await stream.aclose()


class _Answer:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.done = False

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.done = True


async def _httpx_post(client: httpx.AsyncClient, slots: anyio.CapacityLimiter, url: str) -> bytes:
    async with slots:
        with anyio.fail_after(15):
            headers = [("Content-Type", "application/json"), *HEADERS]
            async with client.stream("POST", url, content=BODY, headers=headers) as response:
                chunks = []
                async for chunk in response.aiter_bytes():
                    chunks.append(chunk)
                return b"".join(chunks)


async def _cpu_per_request(post: Post, requests: int, concurrency: int) -> float:
    """µs of this process's CPU per request, `concurrency` tasks sending `requests` in all."""
    started = time.process_time()
    async with anyio.create_task_group() as group:
        for _ in range(concurrency):
            group.start_soon(_send, post, requests // concurrency)
    return (time.process_time() - started) / (requests // concurrency * concurrency) * 1e6


async def _send(post: Post, count: int) -> None:
    for _ in range(count):
        await post()


async def _round(url: str, args: argparse.Namespace, results: dict[str, list[float]]) -> None:
    lean = HTTPClient(
        _checked_url(url)[0], timeout=15, max_body=MAX_RESPONSE, headers=[("Content-Type", "application/json")]
    )
    hooks = HTTPHooks(url)
    plain, slots = httpx.AsyncClient(limits=httpx.Limits(max_connections=16, max_keepalive_connections=16)), None
    prototype = AnyioClient(url)
    slots = anyio.CapacityLimiter(16)
    clients: dict[str, Post] = {
        "lean": lambda: lean.post(BODY, HEADERS),
        "hooks": lambda: hooks.invoke(EVENT),
        "httpx": lambda: _httpx_post(plain, slots, url),
        "anyio": lambda: prototype.post(BODY, HEADERS),
    }
    for name, post in clients.items():
        await _cpu_per_request(post, 200, args.concurrency)  # warm: connections open, code paths taken
        for concurrency in (1, args.concurrency):
            results[f"{name} c={concurrency}"].append(await _cpu_per_request(post, args.requests, concurrency))
    await lean.aclose()
    await hooks.aclose()
    await plain.aclose()
    await prototype.aclose()


def _start_receiver() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = Path(__file__).with_name("hook_receiver.py")
    process = subprocess.Popen([sys.executable, str(script), "--port", str(port)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, f"http://127.0.0.1:{port}/hooks"
        except OSError:
            time.sleep(0.05)  # the receiver is starting: polled, bounded
    process.kill()
    raise SystemExit("hook_receiver.py did not start within 20 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args()
    receiver, url = _start_receiver()
    results: dict[str, list[float]] = {}
    try:
        for _ in range(args.rounds):
            for name in ("lean", "hooks", "httpx", "anyio"):
                for concurrency in (1, args.concurrency):
                    results.setdefault(f"{name} c={concurrency}", [])
            anyio.run(_round, url, args, results, backend="asyncio",
                      backend_options={"use_uvloop": args.loop == "uvloop"})  # fmt: skip
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
    print(f"CPU µs per request, this process only ({args.loop}, {args.requests} requests, {args.rounds} rounds)")
    for name, values in results.items():
        print(f"{name:14} {statistics.median(values):8.1f}  [{min(values):.1f}-{max(values):.1f}]")


if __name__ == "__main__":
    main()
