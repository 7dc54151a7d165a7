"""Benchmark tusserver's S3 storage against SeaweedFS, with the S3 client alone as the ceiling, interleaved.

Run from the repository root:  .venv/bin/python bench/s3.py            (full: 3 rounds, 1 GiB, about 10 min)
                               .venv/bin/python bench/s3.py --quick    (smoke test: 1 round, 32 MiB, < 1 min)

One SeaweedFS `weed mini` serves every run. W1-S3 sends the file in one PATCH (curl -T) and W2-S3 in
`--chunk` PATCHes on one connection (curl --next) to `tusserver --storage s3`; the ceiling uploads the same file
straight to the same SeaweedFS with aiobotocore (bench/s3_ceiling.py): one multipart upload, the same part size,
the same parts in flight. Every stored object is read back with a GET and compared by size and xxh128.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import json
import os
import select
import shutil
import signal
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
import xxhash
from measure import Meter, process_tree, rss_mb, tree_cpu, wait_for_quiet
from seaweed import Seaweed, aws_environment
from servers import BENCH, ServerError, TusServer, start, upload_id
from workloads import W1, W2, Inputs, Outcome, Verification, Workload, WorkloadError, warm_up

GIB = 1 << 30
FULL = {"rounds": 3, "size": "1G", "retries": 1, "quiet_wait": 5.0}
QUICK = {"rounds": 1, "size": "32M", "retries": 0, "quiet_wait": 0.0}
WORKLOADS = ("W1-S3", "W2-S3")
SERVERS = ("tusserver", "tusserver-granian", "s3-client", "s3-client-unsigned")
CEILING = BENCH / "s3_ceiling.py"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add = parser.add_argument
    add("--quick", action="store_true", help="smoke test: 1 round of 32M, no retries, no quiet wait")
    add("--rounds", type=int, help="rounds; every server runs every workload once per round (full: 3)")
    add("--size", help="upload size, e.g. 1G (full: 1G, quick: 32M)")
    add("--chunk", default="8M", help="W2-S3 PATCH size (default 8M)")
    add("--part-size", default="8M", help="S3 part size, tusserver's and the ceiling's (default 8M)")
    add("--part-concurrency", type=int, default=4, help="S3 parts in flight per upload, both sides (default 4)")
    add("--buffer-budget", default="256M", help="tusserver --buffer-budget (default 256M)")
    add("--servers", type=run._csv, default=list(SERVERS), help="comma-separated, from " + ",".join(SERVERS))
    add("--workloads", type=run._csv, default=list(WORKLOADS), help="comma-separated, from " + ",".join(WORKLOADS))
    add("--json", type=Path, default=BENCH / "results" / "s3-latest.json", help="where the JSON report goes")
    add("--retries", type=int, help="extra runs when a run is contaminated by other processes (full: 1)")
    add("--quiet-wait", type=float, help="seconds to wait for the machine to go quiet before a run (full: 5)")
    add("--nice", type=int, default=-10, help="niceness of the harness and all it starts (default -10; needs root)")
    add("--warmup", type=int, default=10, help="untimed tiny uploads sent to tusserver before each run (default 10)")
    add("--timeout", type=float, default=300.0, help="seconds any one run may take (default 300)")
    add("--tmp-dir", type=Path, default=None, help="where the source and SeaweedFS's data go (default: system temp)")
    add("--tusserver-args", default="", help="extra tusserver flags")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for name in ("size", "chunk", "part_size", "buffer_budget"):
        setattr(args, name, run.parse_size(getattr(args, name)))
    if unknown := [name for name in args.workloads if name not in WORKLOADS]:
        parser.error(f"unknown workloads {unknown}")
    if unknown := [name for name in args.servers if name not in SERVERS]:
        parser.error(f"unknown servers {unknown}")
    if args.part_size < 5 << 20:
        parser.error("--part-size must be at least 5M (S3's minimum)")
    if args.part_concurrency < 1:
        parser.error("--part-concurrency must be at least 1")
    return args


# --- who takes part ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Setup:
    """The shared S3 store and the part settings both tusserver and the ceiling use."""

    store: Seaweed
    part_size: int
    concurrency: int
    budget: int


def run_prefix(run_dir: Path) -> str:
    """Every run writes under its own key prefix, removed after it is verified."""
    return f"{run_dir.name}/"


class TusS3Server(TusServer):
    """`tusserver --storage s3` (uvicorn), pointed at the shared SeaweedFS, one key prefix per run."""

    name = "tusserver"
    label = "tusserver (uvicorn)"

    def __init__(self, setup: S3Setup, extra_args: list[str]) -> None:
        super().__init__(extra_args)
        self.setup = setup

    def version(self) -> str:
        return f"{super().version()}, aiobotocore {metadata.version('aiobotocore')}"

    def command(self, port: int, data_dir: Path, scratch: Path) -> list[str]:
        setup = self.setup
        s3 = ["--storage", "s3", "--s3-bucket", setup.store.bucket, "--s3-endpoint", setup.store.endpoint,
              "--s3-prefix", run_prefix(data_dir.parent), "--s3-part-size", str(setup.part_size),
              "--s3-part-concurrency", str(setup.concurrency), "--buffer-budget", str(setup.budget)]  # fmt: skip
        base = super().command(port, data_dir, scratch)
        return [*base[: len(base) - len(self.extra_args)], *s3, *self.extra_args]

    def object_key(self, data_dir: Path, upload_url: str) -> str:
        return run_prefix(data_dir.parent) + upload_id(upload_url)

    def env(self) -> dict[str, str]:
        return aws_environment()


class TusS3GranianServer(TusS3Server):
    name = "tusserver-granian"
    label = "tusserver (granian)"

    def version(self) -> str:
        versions = f"tusserver {metadata.version('tusserver')}, granian {metadata.version('granian')}"
        return f"{versions}, aiobotocore {metadata.version('aiobotocore')}"

    def command(self, port: int, data_dir: Path, scratch: Path) -> list[str]:
        return [*super().command(port, data_dir, scratch), "--server", "granian"]


@dataclass(frozen=True)
class Ceiling:
    """bench/s3_ceiling.py: the file as one multipart upload by aiobotocore, no HTTP server in between."""

    name: str
    label: str
    unsigned: bool
    role: ClassVar[str] = "ceiling"

    def version(self) -> str:
        signing = "UNSIGNED-PAYLOAD" if self.unsigned else "SigV4 with SHA-256 of each part, as tusserver"
        return f"aiobotocore {metadata.version('aiobotocore')} on uvloop, {signing}"


def participants(args: argparse.Namespace, setup: S3Setup) -> list[TusS3Server | Ceiling]:
    extra = args.tusserver_args.split()
    known: dict[str, TusS3Server | Ceiling] = {
        "tusserver": TusS3Server(setup, extra),
        "tusserver-granian": TusS3GranianServer(setup, extra),
        "s3-client": Ceiling("s3-client", "aiobotocore multipart (ceiling)", unsigned=False),
        "s3-client-unsigned": Ceiling("s3-client-unsigned", "aiobotocore, unsigned payload", unsigned=True),
    }
    return [known[name] for name in args.servers]


# --- W1-S3 / W2-S3 against tusserver: the W1/W2 clients, verified in S3 ------------------------------------


class _S3Verified(Workload):
    upload_url: str

    def verify(self, outcome: Outcome) -> Verification:
        server = self.server.server
        assert isinstance(server, TusS3Server)
        key = server.object_key(self.server.data_dir, self.upload_url)
        return verify_object(server.setup.store, key, self.inputs)


class W1S3(_S3Verified, W1):
    key = "W1-S3"


class W2S3(_S3Verified, W2):
    key = "W2-S3"


TUS_WORKLOADS: dict[str, type[Workload]] = {"W1-S3": W1S3, "W2-S3": W2S3}


def verify_object(store: Seaweed, key: str, inputs: Inputs) -> Verification:
    """GET the object and compare its size and xxh128 with the source's."""
    try:
        size, digest = store.digest(key)
    except Exception as exc:  # any failure to read it back fails the run, with its reason
        return Verification(False, 0, 0, f"GET {key}: {type(exc).__name__}: {exc}"[:300])
    ok = size == inputs.size and digest == inputs.source_hash
    detail = "object: size and xxh128 match" if ok else f"object {key}: {size} B xxh128 {digest}"
    return Verification(ok, 1, size, detail)


