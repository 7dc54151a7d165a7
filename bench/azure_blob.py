"""Benchmark tusserver's Azure storage against Azurite, with the Azure SDK alone as the ceiling, interleaved.

Run from the repository root:  .venv/bin/python bench/azure_blob.py            (full: 3 rounds, 1 GiB, about 5 min)
                               .venv/bin/python bench/azure_blob.py --quick    (smoke test: 1 round, 32 MiB, < 1 min)

A fresh Azurite (in memory) serves each run. W1-Azure sends the file in one PATCH (curl -T) and W2-Azure in
`--chunk` PATCHes on one connection (curl --next) to `tusserver --storage azure`; the ceiling uploads the same
file straight to the same Azurite with azure-storage-blob (bench/azure_ceiling.py): the same block size, the same
blocks in flight, then one Put Block List. Every stored blob is read back and compared by size and xxh128.
The harness (rounds, rotation, quiet waits, meters, report) is bench/s3.py's.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import report
import run
import s3
from azurite import Azurite
from measure import Meter, process_tree, rss_mb, wait_for_quiet
from servers import BENCH, ServerError, TusServer, start, upload_id
from workloads import W1, W2, Inputs, Outcome, Verification, Workload, WorkloadError, warm_up

FULL = {"rounds": 3, "size": "1G", "retries": 1, "quiet_wait": 5.0}
QUICK = {"rounds": 1, "size": "32M", "retries": 0, "quiet_wait": 0.0}
WORKLOADS = ("W1-Azure", "W2-Azure")
SERVERS = ("tusserver", "azure-client")
CEILING = BENCH / "azure_ceiling.py"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add = parser.add_argument
    add("--quick", action="store_true", help="smoke test: 1 round of 32M, no retries, no quiet wait")
    add("--rounds", type=int, help="rounds; every participant runs every workload once per round (full: 3)")
    add("--size", help="upload size, e.g. 1G (full: 1G, quick: 32M)")
    add("--chunk", default="8M", help="W2-Azure PATCH size (default 8M)")
    add("--block-size", default="8M", help="block size, tusserver's and the ceiling's (default 8M)")
    add("--block-concurrency", type=int, default=4, help="blocks in flight per upload, both sides (default 4)")
    add("--buffer-budget", default="256M", help="tusserver --buffer-budget (default 256M)")
    add("--servers", type=run._csv, default=list(SERVERS), help="comma-separated, from " + ",".join(SERVERS))
    add("--workloads", type=run._csv, default=list(WORKLOADS), help="comma-separated, from " + ",".join(WORKLOADS))
    add("--json", type=Path, default=BENCH / "results" / "azure-latest.json", help="where the JSON report goes")
    add("--retries", type=int, help="extra runs when a run is contaminated by other processes (full: 1)")
    add("--quiet-wait", type=float, help="seconds to wait for the machine to go quiet before a run (full: 5)")
    add("--nice", type=int, default=-10, help="niceness of the harness and all it starts (default -10; needs root)")
    add("--warmup", type=int, default=10, help="untimed tiny uploads sent to tusserver before each run (default 10)")
    add("--timeout", type=float, default=600.0, help="seconds any one run may take (default 600)")
    add("--tmp-dir", type=Path, default=None, help="where the source file goes (default: system temp)")
    add("--tusserver-args", default="", help="extra tusserver flags")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for name in ("size", "chunk", "block_size", "buffer_budget"):
        setattr(args, name, run.parse_size(getattr(args, name)))
    if unknown := [name for name in args.workloads if name not in WORKLOADS]:
        parser.error(f"unknown workloads {unknown}")
    if unknown := [name for name in args.servers if name not in SERVERS]:
        parser.error(f"unknown servers {unknown}")
    return args


@dataclass(frozen=True)
class AzureSetup:
    """The shared Azurite and the block settings both tusserver and the ceiling use."""

    store: Azurite
    block_size: int
    concurrency: int
    budget: int


class TusAzureServer(TusServer):
    """`tusserver --storage azure` (uvicorn), pointed at the shared Azurite, one blob name prefix per run."""

    name = "tusserver"
    label = "tusserver (uvicorn)"

    def __init__(self, setup: AzureSetup, extra_args: list[str]) -> None:
        super().__init__(extra_args)
        self.setup = setup

    def version(self) -> str:
        return f"{super().version()}, azure-storage-blob {metadata.version('azure-storage-blob')}"

    def command(self, port: int, data_dir: Path, scratch: Path) -> list[str]:
        setup = self.setup
        azure = ["--storage", "azure", "--azure-connection-string", setup.store.connection_string,
                 "--azure-container", setup.store.container, "--azure-prefix", s3.run_prefix(data_dir.parent),
                 "--azure-block-size", str(setup.block_size), "--azure-block-concurrency", str(setup.concurrency),
                 "--buffer-budget", str(setup.budget)]  # fmt: skip
        base = super().command(port, data_dir, scratch)
        return [*base[: len(base) - len(self.extra_args)], *azure, *self.extra_args]

    def blob_name(self, data_dir: Path, upload_url: str) -> str:
        return s3.run_prefix(data_dir.parent) + upload_id(upload_url)


@dataclass(frozen=True)
class Ceiling:
    """bench/azure_ceiling.py: the file as staged blocks and one commit by the SDK, no HTTP server in between."""

    name: str = "azure-client"
    label: str = "azure-storage-blob blocks (ceiling)"
    role: ClassVar[str] = "ceiling"

    def version(self) -> str:
        return f"azure-storage-blob {metadata.version('azure-storage-blob')} (aio, aiohttp) on uvloop"


class _AzureVerified(Workload):
    upload_url: str

    def verify(self, outcome: Outcome) -> Verification:
        server = self.server.server
        assert isinstance(server, TusAzureServer)
        return verify_blob(server.setup.store, server.blob_name(self.server.data_dir, self.upload_url), self.inputs)


class W1Azure(_AzureVerified, W1):
    key = "W1-Azure"


class W2Azure(_AzureVerified, W2):
    key = "W2-Azure"


TUS_WORKLOADS: dict[str, type[Workload]] = {"W1-Azure": W1Azure, "W2-Azure": W2Azure}


def verify_blob(store: Azurite, name: str, inputs: Inputs) -> Verification:
    """Read the blob back and compare its size and xxh128 with the source's."""
    try:
        size, digest = store.digest(name)
    except Exception as exc:  # any failure to read it back fails the run, with its reason
        return Verification(False, 0, 0, f"GET {name}: {type(exc).__name__}: {exc}"[:300])
    ok = size == inputs.size and digest == inputs.source_hash
    return Verification(ok, 1, size, "blob: size and xxh128 match" if ok else f"blob {name}: {size} B {digest}")


