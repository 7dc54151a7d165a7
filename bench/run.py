"""Benchmark tusserver against @tus/server and the hardware ceiling, interleaved, and report medians and ratios.

Run from the repository root:  .venv/bin/python bench/run.py            (full: 5 rounds, 1 GiB, 500 small uploads)
                               .venv/bin/python bench/run.py --quick    (smoke test, under a minute)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO

import psutil
import report
import xxhash
from measure import Meter, process_tree, tree_cpu, wait_for_quiet
from servers import BENCH, NODE_DIR, REPO, HookReceiver, Server, ServerError, TusHooksServer, all_servers, start
from workloads import WORKLOADS, Inputs, Outcome, Verification, Workload, WorkloadError, split_sizes, warm_up

GIB = 1 << 30
GEN_BLOCK = 8 << 20
BIG = {"W1", "W2", "W5"}  # the workloads that send the source file
FULL = {
    "rounds": 5,
    "size": "1G",
    "small_count": 500,
    "head_count": 10000,
    "retries": 1,
    "quiet_wait": 5.0,
}
QUICK = {
    "rounds": 1,
    "size": "128M",
    "small_count": 100,
    "head_count": 2000,
    "retries": 0,
    "quiet_wait": 0.0,
}
HOOKS_WAIT = 60.0  # seconds a run's hook events may take to reach the receiver after the measured part
HOOKS_QUIET = 0.1  # the receiver got nothing new for this long: the warm-up's events are all in
SERVERS = [
    "tusserver",
    "tusserver-granian",
    "tus-node",
    "sink",
    "nginx",
    "tusserver-hooks-receive",
    "tusserver-hooks-default",
]
_SIZE = re.compile(r"([0-9]+)\s*([KMGT]?)(i?B)?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from "1048576", "64K", "8MiB", "1G" (binary units)."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    return int(match.group(1)) << (10 * " KMGT".index(match.group(2).upper() or " "))


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add = parser.add_argument
    add("--quick", action="store_true", help="smoke test: 1 round, 128M, 100 small uploads, 2000 HEADs, no retries")
    add("--rounds", type=int, help="rounds; every server runs every workload once per round (full: 5)")
    add("--size", help="W1/W2/W5 upload size, e.g. 1G (full: 1G, quick: 128M)")
    add("--chunk", default="8M", help="W2 PATCH size (default 8M)")
    add("--small-count", type=int, help="W3 uploads per run (full: 500, quick: 100)")
    add("--small-size", default="64K", help="W3 upload size (default 64K)")
    add("--concurrency", type=int, default=32, help="W3/W4 concurrent requests (default 32)")
    add("--head-count", type=int, help="W4 HEAD requests per run (full: 10000, quick: 2000)")
    add("--head-uploads", type=int, default=100, help="W4 existing uploads the HEADs go to (default 100)")
    add("--parts", type=int, default=4, help="W5 partial uploads sent at once (default 4)")
    add("--servers", type=_csv, default=SERVERS, help="comma-separated, from " + ",".join(SERVERS))
    add("--workloads", type=_csv, default=list(WORKLOADS), help="comma-separated, from " + ",".join(WORKLOADS))
    add("--json", type=Path, default=BENCH / "results" / "latest.json", help="where the JSON report goes")
    add("--retries", type=int, help="extra runs when a run is contaminated by other processes (full: 1)")
    add("--quiet-wait", type=float, help="seconds to wait for the machine to go quiet before a run (full: 5)")
    add("--nice", type=int, default=-10, help="niceness of the harness, servers and curl (default -10; needs root)")
    add("--warmup", type=int, default=50, help="untimed tiny uploads (POST, PATCH, HEAD) before each run (default 50)")
    add("--timeout", type=float, default=300.0, help="seconds any one run may take (default 300)")
    add("--tmp-dir", type=Path, default=None, help="where sources and data directories go (default: system temp)")
    add("--tusserver-args", default="", help="extra tusserver flags, e.g. '--fsync true'")
    add("--no-setup", action="store_true", help="do not run bench/setup.sh (npm ci) when node_modules is missing")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    unknown = [name for name in args.workloads if name not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workloads {unknown}")
    if args.parts < 1:
        parser.error("--parts must be at least 1")
    return args


# --- machine and inputs --------------------------------------------------------------------------------------


def _command_output(command: list[str]) -> str:
    if shutil.which(command[0]) is None:
        return "absent"
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr).strip() else ""


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _fstype(path: Path) -> str:
    best = max(
        (part for part in psutil.disk_partitions(all=True) if str(path).startswith(part.mountpoint)),
        key=lambda part: len(part.mountpoint),
        default=None,
    )
    return f"{best.fstype} ({best.device}, {best.opts})" if best else "unknown"


def machine_info(work: Path) -> dict[str, Any]:
    git = ["git", "-C", str(REPO)]
    return {
        "cpu_model": _cpu_model(),
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "os": platform.platform(),
        "memory_gib": round(psutil.virtual_memory().total / GIB, 1),
        "python": platform.python_version(),
        "node": _command_output(["node", "--version"]),
        "curl": _command_output(["curl", "--version"]),
        "work_dir_fs": _fstype(work),
        "load_average": os.getloadavg(),
        "git_commit": _command_output([*git, "rev-parse", "HEAD"]),
        "git_dirty": bool(_command_output([*git, "status", "--porcelain", "--untracked-files=no"])),
    }


def build_inputs(args: argparse.Namespace, work: Path) -> Inputs:
    """Random source file (and its W2 pieces and W5 parts) on disk, and the small payloads in memory."""
    size, chunk = parse_size(args.size), parse_size(args.chunk)
    source, pieces_dir = work / "source.bin", work / "pieces"
    pieces: list[Path] = []
    digest = xxhash.xxh3_128()
    if BIG & set(args.workloads):
        pieces_dir.mkdir()
        with source.open("wb") as whole:
            for index, offset in enumerate(range(0, size, chunk)):
                piece = pieces_dir / f"{index:06d}"
                if "W2" in args.workloads:
                    pieces.append(piece)
                _generate(whole, piece if "W2" in args.workloads else None, min(chunk, size - offset), digest)
    small_size = parse_size(args.small_size)
    count = args.small_count if "W3" in args.workloads else 1
    return Inputs(
        source=source,
        source_hash=digest.hexdigest(),
        size=size,
        chunk=chunk,
        pieces=pieces,
        payloads=[os.urandom(small_size) for _ in range(count)],
        small_size=small_size,
        concurrency=args.concurrency,
        head_count=args.head_count,
        head_uploads=args.head_uploads,
        timeout=args.timeout,
        parts=_split(source, size, args.parts, work / "parts") if "W5" in args.workloads else [],
    )


def _generate(whole: BinaryIO, piece: Path | None, length: int, digest: xxhash.xxh3_128) -> None:
    with piece.open("wb") if piece else open(os.devnull, "wb") as part:
        for start in range(0, length, GEN_BLOCK):
            block = os.urandom(min(GEN_BLOCK, length - start))
            whole.write(block)
            part.write(block)
            digest.update(block)


def _split(source: Path, size: int, parts: int, directory: Path) -> list[Path]:
    """The source cut into `parts` files, where tus-js-client's parallelUploads would cut it."""
    directory.mkdir()
    paths: list[Path] = []
    with source.open("rb") as whole:
        for index, length in enumerate(split_sizes(size, parts)):
            path = directory / f"{index:03d}"
            with path.open("wb") as part:
                copied = 0
                while copied < length:
                    step = os.copy_file_range(whole.fileno(), part.fileno(), length - copied)
                    if step == 0:
                        raise OSError(f"{source} ended after {copied} bytes of part {index}")
                    copied += step
            paths.append(path)
    return paths