# --- one run -------------------------------------------------------------------------------------------------


class S3Meter:
    """CPU seconds of the S3 server's process tree during a `with` block."""

    def __init__(self, pid: int) -> None:
        self.processes = process_tree(pid)
        self.cpu_s = 0.0

    def __enter__(self) -> S3Meter:
        self.cpu_s = -sum(tree_cpu(self.processes))
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu_s += sum(tree_cpu(self.processes))


def _measured(record: dict[str, Any], outcome: Outcome, verification: Verification, meter: Meter, s3: S3Meter) -> None:
    """The record's measurements, in run.py's field names (and the S3 server's CPU besides)."""
    usage = meter.usage.as_dict()
    gib = outcome.bytes / GIB
    record.update(
        wall_s=outcome.wall_s,
        bytes=outcome.bytes,
        ops=outcome.ops,
        connections=outcome.connections,
        errors=record["errors"] + outcome.errors[:20],
        verified=verification.ok,
        verify_detail=verification.detail,
        bytes_verified=verification.bytes,
        p50_ms=None,
        p99_ms=None,
        usage=usage,
        rate=outcome.bytes / 1e6 / outcome.wall_s if outcome.wall_s > 0 else None,
        server_cpu_s=usage["server_cpu_s"],
        server_cpu=usage["server_cpu_s"] / gib if gib else None,
        client_cpu_s=usage["client_cpu_s"],
        foreign_cpu_s=usage["foreign_cpu_s"],
        rss_peak_mb=usage["rss_peak_mb"],
        s3_cpu_s=s3.cpu_s,
        s3_cpu=s3.cpu_s / gib if gib else None,
    )


