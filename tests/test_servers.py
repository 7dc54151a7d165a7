"""Starting the app on its ASGI server: what happens before the first request."""

from __future__ import annotations

import gc
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tusserver import servers
from tusserver.settings import Settings


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test session collects as usual


def test_uvicorn_serves_an_app_whose_startup_objects_the_collector_no_longer_walks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unfrozen: None
) -> None:
    frozen_when_served: list[int] = []

    def serve(app: Any, **options: Any) -> None:
        frozen_when_served.append(gc.get_freeze_count())

    monkeypatch.setattr(uvicorn, "run", serve)
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # the test process keeps its handlers
    servers.run(Settings(data_dir=tmp_path))
    [frozen] = frozen_when_served
    assert frozen > 10_000  # the imports' and the app's objects


def test_a_granian_worker_builds_an_app_whose_startup_objects_the_collector_no_longer_walks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unfrozen: None
) -> None:
    monkeypatch.setenv(servers.SETTINGS_VARIABLE, Settings(data_dir=tmp_path).model_dump_json())
    servers.app_from_environment()
    assert gc.get_freeze_count() > 10_000
