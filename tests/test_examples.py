"""Every example imports and serves tus discovery (STYLE.md B.6: import each one, send it an OPTIONS)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from starlette.applications import Starlette

EXAMPLES = [
    pytest.param("examples.minimal", "/files/", id="minimal"),
    pytest.param("examples.mount_in_app", "/api/uploads/", id="mount_in_app"),
]


def import_fresh(name: str) -> ModuleType:
    """Import (or re-run) an example module, so its app is built in the current directory."""
    if name in sys.modules:
        return importlib.reload(sys.modules[name])
    return importlib.import_module(name)


@pytest.fixture
async def example_app(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Starlette]:
    """The example's `app`, built with its relative "data" directory inside tmp_path; closed afterwards."""
    monkeypatch.chdir(tmp_path)
    module = import_fresh(request.param)
    yield module.app
    for value in vars(module).values():  # a mounted app's lifespan does not run: close each tus app itself
        if isinstance(value, Starlette) and hasattr(value.state, "tus"):
            await value.state.tus.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize(("example_app", "endpoint"), EXAMPLES, indirect=["example_app"])
async def test_example_answers_options(example_app: Starlette, endpoint: str, tmp_path: Path) -> None:
    transport = httpx.ASGITransport(app=example_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.options(endpoint)
    assert response.status_code == 200
    assert response.headers["tus-version"] == "1.0.0"
    assert (tmp_path / "data").is_dir()


def test_every_example_is_covered() -> None:
    examples = Path(__file__).parent.parent / "examples"
    names = {f"examples.{path.stem}" for path in examples.glob("*.py") if path.stem != "__init__"}
    assert names == {param.values[0] for param in EXAMPLES}