def _measured(record: dict[str, Any], outcome: Outcome, verification: Verification, meter: Meter, store: Any) -> None:
    """bench/s3.py's measurements, the store's CPU under its own name."""
    s3._measured(record, outcome, verification, meter, store)
    record["azurite_cpu_s"], record["azurite_cpu"] = record.pop("s3_cpu_s"), record.pop("s3_cpu")


def run_tus(
    server: TusAzureServer, key: str, inputs: Inputs, args: argparse.Namespace, run_dir: Path
) -> dict[str, Any]:
    """Start tusserver, warm it up, measure one upload, stop it, verify the blob."""
    record: dict[str, Any] = {"workload": key, "server": server.name, "errors": [], "verified": False}
    try:
        running = start(server, run_dir)
    except ServerError as exc:
        return {**record, "errors": [str(exc)[:2000]]}
    workload = TUS_WORKLOADS[key](inputs, running)
    result: tuple[Outcome, Meter, s3.S3Meter] | None = None
    try:
        warm_up(running.url, args.warmup, inputs.timeout)
        workload.prepare()
        record["quiet_wait_s"] = wait_for_quiet(args.quiet_wait)
        with Meter(running.process.pid) as meter, s3.S3Meter(_pid(args.setup.store)) as store:
            outcome = workload.execute()
        result = (outcome, meter, store)
    except (WorkloadError, ServerError, OSError, subprocess.TimeoutExpired, TimeoutError) as exc:
        record["errors"] = [f"{type(exc).__name__}: {exc}"[:500]]
    finally:
        record["exit_code"] = running.stop()
        if record["exit_code"] not in (0, None):
            record["server_log"] = running.log_tail()
    if result is not None:
        _measured(record, result[0], workload.verify(result[0]), result[1], result[2])
        record.update(workload.extra())
    return record