def _check_disk(args: argparse.Namespace, work: Path) -> None:
    chosen = set(args.workloads)
    # The source, W2's pieces, W5's parts, and what one run stores (W5: the partials and the final).
    copies = 1 + ("W2" in chosen) + ("W5" in chosen) + (2 if "W5" in chosen else 1)
    needed = (copies * parse_size(args.size) + GIB) if BIG & chosen else GIB
    free = shutil.disk_usage(work).free
    if free < needed:
        sys.exit(f"not enough free space in {work}: {free / GIB:.1f} GiB free, {needed / GIB:.1f} GiB needed")


# --- one run -------------------------------------------------------------------------------------------------


@dataclass
class HookWatch:
    """What the hook receiver got from one run of a server with hooks: counted from before the server starts
    (`before`), the receiver's CPU during the measured part, and how long the events took to arrive after it."""

    receiver: HookReceiver
    events: tuple[str, ...]  # what each finished upload must send
    before: Counter[str]
    receiver_cpu_s: float = 0.0

    @classmethod
    def of(cls, server: Server) -> HookWatch | None:
        if not isinstance(server, TusHooksServer):
            return None
        return cls(server.receiver, server.upload_events, server.receiver.counts())

    def received(self) -> Counter[str]:
        return self.receiver.counts() - self.before

    def wait(self, uploads: int, timeout: float, quiet: float = 0.0) -> tuple[Counter[str], dict[str, int], float]:
        """Wait until every finished upload's events arrived (and then nothing new for `quiet` seconds), at most
        `timeout` seconds; returns what arrived, the expected events still missing, and the time waited."""
        start = time.perf_counter()
        got, since = self.received(), start
        while True:
            missing = {event: uploads - got[event] for event in self.events if got[event] < uploads}
            now = time.perf_counter()
            if (not missing and now - since >= quiet) or now - start > timeout:
                return got, missing, now - start
            time.sleep(0.01)
            latest = self.received()
            got, since = latest, (since if latest == got else time.perf_counter())

    def warmed_up(self, uploads: int) -> None:
        """Wait for the warm-up's events.

        Raises:
            WorkloadError: they did not all arrive.
        """
        got, missing, _ = self.wait(uploads, HOOKS_WAIT, HOOKS_QUIET)
        if missing:
            raise WorkloadError(f"the hook receiver is missing warm-up events: {missing} (got {dict(got)})")

    def settle(self, uploads: int | None, server_pid: int, timeout: float) -> dict[str, Any]:
        """After the measured part: wait for its events, and say what the server spent meanwhile."""
        if uploads is None:
            return {"missing": {"(this workload does not count its uploads)": 1}}
        server = process_tree(server_pid)
        cpu = sum(tree_cpu(server))
        got, missing, waited = self.wait(uploads, timeout)
        return {
            "received": dict(sorted(got.items())),
            "expected_at_least": dict.fromkeys(self.events, uploads),
            "missing": missing,
            "drain_s": waited,
            "drain_server_cpu_s": sum(tree_cpu(server)) - cpu,
            "receiver_cpu_s": self.receiver_cpu_s,
        }


