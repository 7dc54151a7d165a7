"""What one benchmark run costs: server CPU, peak RSS, client CPU, and the CPU other processes took meanwhile.

- Server CPU is user+sys of the server's process tree (all threads), from psutil, before and after the run.
- Peak RSS is the sum of the kernel's VmHWM over the tree, reset before the run by writing 5 to
  /proc/PID/clear_refs; where that is refused, a 50 ms sampler of RSS takes its place.
- Client CPU is this process plus its reaped children (curl), from os.times().
- Foreign CPU is what every process outside this harness's tree used during the run; a run is *contaminated*
  when it exceeds max(0.3 s, 10 % of the wall time).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

MB = 1_000_000
SAMPLE_INTERVAL = 0.05
CONTAMINATION_FLOOR_S = 0.3
CONTAMINATION_SHARE = 0.10

ProcessKey = tuple[int, float]


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants that exist now."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_cpu(processes: list[psutil.Process]) -> tuple[float, float]:
    """Summed (user, system) CPU seconds of the processes that are still alive."""
    user = system = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        user += times.user
        system += times.system
    return user, system


def own_cpu() -> float:
    """CPU seconds of this process and its reaped children."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def machine_busy() -> float:
    """Non-idle CPU seconds of the whole machine, all cores, since boot."""
    times = psutil.cpu_times()
    return float(sum(times)) - times.idle - getattr(times, "iowait", 0.0)


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def rss_mb(processes: list[psutil.Process]) -> float:
    """Current resident memory of the processes, in MB (10^6 bytes)."""
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / MB


class PeakRss:
    """Peak resident memory of a process tree between start() and stop()."""

    def __init__(self, processes: list[psutil.Process]) -> None:
        self.processes = processes
        self.method = "VmHWM"
        self._peak = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            for process in self.processes:
                Path(f"/proc/{process.pid}/clear_refs").write_text("5")
        except OSError:
            self.method = "sampled"
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            self._peak = max(self._peak, rss_mb(self.processes))

    def stop(self) -> float:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            return max(self._peak, rss_mb(self.processes))
        total_kib = 0
        for process in self.processes:
            try:
                total_kib += _status_kib(process.pid, "VmHWM")
            except OSError:
                continue
        return total_kib * 1024 / MB


def _own_tree() -> set[int]:
    return {process.pid for process in process_tree(os.getpid())}


def foreign_snapshot() -> dict[ProcessKey, float]:
    """CPU seconds of every process outside this harness's tree, keyed by (pid, start time)."""
    ours = _own_tree()
    snapshot: dict[ProcessKey, float] = {}
    for process in psutil.process_iter():
        if process.pid in ours:
            continue
        try:
            times = process.cpu_times()
            snapshot[(process.pid, process.create_time())] = times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return snapshot


def foreign_cpu(before: dict[ProcessKey, float], after: dict[ProcessKey, float]) -> float:
    """CPU the foreign processes used between two snapshots (processes that ended meanwhile are missed)."""
    return sum(cpu - before.get(key, 0.0) for key, cpu in after.items())


def wait_for_quiet(max_wait: float, threshold_percent: float = 15.0) -> float:
    """Wait until the machine's CPU use is below the threshold, for at most max_wait seconds; returns the wait."""
    start = time.monotonic()
    while time.monotonic() - start < max_wait:
        if psutil.cpu_percent(interval=0.5) < threshold_percent:
            break
    return time.monotonic() - start


@dataclass
class Usage:
    """The measured cost of one run."""

    wall_s: float
    server_user_s: float
    server_sys_s: float
    server_processes: int
    client_cpu_s: float
    foreign_cpu_s: float
    machine_busy_s: float
    rss_idle_mb: float
    rss_peak_mb: float
    rss_method: str

    @property
    def server_cpu_s(self) -> float:
        return self.server_user_s + self.server_sys_s

    @property
    def contaminated(self) -> bool:
        return self.foreign_cpu_s > max(CONTAMINATION_FLOOR_S, CONTAMINATION_SHARE * self.wall_s)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "server_cpu_s": self.server_cpu_s, "contaminated": self.contaminated}


class Meter:
    """Measures the server tree of `pid` around a `with` block; the result is in `.usage` afterwards."""

    def __init__(self, pid: int) -> None:
        self.processes = process_tree(pid)
        self.peak = PeakRss(self.processes)
        self._usage: Usage | None = None
        self._start: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)
        self._foreign: dict[ProcessKey, float] = {}
        self._idle = 0.0

    def __enter__(self) -> Meter:
        self._foreign = foreign_snapshot()
        self._idle = rss_mb(self.processes)
        self.peak.start()
        user, system = tree_cpu(self.processes)
        self._start = (user, system, own_cpu(), machine_busy(), time.perf_counter())
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        wall = time.perf_counter() - self._start[4]
        client = own_cpu() - self._start[2]
        user, system = tree_cpu(self.processes)
        busy = machine_busy() - self._start[3]
        peak = self.peak.stop()
        foreign = foreign_cpu(self._foreign, foreign_snapshot())
        self._usage = Usage(
            wall_s=wall,
            server_user_s=user - self._start[0],
            server_sys_s=system - self._start[1],
            server_processes=len(self.processes),
            client_cpu_s=client,
            foreign_cpu_s=foreign,
            machine_busy_s=busy,
            rss_idle_mb=self._idle,
            rss_peak_mb=peak,
            rss_method=self.peak.method,
        )

    @property
    def usage(self) -> Usage:
        if self._usage is None:
            raise RuntimeError("the meter has not finished")
        return self._usage
