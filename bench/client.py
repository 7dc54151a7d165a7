"""Client benchmark (issue 25): tusserver's client against tuspy and tus-js-client, parallel streams on a long
link, and memory on a very large upload.

- C1: one file (`--size`, 1 GiB) to a fresh tusserver on loopback, one stream, the same `--chunk` for every
  client: `tusserver-client` (`AsyncTusClient` run as `tusserver upload` runs it, with its default xxh128 digest),
  `tusserver-client-nodigest` (`--digest none`: the same work as the others), tuspy 1.x, tus-js-client 4.x
  under Node, and two references without any machinery: `raw-patches` (POST, then one PATCH per chunk
  on one keep-alive socket, each body sent with `os.pread` + `sendall`, nothing else) and `raw-patches-digest`
  (the same after hashing the file and declaring its xxh128, as `tusserver-client` does). Every server gets
  untimed tiny uploads first (`workloads.warm_up`). Clients rotate each round; each run is verified (size and
  xxh128 of the stored file).
- C2: `--parallel-size` (256 MiB) through `delay_proxy.DelayProxy` (`--delay` each way, `--window` in flight per
  connection), with `--parallel 4` against one stream.
- C3 (`--huge SIZE`): a sparse file (the kernel generates its zeros; nothing is stored) uploaded in one stream,
  the client's RSS sampled as it goes: it must stay flat.

Each client runs as its own process (a `--driver` run of this script, or Node); its JSON line gives the time from
the start of the upload to its end (imports and start-up not counted) and its own CPU over that span. Server CPU
and foreign CPU come from `measure.Meter`.

Usage: .venv/bin/python bench/client.py [--quick] [--rounds 3] [--huge 50G] [--json bench/results/client.json]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import xxhash
from delay_proxy import DelayProxy
from measure import Meter, wait_for_quiet
from run import parse_size
from servers import NODE_DIR, RunningServer, TusServer, start
from workloads import file_digest, warm_up

MB = 1_000_000
CLIENTS = [
    "tusserver-client",
    "tusserver-client-nodigest",
    "tuspy",
    "tus-js-client",
    "raw-patches",
    "raw-patches-digest",
]
WARM_UP = 20  # tiny uploads before each measured run, so that none pays for the server's first requests
RAW_PIECE = 1024 * 1024


# --- the drivers: one upload in this process, timed -----------------------------------------------------------


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def drive(args: argparse.Namespace) -> None:
    """Upload `args.file` with one Python client and print {"seconds", "cpu_s", "url", "rss"} as one line."""
    samples: list[tuple[int, float]] = []
    sent = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.25):
            samples.append((sent[0], _rss_mb()))

    def progress(_: Path, transferred: int, __: int) -> None:
        sent[0] = transferred

    result: list[str] = []
    if args.driver == "tuspy":
        from tusclient import client  # noqa: PLC0415 -- only this driver needs it

        uploader = client.TusClient(args.endpoint).uploader(str(args.file), chunk_size=args.chunk)

        def run() -> None:
            uploader.upload()
            result.append(str(uploader.url))

    elif args.driver.startswith("raw-patches"):

        def run() -> None:
            result.append(raw_upload(args.endpoint, args.file, args.chunk, digest=args.driver.endswith("digest")))

    else:
        import anyio  # noqa: PLC0415 -- only this driver needs these

        from tusserver.client import AsyncTusClient, TransferOptions  # noqa: PLC0415

        digest = None if args.driver.endswith("nodigest") else "xxh128"
        options = TransferOptions(chunk_size=args.chunk, parallel=args.parallel, digest=digest)

        async def upload() -> None:
            async with AsyncTusClient(options, progress=progress) as tus:
                result.append((await tus.upload(args.file, args.endpoint)).url)

        def run() -> None:  # as `tusserver upload` runs it: the event loop on the main thread, uvloop
            anyio.run(upload, backend_options={"use_uvloop": True})

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu, started = _cpu(), time.perf_counter()
    run()
    seconds, cpu_s = time.perf_counter() - started, _cpu() - cpu
    stop.set()
    print(json.dumps({"seconds": seconds, "cpu_s": cpu_s, "url": result[0], "rss": samples, "peak_mb": _peak_mb()}))


def raw_upload(endpoint: str, path: Path, chunk: int, *, digest: bool) -> str:
    """The requests of a chunked upload and nothing else: what a client without any machinery reaches.

    POST, then one PATCH per `chunk` on the same keep-alive connection, each body read with `os.pread` and
    written with `sendall` (on loopback that measured faster than `os.sendfile`, 2.1-2.3 against 1.6-2.0 GB/s);
    with `digest`, the file's xxh128 is hashed first and declared in the metadata, as tusserver's client does.
    """
    size = path.stat().st_size
    headers = {"Tus-Resumable": "1.0.0", "Upload-Length": str(size)}
    if digest:
        declared = f"xxh128 {base64.b64encode(_xxh128(path)).decode()}"
        headers["Upload-Metadata"] = "checksum " + base64.b64encode(declared.encode()).decode()
    parts = urlsplit(endpoint)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=300)
    connection.request("POST", parts.path, headers=headers)
    created = connection.getresponse()
    created.read()
    url = urljoin(endpoint, created.getheader("Location") or "")
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset in range(0, size, chunk):
            _raw_patch(connection, urlsplit(url).path, fd, offset, min(chunk, size - offset))
    finally:
        os.close(fd)
        connection.close()
    return url


def _raw_patch(connection: http.client.HTTPConnection, path: str, fd: int, offset: int, length: int) -> None:
    connection.putrequest("PATCH", path, skip_accept_encoding=True)
    headers = {"Tus-Resumable": "1.0.0", "Upload-Offset": str(offset), "Content-Length": str(length),
               "Content-Type": "application/offset+octet-stream"}  # fmt: skip
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    for position in range(offset, offset + length, RAW_PIECE):
        connection.send(os.pread(fd, min(RAW_PIECE, offset + length - position), position))
    answer = connection.getresponse()
    answer.read()
    if answer.status != 204:
        raise RuntimeError(f"PATCH at {offset}: {answer.status} {answer.reason}")


def _xxh128(path: Path) -> bytes:
    hasher = xxhash.xxh3_128()
    with path.open("rb", buffering=0) as file:
        while block := file.read(4 << 20):
            hasher.update(block)
    return hasher.digest()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the harness ----------------------------------------------------------------------------------------------


def upload(client: str, endpoint: str, source: Path, chunk: int, parallel: int = 1) -> dict[str, Any]:
    if client == "tus-js-client":
        command = ["node", str(NODE_DIR / "client_upload.mjs"), endpoint, str(source), str(chunk)]
    else:
        command = [sys.executable, __file__, "--driver", client, "--endpoint", endpoint, "--file", str(source),
                   "--chunk", str(chunk), "--parallel", str(parallel)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{client} failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measured(
    server: RunningServer, client: str, endpoint: str, source: Path, chunk: int, parallel: int = 1
) -> dict[str, Any]:
    """One verified upload, with the server's CPU and the machine's noise."""
    expected = file_digest(source)
    with Meter(server.process.pid) as meter:
        result = upload(client, endpoint, source, chunk, parallel)
    stored = server.stored_path(result["url"])
    usage = meter.usage
    verified = file_digest(stored) == expected
    stored.unlink()
    return {
        "client": client,
        "parallel": parallel,
        "MB/s": source.stat().st_size / result["seconds"] / MB,
        "seconds": result["seconds"],
        "client_cpu_s": result["cpu_s"],
        "server_cpu_s": usage.server_cpu_s,
        "foreign_cpu_s": usage.foreign_cpu_s,
        "contaminated": usage.contaminated,
        "verified": verified,
        "client_peak_mb": result.get("peak_mb"),
    }


def source_file(path: Path, size: int) -> Path:
    with path.open("wb") as file:
        for start in range(0, size, 8 << 20):
            file.write(os.urandom(min(8 << 20, size - start)))
    return path


def c1(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    if not args.rounds:
        return []
    source = source_file(tmp / "c1.bin", args.size)
    runs = []
    for round_ in range(args.rounds):
        clients = CLIENTS[round_ % len(CLIENTS) :] + CLIENTS[: round_ % len(CLIENTS)]
        for client in clients:
            runs += c1_slot(args, tmp, round_, client, source)
    source.unlink()
    return runs


def c1_slot(args: argparse.Namespace, tmp: Path, round_: int, client: str, source: Path) -> list[dict[str, Any]]:
    """One client's run of a round, run again (at most `--retries` times) while other processes' CPU
    contaminated it; every attempt is kept in the JSON, the last one `kept` for the medians."""
    attempts: list[dict[str, Any]] = []
    for attempt in range(1 + args.retries):
        wait_for_quiet(args.quiet_wait)
        server = start(TusServer(), tmp / f"c1-{round_}-{client}-{attempt}")
        try:
            warm_up(server.url, WARM_UP, 60)
            run = measured(server, client, server.url, source, args.chunk)
        finally:
            server.stop()
        attempts.append({"workload": "C1", "round": round_, "attempt": attempt, "kept": False} | run)
        flag = " (contaminated)" if run["contaminated"] else ""
        print(f"C1 round {round_} {client}: {run['MB/s']:.0f} MB/s{flag}", flush=True)
        if not run["contaminated"]:
            break
    attempts[-1]["kept"] = True
    return attempts


def c2(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    if not args.rounds:
        return []
    source = source_file(tmp / "c2.bin", args.parallel_size)
    server = start(TusServer(), tmp / "c2-server")
    runs = []
    try:
        warm_up(server.url, WARM_UP, 60)
        for round_ in range(args.rounds):
            for parallel in (1, 4) if round_ % 2 == 0 else (4, 1):
                with DelayProxy(("127.0.0.1", server.port), delay=args.delay, window=args.window) as proxy:
                    run = measured(server, "tusserver-client", proxy.origin + "/files/", source, 64 << 20, parallel)
                runs.append({"workload": "C2", "round": round_} | run)
                print(f"C2 round {round_} parallel {parallel}: {run['MB/s']:.1f} MB/s", flush=True)
    finally:
        server.stop()
    source.unlink()
    return runs


def c3(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    source = tmp / "c3-sparse.bin"
    with source.open("wb") as file:
        file.truncate(args.huge)  # a sparse file: its zeros are generated by the kernel, never stored
    server = start(TusServer(), tmp / "c3-server")
    try:
        result = upload("tusserver-client-nodigest", server.url, source, args.chunk_huge)
        stored = server.stored_path(result["url"])
        verified = stored.stat().st_size == args.huge
        stored.unlink()
    finally:
        server.stop()
    source.unlink()
    samples = result["rss"]
    marks = {f"{int(100 * share)}%": _rss_at(samples, share * args.huge) for share in (0.1, 0.25, 0.5, 0.75, 1.0)}
    rss = [mb for _, mb in samples]
    return [{"workload": "C3", "bytes": args.huge, "MB/s": args.huge / result["seconds"] / MB, "verified": verified,
             "rss_mb_at": marks, "rss_min_mb": min(rss), "rss_max_mb": max(rss), "peak_mb": result["peak_mb"],
             "samples": len(samples)}]  # fmt: skip


def _rss_at(samples: list[list[float]], position: float) -> float:
    after = [mb for sent, mb in samples if sent >= position]
    return after[0] if after else samples[-1][1]


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the kept runs, the ratios of issue 25's targets (on medians and round by round), C3's RSS."""
    result: dict[str, Any] = {}
    if any(run["workload"] == "C1" for run in runs):
        result |= _c1_summary(runs)
    one, four = _median(runs, "C2", parallel=1), _median(runs, "C2", parallel=4)
    if any(run["workload"] == "C2" for run in runs):
        result["C2 median MB/s"] = {"parallel 1": one, "parallel 4": four, "ratio (target 2.5)": four / one}
    for run in runs:
        if run["workload"] == "C3":
            result["C3"] = {key: run[key] for key in ("bytes", "MB/s", "rss_min_mb", "rss_max_mb", "peak_mb")}
    return result