def run_tus(server: TusS3Server, key: str, inputs: Inputs, args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    """Start tusserver, warm it up, measure one W1-S3/W2-S3 upload, stop it, verify the object in S3."""
    record: dict[str, Any] = {"workload": key, "server": server.name, "errors": [], "verified": False}
    store = server.setup.store
    try:
        running = start(server, run_dir)
    except ServerError as exc:
        return {**record, "errors": [str(exc)[:2000]]}
    workload = TUS_WORKLOADS[key](inputs, running)
    result: tuple[Outcome, Meter, S3Meter] | None = None
    try:
        warm_up(running.url, args.warmup, inputs.timeout)
        workload.prepare()
        record["quiet_wait_s"] = wait_for_quiet(args.quiet_wait)
        with Meter(running.process.pid) as meter, S3Meter(_pid(store)) as s3:
            outcome = workload.execute()
        result = (outcome, meter, s3)
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
    """Start bench/s3_ceiling.py, let it connect and create the upload, measure the upload, verify the object."""
    record: dict[str, Any] = {"workload": key, "server": ceiling.name, "errors": [], "verified": False}
    setup: S3Setup = args.setup
    object_key = f"{run_prefix(run_dir)}{key.lower()}.bin"
    command = [sys.executable, str(CEILING), "--endpoint", setup.store.endpoint, "--bucket", setup.store.bucket,
               "--key", object_key, "--file", str(inputs.source), "--part-size", str(setup.part_size),
               "--concurrency", str(setup.concurrency), *(["--unsigned"] if ceiling.unsigned else [])]  # fmt: skip
    run_dir.mkdir(parents=True)
    log_path = run_dir / "ceiling.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=aws_environment(),
            cwd=run_dir,
            start_new_session=True,
        )
    assert process.stdin is not None
    result: tuple[Outcome, Meter, S3Meter] | None = None
    try:
        if (line := _read_line(process, 60)) != "ready":
            raise WorkloadError(f"the ceiling did not get ready: {line!r}")
        record["quiet_wait_s"] = wait_for_quiet(args.quiet_wait)
        with Meter(process.pid) as meter, S3Meter(_pid(setup.store)) as s3:
            started = time.perf_counter()
            process.stdin.write(b"go\n")
            process.stdin.flush()
            line = _read_line(process, inputs.timeout)
            wall = time.perf_counter() - started
        answer = json.loads(line)
        outcome = Outcome(wall_s=wall, bytes=answer["bytes"], ops=answer["parts"])
        record["ceiling_wall_s"] = answer["wall_s"]
        result = (outcome, meter, s3)
    except (WorkloadError, OSError, ValueError, KeyError) as exc:
        record["errors"] = [f"{type(exc).__name__}: {exc}"[:500]]
    finally:
        record["exit_code"] = _end(process)
        if record["exit_code"] not in (0, None) or record["errors"]:
            record["server_log"] = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
    if result is not None:
        _measured(record, result[0], verify_object(setup.store, object_key, inputs), result[1], result[2])
        record.update(parts=result[0].ops, part_size=setup.part_size, concurrency=setup.concurrency)
    return record


