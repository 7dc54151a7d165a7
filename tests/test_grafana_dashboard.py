"""examples/grafana-dashboard.json reads what the server serves: every metric its queries name is in the server's
`/metrics` output after a scripted set of requests, and every label it groups by is one of that metric's."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from storage_backends.memory import MemoryStorage
from tusserver import HookRequest, MemoryStateStore, Settings, create_app

DASHBOARD = Path(__file__).parent.parent / "examples" / "grafana-dashboard.json"
METRIC = re.compile(r"\b(?:tusserver|process)_[a-z_]+\b")
GROUPED_BY = re.compile(r"\bby \(([^)]*)\)")
SCRAPE_LABELS = {"instance", "job", "le"}  # added by Prometheus when it scrapes, or a histogram's own
TUS = {"Tus-Resumable": "1.0.0"}


def queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL query of the dashboard: its panels' targets and its variables' queries."""
    found = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found.append(variable["definition"])
    return found


async def served_labels(tmp_path: Path) -> dict[str, set[str]]:
    """Each sample name of `/metrics` after an upload, an error and a hook, with the label names it has."""

    async def post_finish(request: HookRequest) -> None:
        return None

    app = create_app(
        Settings(data_dir=tmp_path),
        storage=MemoryStorage(),
        state=MemoryStateStore(),
        hooks={"post-finish": post_finish},
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        created = await client.post("/files/", headers=TUS | {"Upload-Length": "3"})
        headers = TUS | {"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
        assert (await client.patch(created.headers["Location"], content=b"abc", headers=headers)).status_code == 204
        assert (await client.delete(created.headers["Location"], headers=TUS)).status_code == 204
        assert (await client.head("/files/" + "f" * 32, headers=TUS)).status_code == 404
        text = (await client.get("/metrics")).text
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


@pytest.mark.anyio
async def test_every_metric_the_dashboard_reads_is_served(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    served = await served_labels(tmp_path)
    read = queries(dashboard)
    assert len(read) >= 10
    for query in read:
        names = set(METRIC.findall(query))
        assert names, query
        unknown = names - served.keys()
        assert not unknown, f"{query}: not in /metrics: {unknown}"
        for group in GROUPED_BY.findall(query):
            wanted = {label.strip() for label in group.split(",")} - SCRAPE_LABELS
            for name in names:
                assert wanted <= served[name], f"{query}: {name} has no label {wanted - served[name]}"


def test_dashboard_panels_use_the_chosen_data_source() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert all(target["datasource"]["uid"] == "${datasource}" for target in panel["targets"]), panel["title"]