def run_ceiling(ceiling: Ceiling, key: str, inputs: Inputs, args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    """Start bench/azure_ceiling.py, let it connect, measure the upload, verify the blob."""
    record: dict[str, Any] = {"workload": key, "server": ceiling.name, "errors": [], "verified": False}
    setup: AzureSetup = args.setup
    name = f"{s3.run_prefix(run_dir)}{key.lower()}.bin"
    command = [sys.executable, str(CEILING), "--connection-string", setup.store.connection_string,
               "--container", setup.store.container, "--blob", name, "--file", str(inputs.source),
               "--block-size", str(setup.block_size), "--concurrency", str(setup.concurrency)]  # fmt: skip
    run_dir.mkdir(parents=True)
    log_path = run_dir / "ceiling.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=run_dir, start_new_session=True
        )
    assert process.stdin is not None
    result: tuple[Outcome, Meter, s3.S3Meter] | None = None
    try:
        if (line := s3._read_line(process, 60)) != "ready":
            raise WorkloadError(f"the ceiling did not get ready: {line!r}")
        record["quiet_wait_s"] = wait_for_quiet(args.quiet_wait)
        with Meter(process.pid) as meter, s3.S3Meter(_pid(setup.store)) as store:
            started = time.perf_counter()
            process.stdin.write(b"go\n")
            process.stdin.flush()
            line = s3._read_line(process, inputs.timeout)
            wall = time.perf_counter() - started
        answer = json.loads(line)
        record["ceiling_wall_s"] = answer["wall_s"]
        result = (Outcome(wall_s=wall, bytes=answer["bytes"], ops=answer["blocks"]), meter, store)
    except (WorkloadError, OSError, ValueError, KeyError) as exc:
        record["errors"] = [f"{type(exc).__name__}: {exc}"[:500]]
    finally:
        record["exit_code"] = s3._end(process)
        if record["exit_code"] not in (0, None) or record["errors"]:
            record["server_log"] = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
    if result is not None:
        _measured(record, result[0], verify_blob(setup.store, name, inputs), result[1], result[2])
        record.update(blocks=result[0].ops, block_size=setup.block_size, concurrency=setup.concurrency)
    return record


def _pid(store: Azurite) -> int:
    assert store.process is not None
    return store.process.pid


def run_one(who: TusAzureServer | Ceiling, key: str, inputs: Inputs, args: argparse.Namespace, run_dir: Path) -> Any:
    """One run of either kind, on a fresh Azurite: it keeps blobs in memory and does not give the memory of
    deleted ones back soon enough (10 GB after eight 1 GiB runs), so every run starts it anew."""
    args.setup.store.restart()
    if isinstance(who, Ceiling):
        record = run_ceiling(who, key, inputs, args, run_dir)
    else:
        record = run_tus(who, key, inputs, args, run_dir)
    record["azurite_rss_mb"] = rss_mb(process_tree(_pid(args.setup.store)))
    shutil.rmtree(run_dir, ignore_errors=True)
    os.sync()
    return record


def run_all(
    args: argparse.Namespace, everyone: list[TusAzureServer | Ceiling], inputs: Inputs, work: Path
) -> list[dict[str, Any]]:
    """Round by round, workload by workload, everyone in turn; the order rotates each round (as run.py)."""
    runs: list[dict[str, Any]] = []
    for round_index in range(args.rounds):
        shift = round_index % len(everyone)
        for key in args.workloads:
            for who in everyone[shift:] + everyone[:shift]:
                slot = len(runs)
                attempt = functools.partial(run_one, who, key, inputs, args)
                runs += run.until_clean(attempt, work / f"run-{slot}", _progress, round_index=round_index, args=args)
    return runs


