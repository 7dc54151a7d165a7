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

from tusserver.coordination.hooks.model import HookEventData, HookRequest, HookResponse, HookUpload

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


HOOK_EXAMPLES = {"examples.hooks", "examples.webhook_receiver"}  # below; with a real server in test_hooks_e2e.py


# Examples run as their header comment says, by tests of their own: the file -> the test module that runs it.
RUN_ELSEWHERE = {
    "examples.tuspy_resume": "tests/e2e/test_example_clients.py",
    "examples.fastapi_jobs": "tests/test_example_portal.py",
    "js/upload.mjs": "tests/e2e/test_example_clients.py",
    "js/package.json": "tests/e2e/test_example_clients.py",  # its tus-js-client, for upload.mjs and browser/
    "browser/index.html": "tests/browser/test_example_page.py",
    "browser/upload.js": "tests/browser/test_example_page.py",
    "grafana-dashboard.json": "tests/test_grafana_dashboard.py",  # its queries read what /metrics serves
    "compose.yaml": "tests/test_compose.py",  # each service's command, run here; an upload through the proxy
    "compose-nginx.conf": "tests/test_compose.py",  # the compose proxy's configuration, run by nginx there
}
NOT_PROGRAMS = {"nginx-scale-out.conf"}  # configuration shown in the README, not run


def test_every_example_is_covered() -> None:
    examples = Path(__file__).parent.parent / "examples"
    names = {f"examples.{path.stem}" for path in examples.glob("*.py") if path.stem != "__init__"}
    assert names == {param.values[0] for param in EXAMPLES} | HOOK_EXAMPLES | {
        name for name in RUN_ELSEWHERE if name.startswith("examples.")
    }


def test_every_other_example_file_is_run_by_a_test() -> None:
    root = Path(__file__).parent.parent
    skipped = {"node_modules", "__pycache__"}
    files = {
        path.relative_to(root / "examples").as_posix()
        for path in (root / "examples").rglob("*")
        if path.is_file() and path.suffix != ".py" and not skipped & set(path.parts)
    }
    run_elsewhere = {name for name in RUN_ELSEWHERE if not name.startswith("examples.")}
    assert files - {"js/package-lock.json"} == run_elsewhere | NOT_PROGRAMS
    for name, test in RUN_ELSEWHERE.items():
        assert "examples" in (root / test).read_text(), (name, test)


def hook_request(event: str, **metadata: str) -> HookRequest:
    upload = HookUpload(ID="" if event == "pre-create" else "u1", Size=5, MetaData=metadata)
    return HookRequest(Type=event, Event=HookEventData(Upload=upload), EventID="e1")


@pytest.mark.anyio
async def test_in_process_hooks_example_refuses_uploads_without_a_filename(caplog: pytest.LogCaptureFixture) -> None:
    hooks = import_fresh("examples.hooks")
    refused = await hooks.pre_create(hook_request("pre-create"))
    assert (refused.RejectUpload, refused.HTTPResponse.Body) == (True, "no filename provided")
    taken = await hooks.pre_create(hook_request("pre-create", filename="scan.TIF"))
    assert taken.ChangeFileInfo.MetaData == {"filename": "scan.TIF", "kind": "tif"}
    await hooks.post_finish(hook_request("post-finish", filename="scan.TIF"))
    assert "upload u1 finished: scan.TIF, 5 bytes" in caplog.text


@pytest.mark.anyio
async def test_webhook_receiver_example_answers_in_tusds_format(capsys: pytest.CaptureFixture[str]) -> None:
    receiver = import_fresh("examples.webhook_receiver")
    transport = httpx.ASGITransport(app=receiver.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        refused = HookResponse.decode((await client.post("/", content=hook_request("pre-create").to_json())).content)
        taken = await client.post("/", content=hook_request("pre-create", filename="a.txt").to_json())
        for _ in range(2):  # the same event twice (at least once): printed once
            await client.post("/", content=hook_request("post-finish", filename="a.txt").to_json())
    assert (refused.RejectUpload, refused.HTTPResponse.StatusCode) == (True, 400)
    change = HookResponse.decode(taken.content).ChangeFileInfo
    assert change.ID.startswith("upload-")
    assert change.MetaData is not None
    assert change.MetaData["filename"] == "a.txt"
    assert "created" in change.MetaData
    assert capsys.readouterr().out == "finished u1: a.txt, 5 bytes\n"


def readme_block(section: str) -> str:
    """The first Python block of the README's `section` (a "## " heading)."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    body = readme.split(f"## {section}\n", 1)[1]
    return body.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.anyio
@pytest.mark.parametrize("source", ["readme", "example"])
async def test_a_mounted_app_runs_its_lifespan_from_the_parent(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README "Embedding in FastAPI or Starlette" and examples/mount_in_app.py: the parent's lifespan runs the tus
    app's, so it has a background while serving, and is closed at exit."""
    monkeypatch.chdir(tmp_path)
    if source == "readme":
        namespace: dict[str, object] = {}
        exec(readme_block("Embedding in FastAPI or Starlette").replace("/srv/uploads", str(tmp_path)), namespace)
        app, tus = namespace["app"], namespace["tus"]
    else:
        module = import_fresh("examples.mount_in_app")
        app, tus = module.app, module.tus
    assert isinstance(tus, Starlette)
    async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
        assert tus.state.tus.hooks.in_the_background
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            created = await client.post("/api/uploads/", headers={"Tus-Resumable": "1.0.0", "Upload-Length": "3"})
        assert created.status_code == 201
        assert created.headers["location"].startswith("http://testserver/api/uploads/")
    assert not tus.state.tus.hooks.in_the_background  # the lifespan ended: background gone
