"""Fresh HEAD latency while many slow connections are open (issue 19, defect 6). Latency is recorded, not asserted.

Run from the repository root:  .venv/bin/python bench/slow_connections.py          (about 30 s)

For each scenario the server is started fresh, the slow connections are opened, and then `--samples` HEADs
each open a new connection, ask about one existing upload and close (timed from connect to the answer):

- `none`: no slow connection (the reference).
- `heads`: `--slow` connections that each sent one byte of a request head, then nothing (slowloris).
- `bodies`: `--slow` PATCHes inside their body, each sending a byte a second (busy: never reclaimed).
- `over`: `--slow` + 100 one-byte heads, past `--limit-concurrency` (1024): each new client needs room made.

Once the server has every slow connection (an untimed HEAD on a new connection is answered: connections are
accepted in order), one HEAD starts every `--interval` (10 ms), so 200 take about 2 s, well inside
`--header-timeout` (10 s): the heads are still held when the HEADs arrive. Writes
`bench/results/slow-latest.json` (`--json PATH`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import json
import resource
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import report
from measure import process_tree, rss_mb
from servers import BENCH, HOST, RunningServer, TusGranianServer, TusServer, start

TUS = {"Tus-Resumable": "1.0.0"}
SCENARIOS = ("none", "heads", "bodies", "over")
OVER = 100  # connections past the slow count in the `over` scenario
BODY_LENGTH = 1 << 30  # the slow PATCHes declare 1 GiB, as a one-PATCH upload would: spliced on uvicorn


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add = parser.add_argument
    add("--slow", type=int, default=1000, help="slow connections held open (default 1000)")
    add("--samples", type=int, default=200, help="fresh HEADs timed per scenario (default 200)")
    add("--interval", type=float, default=0.01, help="seconds from one HEAD's start to the next (default 0.01)")
    add("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, of {', '.join(SCENARIOS)}")
    add("--servers", default="tusserver", help="tusserver and/or tusserver-granian (default tusserver)")
    add("--timeout", type=float, default=10.0, help="bound on any one socket operation, seconds (default 10)")
    add("--tusserver-args", default="", help="extra tusserver flags, e.g. '--header-timeout 60'")
    add("--tmp-dir", type=Path, help="where the data directories go (default: system temp)")
    add("--json", type=Path, default=BENCH / "results" / "slow-latest.json", help="where the results go")
    return parser.parse_args(argv)


def raise_descriptor_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise SystemExit(f"needs {needed} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def tus_request(port: int, method: str, path: str, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request(method, path, headers={**TUS, **headers})
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("Location") or ""
    finally:
        connection.close()


def create_upload(port: int, length: int, timeout: float) -> str:
    status, location = tus_request(port, "POST", "/files/", {"Upload-Length": str(length)}, timeout)
    if status != 201:
        raise RuntimeError(f"POST answered {status}")
    return "/files/" + location.rstrip("/").rsplit("/", 1)[-1]


def open_slow(port: int, kind: str, count: int, timeout: float) -> list[socket.socket]:
    """`count` connections of `kind`: one-byte heads, or PATCHes whose body has begun."""
    paths = [create_upload(port, BODY_LENGTH, timeout) for _ in range(count)] if kind == "bodies" else []
    sockets = []
    for index in range(count):
        sock = socket.create_connection((HOST, port), timeout=timeout)
        sockets.append(sock)
        if kind == "bodies":
            headers = {**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
            fields = "".join(f"{key}: {value}\r\n" for key, value in headers.items())
            head = f"PATCH {paths[index]} HTTP/1.1\r\nHost: {HOST}\r\n{fields}Content-Length: {BODY_LENGTH}\r\n\r\n"
            sock.sendall(head.encode() + b"x")
        else:
            sock.sendall(b"H")
    return sockets


def trickle(sockets: list[socket.socket], stop: threading.Event) -> None:
    """A byte a second on every slow body, until `stop` (a connection the server closed is skipped)."""
    while not stop.wait(1.0):
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.send(b"x")


def fresh_head(port: int, path: str, timeout: float) -> tuple[int, float]:
    """One HEAD on a new connection: (status or 0 for no answer, milliseconds from connect to the answer)."""
    started = time.perf_counter()
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(f"HEAD {path} HTTP/1.1\r\nHost: {HOST}\r\nTus-Resumable: 1.0.0\r\n\r\n".encode())
            data = b""
            while b"\r\n\r\n" not in data and (piece := sock.recv(65536)):
                data += piece
    except OSError:
        data = b""
    elapsed = (time.perf_counter() - started) * 1000
    return (int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0), elapsed


def paced(port: int, path: str, args: argparse.Namespace) -> list[tuple[int, float]]:
    """`--samples` fresh HEADs, one every `--interval` seconds (or back to back when one takes longer)."""
    samples = []
    start = time.monotonic()
    for index in range(args.samples):
        time.sleep(max(0.0, start + index * args.interval - time.monotonic()))
        samples.append(fresh_head(port, path, args.timeout))
    return samples


def still_open(sockets: list[socket.socket]) -> int:
    """How many of the slow connections the server has not closed."""
    count = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            sock.recv(1, socket.MSG_PEEK)  # an answer or an end: the server closed it (answering a head 503)
        except BlockingIOError:
            count += 1  # nothing to read: still open
        except OSError:
            pass  # reset: closed
    return count


def run_scenario(running: RunningServer, scenario: str, args: argparse.Namespace) -> dict[str, Any]:
    path = create_upload(running.port, 1000, args.timeout)
    count = {"none": 0, "over": args.slow + OVER}.get(scenario, args.slow)
    opened_at = time.monotonic()
    sockets = open_slow(running.port, "bodies" if scenario == "bodies" else "heads", count, args.timeout)
    stop = threading.Event()
    trickler = threading.Thread(target=trickle, args=(sockets, stop), daemon=True)
    if scenario == "bodies":
        trickler.start()
    try:
        # Untimed: answered once the server has accepted (in order) and read every slow connection before it.
        fresh_head(running.port, path, args.timeout)
        open_s = time.monotonic() - opened_at
        samples = paced(running.port, path, args)
        sampled_s = time.monotonic() - opened_at
        rss = rss_mb(process_tree(running.process.pid))
        remaining = still_open(sockets)
    finally:
        stop.set()
        if trickler.is_alive():
            trickler.join(args.timeout)
        for sock in sockets:
            sock.close()
    latencies = [elapsed for _, elapsed in samples]
    return {
        "server": running.server.name,
        "scenario": scenario,
        "slow_connections": count,
        "slow_still_open": remaining,
        "statuses": dict(Counter(status for status, _ in samples)),
        "latency_ms": {q: report.percentile(latencies, q) for q in (50, 90, 99, 100)},
        "open_s": round(open_s, 2),
        "sampled_by_s": round(sampled_s, 2),
        "rss_mb": rss,
    }


def print_table(results: list[dict[str, Any]]) -> None:
    print(f"{'server':18} {'scenario':8} {'slow':>5} {'open':>5} {'statuses':22} p50/p90/p99/max ms  RSS MB")
    for result in results:
        latency = "/".join(f"{result['latency_ms'][q]:.1f}" for q in (50, 90, 99, 100))
        statuses = ",".join(f"{status}x{n}" for status, n in sorted(result["statuses"].items()))
        print(
            f"{result['server']:18} {result['scenario']:8} {result['slow_connections']:>5} "
            f"{result['slow_still_open']:>5} {statuses:22} {latency:19} {result['rss_mb']:.0f}"
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    raise_descriptor_limit(2 * (args.slow + OVER) + 256)
    extra = args.tusserver_args.split()
    known = {"tusserver": TusServer(extra), "tusserver-granian": TusGranianServer(extra)}
    results = []
    with tempfile.TemporaryDirectory(dir=args.tmp_dir, prefix="tus-slow-") as tmp:
        for name in args.servers.split(","):
            for scenario in args.scenarios.split(","):
                running = start(known[name], Path(tmp) / f"{name}-{scenario}")
                try:
                    results.append(run_scenario(running, scenario, args))
                finally:
                    running.stop()
    print_table(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    args.json.write_text(json.dumps({"date": stamp, "args": sys.argv[1:], "results": results}, indent=2) + "\n")
    print(f"results: {args.json}")


if __name__ == "__main__":
    main()
