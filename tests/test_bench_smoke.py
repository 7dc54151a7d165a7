"""The benchmark is not a test, but CI runs it small (issue 3) so that it keeps working: every workload of
bench/run.py on every server it knows (installing the @tus/server peer on first use; tusserver with hooks sends
its events to the harness's receiver, issue 20), and both workloads of bench/s3.py against SeaweedFS and of
bench/azure_blob.py against Azurite, with a few MiB. Each run must have finished without errors and verified its
bytes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def run_bench(script: str, tmp_path: Path, *args: str) -> list[dict[str, Any]]:
    report = tmp_path / "report.json"
    command = [sys.executable, str(BENCH / script), "--quick", "--nice", "0", "--json", str(report), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=540, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Ratios are tusserver / other" in done.stdout
    runs: list[dict[str, Any]] = json.loads(report.read_text())["runs"]
    failed = [
        (run["workload"], run["server"], run.get("errors")) for run in runs if run["errors"] or not run["verified"]
    ]
    assert failed == []
    return runs


@pytest.mark.timeout(600)
def test_bench_runs_every_workload_on_every_server(tmp_path: Path) -> None:
    runs = run_bench(
        "run.py", tmp_path, "--size", "4M", "--chunk", "1M", "--small-count", "20", "--head-count", "100",
        "--head-uploads", "5", "--warmup", "2", "--tmp-dir", str(tmp_path),
    )  # fmt: skip
    pairs = {(run["workload"], run["server"]) for run in runs}
    tus_servers = ["tusserver", "tusserver-granian", "tus-node"]
    expected = {(workload, server) for workload in ("W1", "W2", "W3") for server in [*tus_servers, "sink"]}
    expected |= {("W4", server) for server in tus_servers}
    expected |= {("W5", "tusserver"), ("W5", "tusserver-granian")}
    expected |= {("W1", "tusserver-hooks-receive"), ("W3", "tusserver-hooks-default")}
    if shutil.which("nginx"):  # the C ceiling of W1, where nginx is installed (.ci/test installs it)
        expected.add(("W1", "nginx"))
    assert pairs == expected
    # The servers with hooks: their receiver got every event of every upload (2 warm-up uploads + the run's).
    received = {run["server"]: run["hooks"]["received"] for run in runs if "hooks" in run}
    assert received["tusserver-hooks-receive"].keys() == {"post-receive"}
    assert received["tusserver-hooks-receive"]["post-receive"] >= 3
    assert received["tusserver-hooks-default"] == dict.fromkeys(
        ["post-create", "post-finish", "post-receive", "pre-create"], 22
    )


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("script", "piece", "store", "servers"),
    [
        ("s3.py", "--part-size", "S3", ["tusserver", "tusserver-granian", "s3-client", "s3-client-unsigned"]),
        ("azure_blob.py", "--block-size", "Azure", ["tusserver", "azure-client"]),
    ],
)
def test_store_bench_runs_both_workloads_against_the_ceiling(
    tmp_path: Path, script: str, piece: str, store: str, servers: list[str]
) -> None:
    runs = run_bench(
        script, tmp_path, "--size", "12M", piece, "5M", "--chunk", "6M", "--warmup", "2", "--tmp-dir", str(tmp_path)
    )
    pairs = {(run["workload"], run["server"]) for run in runs}
    assert pairs == {(f"{workload}-{store}", server) for workload in ("W1", "W2") for server in servers}


@pytest.mark.timeout(300)
def test_slow_connections_bench_runs_every_scenario(tmp_path: Path) -> None:
    """bench/slow_connections.py (issue 19) small: every scenario answers its fresh HEADs with 200 while the slow
    connections stay open ("over" holds more than the connection limit: idle ones are closed to make room)."""
    report = tmp_path / "report.json"
    command = [sys.executable, str(BENCH / "slow_connections.py"), "--slow", "30", "--samples", "10",
               "--tmp-dir", str(tmp_path), "--json", str(report)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results: list[dict[str, Any]] = json.loads(report.read_text())["results"]
    assert {result["scenario"] for result in results} == {"none", "heads", "bodies", "over"}
    assert {result["scenario"]: result["statuses"] for result in results} == {
        scenario: {"200": 10} for scenario in ("none", "heads", "bodies", "over")
    }
