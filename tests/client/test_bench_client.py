"""bench/client.py runs small, so that it keeps working (as tests/test_bench_smoke.py does for the other
benchmarks): every client of C1 and both sides of C2, each upload verified. Not a speed test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_client_bench_runs_every_client_and_verifies_every_upload(tmp_path: Path) -> None:
    report = tmp_path / "client.json"
    command = [
        sys.executable, str(BENCH / "client.py"), "--quick", "--size", "4M", "--parallel-size", "33M",
        "--delay", "0.005", "--tmp-dir", str(tmp_path), "--json", str(report),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = json.loads(report.read_text())["runs"]
    assert sorted((run["workload"], run["client"], run["parallel"]) for run in runs) == [
        ("C1", "raw-patches", 1),
        ("C1", "raw-patches-digest", 1),
        ("C1", "tus-js-client", 1),
        ("C1", "tuspy", 1),
        ("C1", "tusserver-client", 1),
        ("C1", "tusserver-client-nodigest", 1),
        ("C2", "tusserver-client", 1),
        ("C2", "tusserver-client", 4),
    ]
    assert all(run["verified"] for run in runs)