def _measure(workload: Workload, server_pid: int, watch: HookWatch | None) -> tuple[Outcome, dict[str, Any]]:
    """The measured part: the workload's execute() inside the meter; the receiver's CPU meanwhile."""
    receiver_cpu = watch.receiver.cpu_s() if watch else 0.0
    with Meter(server_pid) as meter:
        outcome = workload.execute()
    if watch is not None:
        watch.receiver_cpu_s = watch.receiver.cpu_s() - receiver_cpu
    return outcome, meter.usage.as_dict()


def _record(workload: Workload, outcome: Outcome, verification: Verification) -> dict[str, Any]:
    latencies = outcome.latencies_ms
    record: dict[str, Any] = {
        "wall_s": outcome.wall_s,
        "bytes": outcome.bytes,
        "ops": outcome.ops,
        "connections": outcome.connections,
        "errors": outcome.errors[:20],
        "error_count": len(outcome.errors),
        "verified": verification.ok,
        "verify_detail": verification.detail,
        "bytes_verified": verification.bytes,
        "p50_ms": report.percentile(latencies, 50),
        "p90_ms": report.percentile(latencies, 90),
        "p99_ms": report.percentile(latencies, 99),
        "max_ms": max(latencies, default=None),
        **workload.extra(),
    }
    if outcome.wall_s > 0:
        work_done = outcome.bytes / 1e6 if workload.unit == "MB/s" else outcome.ops
        record["rate"] = work_done / outcome.wall_s
    return record