def _median(runs: list[dict[str, Any]], workload: str, **match: object) -> float:
    values = [
        run["MB/s"]
        for run in runs
        if run["workload"] == workload and run.get("kept", True) and all(run[k] == v for k, v in match.items())
    ]
    return statistics.median(values) if values else float("nan")


def _c1_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    c1_ = {client: _median(runs, "C1", client=client) for client in CLIENTS}
    kept = [run for run in runs if run["workload"] == "C1" and run["kept"]]
    pairs = {
        "tusserver-client / tuspy (target 2.0)": ("tusserver-client", "tuspy"),
        "tusserver-client / tus-js-client (target 1.2)": ("tusserver-client", "tus-js-client"),
        "nodigest / tuspy": ("tusserver-client-nodigest", "tuspy"),
        "nodigest / tus-js-client": ("tusserver-client-nodigest", "tus-js-client"),
        "tusserver-client / raw-patches-digest": ("tusserver-client", "raw-patches-digest"),
        "nodigest / raw-patches": ("tusserver-client-nodigest", "raw-patches"),
        "raw-patches / tuspy": ("raw-patches", "tuspy"),
        "raw-patches-digest / tuspy": ("raw-patches-digest", "tuspy"),
    }
    return {
        "C1 median MB/s": c1_,
        "C1 kept runs clean": f"{sum(not run['contaminated'] for run in kept)} of {len(kept)}",
        "C1 ratios": {name: c1_[a] / c1_[b] for name, (a, b) in pairs.items()},
        "C1 ratios round by round: median [min, max]": {name: _by_round(kept, a, b) for name, (a, b) in pairs.items()},
    }