def _progress(record: dict[str, Any], round_index: int, rounds: int) -> str:
    head = f"[round {round_index + 1}/{rounds}] {record['workload']} {record['server']:<13}"
    if record["errors"] or record.get("rate") is None:
        return f"{head} FAILED: {'; '.join(record['errors'][:2])}"
    contaminated = " (contaminated)" if record["usage"]["contaminated"] else ""
    return (
        f"{head} {record['rate']:7.1f} MB/s, CPU {record['server_cpu']:.2f} s/GiB, Azurite CPU "
        f"{record['azurite_cpu']:.2f} s/GiB, peak RSS {record['rss_peak_mb']:.0f} MB, "
        f"{'verified' if record['verified'] else 'NOT VERIFIED'}{contaminated}"
    )


def _title(key: str, args: argparse.Namespace) -> str:
    size, block = run._human(args.size), run._human(args.block_size)
    sent = "one PATCH (curl -T)" if key == "W1-Azure" else f"{run._human(args.chunk)} PATCHes on one connection"
    return (
        f"{size} in {sent} to tusserver --storage azure; ceiling: the file as staged blocks and one commit"
        f" ({block} blocks, {args.block_concurrency} in flight)"
    )


def _config(args: argparse.Namespace, store: Azurite, priority: str) -> dict[str, Any]:
    names = ("rounds", "size", "chunk", "block_size", "block_concurrency", "buffer_budget", "workloads", "servers",
             "retries", "quiet_wait", "warmup", "tusserver_args", "quick")  # fmt: skip
    return {
        **{name: getattr(args, name) for name in names},
        "priority": priority,
        "azure_server": f"{store.version()}, a fresh one for each run, on 127.0.0.1",
        "client": "curl for W1-Azure/W2-Azure; bench/azure_ceiling.py (azure-storage-blob) for the ceiling",
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    priority = run._set_priority(args.nice)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="tusbench-azure-", dir=args.tmp_dir))
    store = Azurite(work / "azurite")
    try:
        s3._check_disk(args, work)
        inputs = s3.build_inputs(args, work)
        store.start()
        args.setup = AzureSetup(store, args.block_size, args.block_concurrency, args.buffer_budget)
        extra = args.tusserver_args.split()
        known: dict[str, TusAzureServer | Ceiling] = {
            "tusserver": TusAzureServer(args.setup, extra),
            "azure-client": Ceiling(),
        }
        everyone = [known[name] for name in args.servers]
        document: dict[str, Any] = {
            "schema": 1,
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": run.machine_info(work),
            "config": _config(args, store, priority),
            "servers": {who.name: {"label": who.label, "role": who.role, "version": who.version()} for who in everyone},
        }
        runs = run_all(args, everyone, inputs, work)
    finally:
        store.stop()
        shutil.rmtree(work, ignore_errors=True)
    names = [who.name for who in everyone]
    summary = report.summarize(runs, args.workloads, names, extra={"azurite_cpu": "Azurite CPU-s/GiB"})
    text = report.table(
        summary,
        titles={key: _title(key, args) for key in args.workloads},
        units=dict.fromkeys(args.workloads, "MB/s"),
        cpu_labels=dict.fromkeys(args.workloads, "CPU-s/GiB"),
        labels={who.name: who.label for who in everyone},
        absent={},
    )
    text += "\nCPU-s/GiB: tusserver's process tree, or the ceiling's process; Azurite: its node process."
    document.update(duration_s=round(time.monotonic() - started, 1), summary=summary, table=text, runs=runs)
    run._write_json(args.json, document)
    print("\n" + text)
    print(f"\nJSON: {args.json}   ({document['duration_s']:.0f} s)")


if __name__ == "__main__":
    main()