def run_one(
    server: Server, workload_key: str, inputs: Inputs, args: argparse.Namespace, run_dir: Path
) -> dict[str, Any]:
    """Start the server, prepare, measure the workload, stop, verify, delete the data. Never raises WorkloadError."""
    record: dict[str, Any] = {"workload": workload_key, "server": server.name, "errors": [], "verified": False}
    watch = HookWatch.of(server)
    try:
        running = start(server, run_dir)
    except ServerError as exc:
        shutil.rmtree(run_dir, ignore_errors=True)
        return {**record, "errors": [str(exc)[:2000]]}
    record["create_cost_us"] = running.create_cost_us
    workload = WORKLOADS[workload_key](inputs, running)
    outcome: Outcome | None = None
    try:
        if server.protocol == "tus":
            warm_up(running.url, args.warmup, inputs.timeout)
        workload.prepare()
        if watch is not None:  # no event of the warm-up reaches the receiver during the measured part
            watch.warmed_up(args.warmup)
        record["quiet_wait_s"] = wait_for_quiet(args.quiet_wait)
        outcome, record["usage"] = _measure(workload, running.process.pid, watch)
        if watch is not None:
            record["hooks"] = _hooks_record(watch, workload, running.process.pid, args, outcome)
    except (WorkloadError, ServerError, OSError, subprocess.TimeoutExpired, TimeoutError) as exc:
        record["errors"] = [f"{type(exc).__name__}: {exc}"[:500]]
    finally:
        record["exit_code"] = running.stop()
        if record["exit_code"] not in (0, None):
            record["server_log"] = running.log_tail()
    if outcome is not None:
        record.update(_record(workload, outcome, workload.verify(outcome)))
        _normalise_cpu(record, workload_key)
        if "hooks" in record:
            record["hooks_drain_s"] = record["hooks"].get("drain_s")
    _discard(run_dir)
    os.sync()  # start the next run with no dirty pages from this one
    return record


def _hooks_record(
    watch: HookWatch, workload: Workload, server_pid: int, args: argparse.Namespace, outcome: Outcome
) -> dict[str, Any]:
    """Wait for the run's hook events; a run whose events did not all reach the receiver is an error."""
    finished = workload.finished_uploads()
    uploads = None if finished is None else args.warmup + finished
    hooks = watch.settle(uploads, server_pid, min(HOOKS_WAIT, args.timeout))
    if hooks["missing"]:
        outcome.errors.append(f"the hook receiver is missing events: {hooks['missing']} (got {hooks.get('received')})")
    return hooks


def _discard(run_dir: Path) -> None:
    """Free the disk a run used, but leave its small files until the benchmark ends (`main` removes the work
    directory): on ext4 without a journal, deleting thousands of files makes file creation next to them cost
    10-30x more CPU for minutes (why: bench/fsprobe.py, which also keeps each run's data away from such places)."""
    for directory, _, names in os.walk(run_dir):
        for name in names:
            path = Path(directory, name)
            with contextlib.suppress(OSError):
                if path.stat().st_size >= _BIG_FILE:
                    path.unlink()


_BIG_FILE = 1 << 20


def _normalise_cpu(record: dict[str, Any], workload_key: str) -> None:
    usage = record["usage"]
    record["server_cpu_s"] = usage["server_cpu_s"]
    record["client_cpu_s"] = usage["client_cpu_s"]
    record["foreign_cpu_s"] = usage["foreign_cpu_s"]
    record["rss_peak_mb"] = usage["rss_peak_mb"]
    if WORKLOADS[workload_key].unit == "MB/s":
        record["server_cpu"] = usage["server_cpu_s"] / (record["bytes"] / GIB) if record["bytes"] else None
    else:
        record["server_cpu"] = usage["server_cpu_s"]


def _progress(record: dict[str, Any], round_index: int, rounds: int) -> str:
    head = f"[round {round_index + 1}/{rounds}] {record['workload']} {record['server']:<10}"
    if record["errors"] or "rate" not in record:
        return f"{head} FAILED: {'; '.join(record['errors'][:2])}"
    unit = "MB/s" if WORKLOADS[record["workload"]].unit == "MB/s" else "op/s"
    latency = f", p50 {record['p50_ms']:.1f} ms, p99 {record['p99_ms']:.1f} ms" if record["p99_ms"] is not None else ""
    usage, hooks = record["usage"], record.get("hooks")
    received = f", hook events {hooks['received']} in +{hooks['drain_s']:.2f} s" if hooks else ""
    return (
        f"{head} {record['rate']:8.1f} {unit}{latency}, server CPU {usage['server_cpu_s']:.2f} s, "
        f"peak RSS {usage['rss_peak_mb']:.0f} MB, {'verified' if record['verified'] else 'NOT VERIFIED'}, "
        f"{record['connections']} conn, file create {record['create_cost_us']:.0f} µs, "
        f"foreign CPU {usage['foreign_cpu_s']:.2f} s{' (contaminated)' if usage['contaminated'] else ''}{received}"
    )


