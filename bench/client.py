"""Client benchmark (issue 25): tusserver's client against tuspy and tus-js-client, parallel streams on a long
link, and memory on a very large upload.

- C1: one file (`--size`, 1 GiB) to a fresh tusserver on loopback, one stream, the same `--chunk` for every
  client: `tusserver-client` (the API behind `tusserver upload`, with its default xxh128 whole-file digest),
  `tusserver-client-nodigest` (`--digest none`: the same work as the others), tuspy 1.x, and tus-js-client 4.x
  under Node. Clients rotate each round; each run is verified (size and xxh128 of the stored file).
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

from delay_proxy import DelayProxy
from measure import Meter, wait_for_quiet
from run import parse_size
from servers import NODE_DIR, RunningServer, TusServer, start
from workloads import file_digest

MB = 1_000_000
CLIENTS = ["tusserver-client", "tusserver-client-nodigest", "tuspy", "tus-js-client"]


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

    else:
        from tusserver.client import TransferOptions, TusClient  # noqa: PLC0415

        digest = None if args.driver.endswith("nodigest") else "xxh128"
        options = TransferOptions(chunk_size=args.chunk, parallel=args.parallel, digest=digest)
        tus = TusClient(options, progress=progress)

        def run() -> None:
            result.append(tus.upload(args.file, args.endpoint).url)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu, started = _cpu(), time.perf_counter()
    run()
    seconds, cpu_s = time.perf_counter() - started, _cpu() - cpu
    stop.set()
    print(json.dumps({"seconds": seconds, "cpu_s": cpu_s, "url": result[0], "rss": samples, "peak_mb": _peak_mb()}))


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
    source = source_file(tmp / "c1.bin", args.size)
    runs = []
    for round_ in range(args.rounds):
        clients = CLIENTS[round_ % len(CLIENTS) :] + CLIENTS[: round_ % len(CLIENTS)]
        for client in clients:
            wait_for_quiet(args.quiet_wait)
            server = start(TusServer(), tmp / f"c1-{round_}-{client}")
            try:
                runs.append(
                    {"workload": "C1", "round": round_} | measured(server, client, server.url, source, args.chunk)
                )
            finally:
                server.stop()
            print(f"C1 round {round_} {client}: {runs[-1]['MB/s']:.0f} MB/s", flush=True)
    source.unlink()
    return runs


def c2(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    source = source_file(tmp / "c2.bin", args.parallel_size)
    server = start(TusServer(), tmp / "c2-server")
    runs = []
    try:
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
    def median(workload: str, **match: object) -> float:
        values = [
            run["MB/s"] for run in runs if run["workload"] == workload and all(run[k] == v for k, v in match.items())
        ]
        return statistics.median(values) if values else float("nan")

    c1_ = {client: median("C1", client=client) for client in CLIENTS}
    ours = c1_["tusserver-client"]
    result: dict[str, Any] = {"C1 median MB/s": c1_}
    result["C1 ratios"] = {
        "tusserver-client / tuspy (target 2.0)": ours / c1_["tuspy"],
        "tusserver-client / tus-js-client (target 1.2)": ours / c1_["tus-js-client"],
        "nodigest / tuspy": c1_["tusserver-client-nodigest"] / c1_["tuspy"],
        "nodigest / tus-js-client": c1_["tusserver-client-nodigest"] / c1_["tus-js-client"],
    }
    one, four = median("C2", parallel=1), median("C2", parallel=4)
    result["C2 median MB/s"] = {"parallel 1": one, "parallel 4": four, "ratio (target 2.5)": four / one}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--driver", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--parallel", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="one round, 64 MiB, 32 MiB through the proxy")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=parse_size, default=parse_size("1G"), help="C1 file size (default 1G)")
    parser.add_argument("--chunk", type=parse_size, default=parse_size("8M"), help="C1 chunk size (default 8M)")
    parser.add_argument("--parallel-size", type=parse_size, default=parse_size("256M"), help="C2 file size")
    parser.add_argument("--delay", type=float, default=0.025, help="C2 one-way delay, seconds (default 0.025)")
    parser.add_argument("--window", type=parse_size, default=parse_size("1M"), help="C2 bytes in flight (1M)")
    parser.add_argument("--huge", type=parse_size, help="also run C3 with a sparse file of this size, e.g. 50G")
    parser.add_argument("--chunk-huge", type=parse_size, default=parse_size("64M"), help="C3 chunk size (64M)")
    parser.add_argument("--quiet-wait", type=float, default=5.0, help="wait up to this for a quiet machine")
    parser.add_argument("--tmp-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "client-latest.json")
    args = parser.parse_args()
    if args.driver:
        drive(args)
        return
    if args.quick:
        args.rounds, args.size, args.parallel_size, args.quiet_wait = 1, 64 << 20, 32 << 20, 0.0
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