def _by_round(kept: list[dict[str, Any]], a: str, b: str) -> list[float]:
    """a's rate over b's in each round (the same minutes of the machine's noise): median, min, max."""
    rate = {(run["round"], run["client"]): run["MB/s"] for run in kept}
    ratios = [rate[r, a] / rate[r, b] for r in sorted({r for r, _ in rate}) if (r, a) in rate and (r, b) in rate]
    return [statistics.median(ratios), min(ratios), max(ratios)] if ratios else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--driver", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--parallel", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="one round, 64 MiB, 32 MiB through the proxy")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=parse_size, help="C1 file size (default 1G; --quick: 64M)")
    parser.add_argument("--chunk", type=parse_size, default=parse_size("8M"), help="C1 chunk size (default 8M)")
    parser.add_argument("--parallel-size", type=parse_size, help="C2 file size (default 256M; --quick: 32M)")
    parser.add_argument("--delay", type=float, default=0.025, help="C2 one-way delay, seconds (default 0.025)")
    parser.add_argument("--window", type=parse_size, default=parse_size("1M"), help="C2 bytes in flight (1M)")
    parser.add_argument("--huge", type=parse_size, help="also run C3 with a sparse file of this size, e.g. 50G")
    parser.add_argument("--chunk-huge", type=parse_size, default=parse_size("64M"), help="C3 chunk size (64M)")
    parser.add_argument("--retries", type=int, default=2, help="C1: run again while contaminated (default 2)")
    parser.add_argument("--quiet-wait", type=float, default=5.0, help="wait up to this for a quiet machine")
    parser.add_argument("--tmp-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "client-latest.json")
    args = parser.parse_args()
    if args.driver:
        drive(args)
        return
    if args.quick:  # sizes given on the command line still count
        args.rounds, args.quiet_wait, args.retries = 1, 0.0, 0
    args.size = args.size or (64 << 20 if args.quick else 1 << 30)
    args.parallel_size = args.parallel_size or (32 << 20 if args.quick else 256 << 20)
    with tempfile.TemporaryDirectory(dir=args.tmp_dir, prefix="tus-client-bench-") as directory:
        tmp = Path(directory)
        runs = c1(args, tmp) + c2(args, tmp) + (c3(args, tmp) if args.huge else [])
    report = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "args": {k: str(v) for k, v in vars(args).items()},
              "summary": summary(runs), "runs": runs}  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps(report["summary"], indent=2))
    if not all(run["verified"] for run in runs):
        raise SystemExit("some uploads were not stored intact")


if __name__ == "__main__":
    main()
