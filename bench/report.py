"""Summaries of the raw runs: medians with min-max, ratios against the peer and the ceilings, and the text table."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

GIB = 1 << 30
SUBJECT = "tusserver"
# (metric, higher is better) for the ratio lines
RATIO_METRICS = (("rate", True), ("server_cpu", False), ("p99_ms", False), ("rss_peak_mb", False))
SUMMARY_METRICS = ("rate", "p50_ms", "p99_ms", "server_cpu", "rss_peak_mb", "client_cpu_s", "foreign_cpu_s")
# A workload compared with another one, server by server: W5 (parallel partials + final) against W1 (one stream).
CROSS = {"W5": "W1"}
# tusserver with hooks (issue 20), compared only with the same server without hooks, in the same run.
HOOKED = {"tusserver-hooks-receive": "tusserver", "tusserver-hooks-default": "tusserver"}


@dataclass(frozen=True)
class Target:
    """One of the issues' targets: `metric` of a tusserver variant in `workload`, as a ratio over `other`'s median
    (None: the value itself), at least (`at_least`) or at most `limit`. `subject` names the one server it is
    about (None: any of tusserver's ASGI servers may meet it)."""

    workload: str
    metric: str
    limit: float
    other: str | None
    at_least: bool
    text: str
    subject: str | None = None
    issue: int = 3

    def met_by(self, value: float) -> bool:
        return value >= self.limit if self.at_least else value <= self.limit


TARGETS = (
    Target("W1", "rate", 2.5, "tus-node", True, "W1 MB/s >= 2.5x @tus/server"),
    Target("W1", "rate", 0.8, "sink", True, "W1 MB/s >= 0.8x the socket sink"),
    Target("W1", "server_cpu", 1.0, None, False, "W1 server CPU <= 1.0 s/GiB"),
    Target("W2", "rate", 2.5, "tus-node", True, "W2 MB/s >= 2.5x @tus/server"),
    Target("W3", "rate", 3.0, "tus-node", True, "W3 uploads/s >= 3.0x @tus/server"),
    Target("W3", "p99_ms", 0.5, "tus-node", False, "W3 p99 <= 0.5x @tus/server"),
    Target("W1", "rss_peak_mb", 100, None, False, "W1 peak RSS <= 100 MB (issue 3 checks it at --size 5G)"),
    Target("W1", "rate", 0.9, "tusserver", True, "W1 with post-receive >= 0.9x W1 without hooks",
           "tusserver-hooks-receive", 20),
    Target("W3", "rate", 0.7, "tusserver", True, "W3 with default hooks >= 0.7x W3 without hooks",
           "tusserver-hooks-default", 20),
)  # fmt: skip
HEADINGS = {
    3: "Targets of issue 3 (on medians; met when one of tusserver's ASGI servers meets it):",
    20: "Targets of issue 20 (on medians; tusserver with hooks to an HTTP receiver over tusserver without, same run):",
}


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def spread(values: Sequence[float]) -> dict[str, float | int] | None:
    """median, min, max and n of the values; None for no values."""
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarize(
    runs: list[dict[str, Any]],
    workloads: list[str],
    servers: list[str],
    extra: dict[str, str] | None = None,
    ceilings: Sequence[str] = (),
) -> dict[str, Any]:
    """Per workload and server: spreads over the kept, error-free runs; plus ratios of the medians.

    `extra` maps further metrics of the runs to the headers of their table columns (after the client CPU).
    `ceilings` names the servers that only bound what is possible (the socket sink, nginx): their own ratios
    over the other servers that are not tusserver ("headroom") tell how far past the peer any server could
    have gone in this run.
    """
    extra = extra or {}
    summary: dict[str, Any] = {}
    for workload in workloads:
        per_server: dict[str, Any] = {}
        for server in servers:
            slot = [run for run in runs if run["workload"] == workload and run["server"] == server and run["kept"]]
            if slot:
                per_server[server] = _summarize_slot(slot, list(extra))
        summary[workload] = {"servers": per_server, "ratios": _ratios(per_server)}
        summary[workload]["rate_by_round"] = _rate_by_round([run for run in runs if run["workload"] == workload])
        headroom = _headroom(per_server, ceilings)
        if headroom:
            summary[workload]["headroom"] = headroom
        if extra:
            summary[workload]["extra_columns"] = extra
    for workload, base in CROSS.items():
        if workload in summary and base in summary:
            summary[workload]["versus"] = {
                "workload": base,
                "ratios": _cross_ratios(summary[workload]["servers"], summary[base]["servers"]),
            }
    return summary


def _summarize_slot(slot: list[dict[str, Any]], extra_metrics: Sequence[str] = ()) -> dict[str, Any]:
    good = [run for run in slot if not run["errors"]]
    result: dict[str, Any] = {
        "runs": len(slot),
        "ok": len(good),
        "clean": sum(not run["usage"]["contaminated"] for run in good),
        "verified": sum(run["verified"] for run in slot),
    }
    for metric in (*SUMMARY_METRICS, *extra_metrics):
        values = [run[metric] for run in good if run.get(metric) is not None]
        result[metric] = spread(values)
    return result


def _metric_ratios(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float]:
    pairs = {}
    for metric, _ in RATIO_METRICS:
        mine, other = ours.get(metric), theirs.get(metric)
        if mine and other and other["median"]:
            pairs[metric] = mine["median"] / other["median"]
    return pairs


def _subjects(names: Iterable[str]) -> list[str]:
    """tusserver on each of its ASGI servers, without hooks."""
    return [name for name in names if name.startswith(SUBJECT) and name not in HOOKED]


def _pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """The (subject, other) pairs the ratios compare: each tusserver variant with each server that is not one,
    and each tusserver with hooks with the same server without them."""
    pairs = [(subject, other) for subject in _subjects(names) for other in names if not other.startswith(SUBJECT)]
    return pairs + [(name, HOOKED[name]) for name in names if HOOKED.get(name) in names]


def _ratios(per_server: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Medians of each tusserver variant over each other server, keyed "subject/other"."""
    return {
        f"{subject}/{other}": _metric_ratios(per_server[subject], per_server[other])
        for subject, other in _pairs(list(per_server))
    }


def _headroom(per_server: dict[str, Any], ceilings: Sequence[str]) -> dict[str, dict[str, float]]:
    """Each ceiling's medians over each server that is neither tusserver nor a ceiling, keyed "ceiling/other"."""
    others = [name for name in per_server if not name.startswith(SUBJECT) and name not in ceilings]
    return {
        f"{ceiling}/{other}": _metric_ratios(per_server[ceiling], per_server[other])
        for ceiling in ceilings
        if ceiling in per_server
        for other in others
    }


def _rate_by_round(runs: list[dict[str, Any]]) -> dict[str, dict[str, float | int]]:
    """Each tusserver variant's rate over each other server's in the same round, spread over the rounds.

    The servers of a round run minutes apart at most, so the machine's slow drifts (PERF.md, BENCHMARKS.md)
    cancel out of these ratios; their min-max shows how far one round's verdict can be trusted.
    """
    rates: dict[str, dict[int, float]] = {}
    for run in runs:
        if run["kept"] and not run["errors"] and run.get("rate"):
            rates.setdefault(run["server"], {})[run["round"]] = run["rate"]
    by_round: dict[str, dict[str, float | int]] = {}
    for subject, other in _pairs(list(rates)):
        rounds = sorted(rates[subject].keys() & rates[other].keys())
        found = spread([rates[subject][r] / rates[other][r] for r in rounds])
        if found is not None:
            by_round[f"{subject}/{other}"] = found
    return by_round


def _cross_ratios(own: dict[str, Any], base: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each server's medians in one workload over the same server's in the base workload, and over every
    server's in the base workload that is not a tusserver variant (the peer, the ceilings); keyed "server/other"."""
    ratios: dict[str, dict[str, float]] = {}
    for server, stats in own.items():
        for other in [server, *(name for name in base if not name.startswith(SUBJECT))]:
            if other in base:
                ratios[f"{server}/{other}"] = _metric_ratios(stats, base[other])
    return ratios


def check_targets(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target the summary can judge: every tusserver variant's value, and whether one of them meets it
    (the README says which ASGI server to use for which uploads)."""
    results = []
    for target in TARGETS:
        block = summary.get(target.workload)
        if block is None:
            continue
        subjects = [target.subject] if target.subject else _subjects(block["servers"])
        found = {name: _target_value(target, block, name) for name in subjects if name in block["servers"]}
        values = {name: value for name, value in found.items() if value is not None}
        if values:
            met = any(target.met_by(value) for value in values.values())
            result = {"target": target.text, "values": values, "met": met, "ratio": target.other is not None}
            if target.issue != 3:
                result["issue"] = target.issue
                if target.metric == "rate":  # how far one round's verdict moves, as in the ratio lines
                    result["by_round"] = {
                        name: block["rate_by_round"][pair]
                        for name in values
                        if (pair := f"{name}/{target.other}") in block.get("rate_by_round", {})
                    }
            results.append(result)
    return results


def _target_value(target: Target, block: dict[str, Any], server: str) -> float | None:
    """The server's median of the target's metric, or its ratio over the other server's median."""
    if target.other is None:
        value: float | None = (block["servers"][server].get(target.metric) or {}).get("median")
    else:
        value = block["ratios"].get(f"{server}/{target.other}", {}).get(target.metric)
    return value


def target_lines(results: list[dict[str, Any]], labels: dict[str, str]) -> list[str]:
    """The printed verdicts, one line per target."""
    lines: list[str] = []
    for issue, heading in HEADINGS.items():
        chosen = [result for result in results if result.get("issue", 3) == issue]
        lines += [heading] if chosen else []
        for result in chosen:
            # Three decimals for ratios, so that a miss by a hair (2.496x) does not print as the line itself (2.50x).
            shown = "{:.3f}x" if result["ratio"] else "{:.2f}"
            values = ", ".join(
                f"{labels.get(name, name)} {shown.format(value)}{_round_spread(result, name)}"
                for name, value in result["values"].items()
            )
            lines.append(f"  {'met   ' if result['met'] else 'MISSED'}  {result['target']}: {values}")
    return lines


def _round_spread(result: dict[str, Any], name: str) -> str:
    paired = result.get("by_round", {}).get(name)
    if paired is None or paired["n"] < 2:
        return ""
    return f" (round by round {paired['median']:.3f}x [{paired['min']:.3f}-{paired['max']:.3f}])"


# --- text table ----------------------------------------------------------------------------------------------


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(stats: dict[str, Any] | None, with_range: bool = False) -> str:
    if not stats:
        return "-"
    if with_range and stats["n"] > 1:
        return f"{_number(stats['median'])} [{_number(stats['min'])}-{_number(stats['max'])}]"
    return _number(stats["median"])


def _columns(unit: str, cpu_label: str, extra: dict[str, str]) -> list[str]:
    return [
        "server",
        f"{unit} median [min-max]",
        "p50 ms",
        "p99 ms",
        cpu_label,
        "peak RSS MB",
        "client CPU-s",
        *extra.values(),
        "verified",
        "runs (clean)",
    ]


def _row(label: str, stats: dict[str, Any], extra: dict[str, str]) -> list[str]:
    return [
        label,
        _cell(stats["rate"], with_range=True),
        _cell(stats["p50_ms"]),
        _cell(stats["p99_ms"]),
        _cell(stats["server_cpu"]),
        _cell(stats["rss_peak_mb"]),
        _cell(stats["client_cpu_s"]),
        *(_cell(stats.get(metric)) for metric in extra),
        f"{stats['verified']}/{stats['runs']}",
        f"{stats['ok']} ({stats['clean']})",
    ]


def _render(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def _ratio_lines(
    ratios: dict[str, dict[str, float]],
    labels: dict[str, str],
    unit: str,
    workloads: tuple[str, str] | None = None,
    by_round: dict[str, dict[str, float | int]] | None = None,
) -> list[str]:
    """One line per pair; `workloads` (ours, theirs) names the workloads when they differ (W5 / W1);
    `by_round` adds the spread of the pair's rate ratios taken round by round."""
    names = {"rate": unit, "server_cpu": "server CPU", "p99_ms": "p99", "rss_peak_mb": "peak RSS"}
    ours, theirs = (f" {workloads[0]}", f" {workloads[1]}") if workloads else ("", "")
    lines = []
    for pair, values in ratios.items():
        if not values:
            continue
        subject, other = pair.split("/", 1)
        text = ", ".join(f"{names[metric]} {value:.2f}x" for metric, value in values.items())
        paired = (by_round or {}).get(pair)
        if paired is not None and paired["n"] > 1:
            text += f" ({unit} round by round: {paired['median']:.2f}x [{paired['min']:.2f}-{paired['max']:.2f}])"
        lines.append(f"  {labels.get(subject, subject)}{ours} / {labels.get(other, other)}{theirs}: {text}")
    return lines


def table(
    summary: dict[str, Any],
    titles: dict[str, str],
    units: dict[str, str],
    cpu_labels: dict[str, str],
    labels: dict[str, str],
    absent: dict[str, dict[str, str]],
) -> str:
    """The printed report: one block per workload, then the ratio lines (us/other, on medians)."""
    out: list[str] = []
    for workload, block in summary.items():
        out.append(f"{workload}: {titles[workload]}")
        extra = block.get("extra_columns", {})
        rows = [_columns(units[workload], cpu_labels[workload], extra)]
        rows += [_row(labels.get(name, name), stats, extra) for name, stats in block["servers"].items()]
        out += _render(rows)
        out += [f"  {labels.get(name, name)}: {reason}" for name, reason in absent.get(workload, {}).items()]
        out += _ratio_lines(block["ratios"], labels, units[workload], by_round=block.get("rate_by_round"))
        out += _headroom_lines(block.get("headroom", {}), labels, units[workload])
        if workload in CROSS:
            out += _cross_lines(workload, block, labels, units[workload])
        out.append("")
    out.append("Ratios are tusserver / other on medians: above 1 is better for throughput, below 1 for CPU, p99, RSS.")
    out.append("Round by round: the median [min-max] of the ratios of runs in the same round (the servers alternate).")
    return "\n".join(out)


def _headroom_lines(headroom: dict[str, dict[str, float]], labels: dict[str, str], unit: str) -> list[str]:
    """The ceilings' own margin over the peer: no server could have gone further past the peer in this run."""
    rates = {pair: {"rate": values["rate"]} for pair, values in headroom.items() if "rate" in values}
    return [f"  headroom: {line.lstrip()}" for line in _ratio_lines(rates, labels, unit)]


def _cross_lines(workload: str, block: dict[str, Any], labels: dict[str, str], unit: str) -> list[str]:
    base = CROSS[workload]
    if "versus" not in block:
        return [f"  ({workload} / {base} ratios need {base} in --workloads)"] if block["servers"] else []
    return _ratio_lines(block["versus"]["ratios"], labels, unit, (workload, base))