def _pid(store: Seaweed) -> int:
    assert store.process is not None
    return store.process.pid


def _read_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    """One line of the process's stdout, within `timeout` seconds; "" if it ended first."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        raise WorkloadError(f"no answer within {timeout:.0f} s")
    return process.stdout.readline().decode(errors="replace").strip()


def _end(process: subprocess.Popen[bytes]) -> int | None:
    """Close the ceiling's stdin (it exits), or end its process group."""
    with contextlib.suppress(OSError):
        assert process.stdin is not None
        process.stdin.close()
    try:
        return process.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return process.wait(10)


def run_one(
    who: TusS3Server | Ceiling, key: str, inputs: Inputs, args: argparse.Namespace, run_dir: Path
) -> dict[str, Any]:
    """One run of either kind; afterwards the run's objects and files are deleted and dirty pages synced."""
    if isinstance(who, Ceiling):
        record = run_ceiling(who, key, inputs, args, run_dir)
    else:
        record = run_tus(who, key, inputs, args, run_dir)
    try:
        record["objects_removed"] = args.setup.store.delete_prefix(run_prefix(run_dir))
    except Exception as exc:  # clean-up only; the next run has a prefix of its own
        record["cleanup_error"] = f"{type(exc).__name__}: {exc}"[:300]
    record["s3_rss_mb"] = rss_mb(process_tree(_pid(args.setup.store)))
    shutil.rmtree(run_dir, ignore_errors=True)
    os.sync()
    return record


# --- the whole benchmark -------------------------------------------------------------------------------------


def run_all(
    args: argparse.Namespace, everyone: list[TusS3Server | Ceiling], inputs: Inputs, work: Path
) -> list[dict[str, Any]]:
    """Round by round, workload by workload, everyone in turn; the order rotates each round (as run.py)."""
    runs: list[dict[str, Any]] = []
    sequence = 0
    for round_index in range(args.rounds):
        shift = round_index % len(everyone)
        order = everyone[shift:] + everyone[:shift]
        for key in args.workloads:
            for who in order:
                attempt = functools.partial(run_one, who, key, inputs, args)
                slot = work / f"run-{sequence}"
                runs += run.until_clean(attempt, slot, _progress, round_index=round_index, args=args)
                sequence += 1
    return runs


def _progress(record: dict[str, Any], round_index: int, rounds: int) -> str:
    head = f"[round {round_index + 1}/{rounds}] {record['workload']} {record['server']:<18}"
    if record["errors"] or record.get("rate") is None:
        return f"{head} FAILED: {'; '.join(record['errors'][:2])}"
    usage = record["usage"]
    return (
        f"{head} {record['rate']:7.1f} MB/s, CPU {record['server_cpu']:.2f} s/GiB, "
        f"S3 server CPU {record['s3_cpu']:.2f} s/GiB, peak RSS {record['rss_peak_mb']:.0f} MB, "
        f"{'verified' if record['verified'] else 'NOT VERIFIED'}, "
        f"foreign CPU {usage['foreign_cpu_s']:.2f} s{' (contaminated)' if usage['contaminated'] else ''}"
    )