# --- the whole benchmark -------------------------------------------------------------------------------------


def schedule(args: argparse.Namespace, servers: list[Server]) -> Iterator[tuple[int, str, Server]]:
    """Round by round, workload by workload, every server in turn; the order of servers rotates each round."""
    for round_index in range(args.rounds):
        shift = round_index % len(servers) if servers else 0
        order = servers[shift:] + servers[:shift]
        for workload in args.workloads:
            for server in order:
                if WORKLOADS[workload].skip_reason(server) is None:
                    yield round_index, workload, server


def run_all(args: argparse.Namespace, servers: list[Server], inputs: Inputs, work: Path) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for sequence, (round_index, workload, server) in enumerate(schedule(args, servers)):
        attempt = functools.partial(run_one, server, workload, inputs, args)
        runs += until_clean(attempt, work / f"run-{sequence}", _progress, round_index=round_index, args=args)
    return runs


def until_clean(
    attempt: Callable[[Path], dict[str, Any]],
    directory: Path,
    progress: Callable[[dict[str, Any], int, int], str],
    *,
    round_index: int,
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """One slot's runs: `attempt(<directory>-<n>)` again (at most `args.retries` more times) while its run was
    contaminated by other processes' CPU and did not fail; each printed with `progress(record, round, rounds)`;
    the last one marked kept."""
    records: list[dict[str, Any]] = []
    for number in range(1 + args.retries):
        record = attempt(directory.with_name(f"{directory.name}-{number}"))
        record.update(round=round_index, attempt=number, kept=False)
        records.append(record)
        print(progress(record, round_index, args.rounds), flush=True)
        if record["errors"] or not record.get("usage", {}).get("contaminated"):
            break
    records[-1]["kept"] = True
    return records


def _set_priority(niceness: int) -> str:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    except OSError as exc:
        return f"could not set niceness {niceness}: {exc}"
    return f"niceness {niceness}"


def _ensure_node(args: argparse.Namespace, servers: dict[str, Server]) -> None:
    if "tus-node" in args.servers and not (NODE_DIR / "node_modules").is_dir() and not args.no_setup:
        if shutil.which("npm") is None:
            print("npm is not on PATH: @tus/server cannot be installed", file=sys.stderr)
            return
        print("installing @tus/server (bench/setup.sh) ...", flush=True)
        subprocess.run(["bash", str(BENCH / "setup.sh")], check=True, timeout=600)


def _select(
    args: argparse.Namespace, receiver: HookReceiver
) -> tuple[list[Server], dict[str, Any], dict[str, dict[str, str]]]:
    available = all_servers(args.tusserver_args.split(), receiver)
    unknown = [name for name in args.servers if name not in available]
    if unknown:
        sys.exit(f"unknown servers {unknown}; known: {', '.join(available)}")
    _ensure_node(args, available)
    chosen: list[Server] = []
    info: dict[str, Any] = {}
    absent: dict[str, dict[str, str]] = {}
    for name in args.servers:
        server = available[name]
        reason = server.unavailable()
        info[name] = {"label": server.label, "role": server.role, "available": reason is None, "reason": reason}
        if reason is None:
            info[name]["version"] = server.version()
            chosen.append(server)
        else:
            print(f"{server.label}: {reason}", flush=True)
        for workload in args.workloads:
            skip = WORKLOADS[workload].skip_reason(server)
            if skip is None and reason is not None:
                absent.setdefault(workload, {})[name] = reason  # would take part, but cannot run here
            elif skip:
                absent.setdefault(workload, {})[name] = skip
    return chosen, info, absent


def _config(args: argparse.Namespace, inputs: Inputs, priority: str) -> dict[str, Any]:
    return {
        "rounds": args.rounds,
        "size": inputs.size,
        "chunk": inputs.chunk,
        "small_count": len(inputs.payloads) if "W3" in args.workloads else 0,
        "small_size": inputs.small_size,
        "concurrency": inputs.concurrency,
        "head_count": inputs.head_count,
        "head_uploads": inputs.head_uploads,
        "parts": len(inputs.parts),
        "workloads": args.workloads,
        "servers": args.servers,
        "retries": args.retries,
        "quiet_wait_s": args.quiet_wait,
        "warmup": args.warmup,
        "priority": priority,
        "tusserver_args": args.tusserver_args,
        "quick": args.quick,
        "client": "curl for W1/W2, one curl per partial for W5; bench/workloads.py's minimal keep-alive HTTP/1.1 "
        "client on anyio + uvloop for W3/W4",
    }


def _version(package: str) -> str:
    return metadata.version(package)


def _rounded(value: Any) -> Any:
    """Floats to 6 significant digits, recursively: the measurements are not more precise than that."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(item) for item in value]
    return value


def _write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_rounded(document), indent=2, default=str) + "\n")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    priority = _set_priority(args.nice)
    receiver = HookReceiver()  # started once, when a server with hooks runs
    servers, server_info, absent = _select(args, receiver)
    hooked = any(isinstance(server, TusHooksServer) for server in servers)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="tusbench-", dir=args.tmp_dir))
    try:
        _check_disk(args, work)
        inputs = build_inputs(args, work)
        document: dict[str, Any] = {
            "schema": 1,
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": machine_info(work),
            "config": _config(args, inputs, priority),
            "servers": server_info,
        }
        if hooked:
            receiver.start(work)
        runs = run_all(args, servers, inputs, work)
        if hooked:
            document["hook_receiver"] = {"app": "bench/hook_receiver.py on uvicorn", "received": receiver.counts()}
    finally:
        receiver.stop()
        shutil.rmtree(work, ignore_errors=True)
    ceilings = [server.name for server in servers if server.role == "ceiling"]
    extra = {"hooks_drain_s": "hooks drain s"} if hooked else None
    names = [server.name for server in servers]
    summary = report.summarize(runs, args.workloads, names, extra=extra, ceilings=ceilings)
    titles = {key: _title(key, inputs) for key in args.workloads}
    units = {key: WORKLOADS[key].unit for key in args.workloads}
    cpu_labels = {key: _cpu_label(key, inputs) for key in args.workloads}
    labels = {name: info["label"] for name, info in server_info.items()}
    targets = report.check_targets(summary)
    text = report.table(summary, titles, units, cpu_labels, labels, absent)
    if targets:
        text += "\n\n" + "\n".join(report.target_lines(targets, labels))
        if args.quick:
            text += "\n  (a --quick run: the targets are set for the full benchmark's sizes and counts)"
    document.update(
        duration_s=round(time.monotonic() - started, 1), summary=summary, targets=targets, table=text, runs=runs
    )
    _write_json(args.json, document)
    print("\n" + text)
    print(f"\nJSON: {args.json}   ({document['duration_s']:.0f} s)")


def _human(size: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size} B"


def _title(key: str, inputs: Inputs) -> str:
    if key == "W1":
        return f"{_human(inputs.size)} in one PATCH (curl -T; nginx: PUT)"
    if key == "W2":
        return f"{_human(inputs.size)} in {_human(inputs.chunk)} PATCHes on one connection (curl --next)"
    if key == "W5":
        return (
            f"{_human(inputs.size)} as {len(inputs.parts)} partial uploads at once (one curl -T each) + final,"
            " first POST to final 201"
        )
    if key == "W3":
        return f"{len(inputs.payloads)} uploads of {_human(inputs.small_size)} (POST + PATCH), c={inputs.concurrency}"
    return f"{inputs.head_count} HEADs on {inputs.head_uploads} uploads, c={inputs.concurrency}"


def _cpu_label(key: str, inputs: Inputs) -> str:
    if WORKLOADS[key].unit == "MB/s":
        return "CPU-s/GiB"
    return f"CPU-s/{len(inputs.payloads) if key == 'W3' else inputs.head_count}"


if __name__ == "__main__":
    main()
