"""The benchmark's summary (bench/report.py): ratios on medians, and the same ratios round by round."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPORT = Path(__file__).resolve().parent.parent / "bench" / "report.py"


@pytest.fixture(scope="module")
def report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report", REPORT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run(server: str, round_: int, rate: float, *, kept: bool = True, errors: tuple[str, ...] = ()) -> dict[str, Any]:
    usage = {"contaminated": False}
    return {"workload": "W1", "server": server, "round": round_, "rate": rate, "kept": kept, "errors": list(errors),
            "verified": True, "usage": usage}  # fmt: skip


def test_round_by_round_ratios_pair_runs_of_the_same_round(report: ModuleType) -> None:
    runs = [
        run("tusserver", 0, 300), run("tus-node", 0, 100),  # 3x
        run("tusserver", 1, 200), run("tus-node", 1, 100),  # 2x
        run("tusserver", 2, 500), run("tus-node", 2, 125),  # 4x
        run("tusserver", 3, 100), run("tus-node", 3, 50),  # 2x
        run("tusserver", 3, 900, kept=False),  # an attempt the harness did not keep
        run("tus-node", 3, 900, errors=("timeout",)),  # a failed one
        run("tus-node", 4, 10),  # no partner in its round
    ]  # fmt: skip
    summary = report.summarize(runs, ["W1"], ["tusserver", "tus-node"])
    assert summary["W1"]["rate_by_round"] == {"tusserver/tus-node": {"median": 2.5, "min": 2.0, "max": 4.0, "n": 4}}
    # The ratio of the medians stays the headline: 250 / 100.
    assert summary["W1"]["ratios"]["tusserver/tus-node"]["rate"] == 2.5


def test_the_table_shows_both(report: ModuleType) -> None:
    runs = [run("tusserver", 0, 300), run("tus-node", 0, 100), run("tusserver", 1, 200), run("tus-node", 1, 100)]
    summary = report.summarize(runs, ["W1"], ["tusserver", "tus-node"])
    text = report.table(summary, {"W1": "one PATCH"}, {"W1": "MB/s"}, {"W1": "CPU-s/GiB"}, {}, {})
    assert "tusserver / tus-node: MB/s 2.50x (MB/s round by round: 2.50x [2.00-3.00])" in text


def test_headroom_is_the_ceilings_margin_over_the_peer(report: ModuleType) -> None:
    runs = [run("tusserver", 0, 300), run("tus-node", 0, 100), run("sink", 0, 220)]
    summary = report.summarize(runs, ["W1"], ["tusserver", "tus-node", "sink"], ceilings=["sink"])
    # Only the ceiling over the peer: not over tusserver, and not tusserver over anything.
    assert summary["W1"]["headroom"] == {"sink/tus-node": {"rate": 2.2}}
    text = report.table(summary, {"W1": "one PATCH"}, {"W1": "MB/s"}, {"W1": "CPU-s/GiB"}, {}, {})
    assert "  headroom: sink / tus-node: MB/s 2.20x" in text
    # Without ceilings, no headroom.
    assert "headroom" not in report.summarize(runs, ["W1"], ["tusserver", "tus-node", "sink"])["W1"]


def test_targets_are_met_when_one_asgi_server_meets_them(report: ModuleType) -> None:
    servers = ["tusserver", "tusserver-granian", "tus-node", "sink"]
    runs = [run("tusserver", 0, 240), run("tusserver-granian", 0, 260), run("tus-node", 0, 100), run("sink", 0, 400)]
    results = report.check_targets(report.summarize(runs, ["W1"], servers))
    # Only the targets these runs can judge (no CPU, RSS or other workloads in them).
    assert [(result["target"], result["met"]) for result in results] == [
        ("W1 MB/s >= 2.5x @tus/server", True),  # granian: 2.6x
        ("W1 MB/s >= 0.8x the socket sink", False),  # 0.6x and 0.65x
    ]
    assert results[0]["values"] == {"tusserver": 2.4, "tusserver-granian": 2.6}


def test_a_miss_by_a_hair_is_shown_as_a_miss(report: ModuleType) -> None:
    runs = [run("tusserver", 0, 249.6), run("tus-node", 0, 100)]
    results = report.check_targets(report.summarize(runs, ["W1"], ["tusserver", "tus-node"]))
    assert report.target_lines(results, {"tus-node": "@tus/server"})[1:] == [
        "  MISSED  W1 MB/s >= 2.5x @tus/server: tusserver 2.496x"
    ]