def build_inputs(args: argparse.Namespace, work: Path) -> Inputs:
    """The random source file and its W2-S3 pieces, written once."""
    source, pieces_dir = work / "source.bin", work / "pieces"
    pieces_dir.mkdir()
    digest = xxhash.xxh3_128()
    pieces: list[Path] = []
    with source.open("wb") as whole:
        for index, offset in enumerate(range(0, args.size, args.chunk)):
            piece = pieces_dir / f"{index:06d}" if any(key.startswith("W2") for key in args.workloads) else None
            run._generate(whole, piece, min(args.chunk, args.size - offset), digest)
            if piece is not None:
                pieces.append(piece)
    return Inputs(
        source=source,
        source_hash=digest.hexdigest(),
        size=args.size,
        chunk=args.chunk,
        pieces=pieces,
        payloads=[],
        small_size=0,
        concurrency=1,
        head_count=0,
        head_uploads=0,
        timeout=args.timeout,
    )


def _check_disk(args: argparse.Namespace, work: Path) -> None:
    # The source, its pieces, and what SeaweedFS keeps: deleted objects free their space only when it vacuums.
    runs = args.rounds * len(args.workloads) * len(args.servers) * (1 + args.retries)
    needed = (2 + runs) * args.size + GIB
    free = shutil.disk_usage(work).free
    if free < needed:
        sys.exit(f"not enough free space in {work}: {free / GIB:.1f} GiB free, {needed / GIB:.1f} GiB needed")


def _title(key: str, args: argparse.Namespace) -> str:
    size, part = run._human(args.size), run._human(args.part_size)
    sent = "one PATCH (curl -T)" if key == "W1-S3" else f"{run._human(args.chunk)} PATCHes on one connection"
    return (
        f"{size} in {sent} to tusserver --storage s3; ceiling: the file as one multipart upload"
        f" ({part} parts, {args.part_concurrency} in flight)"
    )


def _config(args: argparse.Namespace, store: Seaweed, priority: str) -> dict[str, Any]:
    return {
        "rounds": args.rounds,
        "size": args.size,
        "chunk": args.chunk,
        "part_size": args.part_size,
        "part_concurrency": args.part_concurrency,
        "buffer_budget": args.buffer_budget,
        "workloads": args.workloads,
        "servers": args.servers,
        "retries": args.retries,
        "quiet_wait_s": args.quiet_wait,
        "warmup": args.warmup,
        "priority": priority,
        "tusserver_args": args.tusserver_args,
        "quick": args.quick,
        "s3_server": f"SeaweedFS weed mini ({store.version()}), one for the whole benchmark, on 127.0.0.1",
        "client": "curl for W1-S3/W2-S3; bench/s3_ceiling.py (aiobotocore) for the ceilings",
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    priority = run._set_priority(args.nice)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="tusbench-s3-", dir=args.tmp_dir))
    store = Seaweed(work / "seaweed")
    try:
        _check_disk(args, work)
        inputs = build_inputs(args, work)
        store.start()
        args.setup = S3Setup(store, args.part_size, args.part_concurrency, args.buffer_budget)
        everyone = participants(args, args.setup)
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
    summary = report.summarize(runs, args.workloads, names, extra={"s3_cpu": "S3 server CPU-s/GiB"})
    text = report.table(
        summary,
        titles={key: _title(key, args) for key in args.workloads},
        units=dict.fromkeys(args.workloads, "MB/s"),
        cpu_labels=dict.fromkeys(args.workloads, "CPU-s/GiB"),
        labels={who.name: who.label for who in everyone},
        absent={},
    )
    text += "\nCPU-s/GiB: tusserver's process tree, or the ceiling's process; S3 server: the weed mini process."
    document.update(duration_s=round(time.monotonic() - started, 1), summary=summary, table=text, runs=runs)
    run._write_json(args.json, document)
    print("\n" + text)
    print(f"\nJSON: {args.json}   ({document['duration_s']:.0f} s)")


if __name__ == "__main__":
    main()
