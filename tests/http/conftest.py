"""App and client factories for HTTP tests through the ASGI app (no sockets).

The `storage` fixture is MemoryStorage. `pytest_generate_tests` below runs the tests of `S3_MODULES`
on S3 as well (ids `[memory]` and `[s3]`; S3 is a fresh key prefix on the session's SeaweedFS). A test
that reads MemoryStorage internals says so by annotating its `storage` parameter as `MemoryStorage`
(mypy --strict needs that before `.blobs` can be read) and stays on memory only; so does a test that
parametrizes `storage` itself, and every test of a module that defines its own `storage` fixture.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from storage_backends.base import StorageBackend
from storage_backends.memory import MemoryStorage
from storage_backends.s3.store import S3Storage
from tusserver import MemoryStateStore, Settings, create_app
from tusserver.coordination.state.base import UploadStateStore

AppFactory = Callable[..., Starlette]

BACKENDS = ("memory", "s3")
# The modules whose tests also run on S3: those about features that reach the storage. The others test what is
# decided before or beside it (version, OPTIONS, URLs, CORS, method override, mounting, bad input; Redis state
# and locks); test_options also expects no Tus-Max-Size, while S3 has one (5 TiB, see test_s3.py).
# test_creation and test_defer_length define their own `storage` (a completion recorder on memory), and
# test_persistence restarts the default LocalStorage; tests/http/test_s3.py covers those features on S3.
S3_MODULES = frozenset({
    "test_checksum", "test_cleanup", "test_concatenation", "test_disconnect", "test_downloads", "test_expiration",
    "test_head", "test_locking", "test_patch", "test_termination",
})  # fmt: skip


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run the tests that qualify (`runs_on_s3`) on ["memory", "s3"]; every other test keeps MemoryStorage
    and its test id."""
    if "storage" in metafunc.fixturenames and runs_on_s3(metafunc):
        metafunc.parametrize("storage", BACKENDS, indirect=True)


def runs_on_s3(metafunc: pytest.Metafunc) -> bool:
    """True for a test of S3_MODULES that uses the shared `storage` fixture, unless it reads MemoryStorage
    internals (its own `storage` parameter is annotated MemoryStorage) or parametrizes `storage` itself."""
    module = metafunc.module
    if module.__name__.rsplit(".", 1)[-1] not in S3_MODULES or "storage" in vars(module):
        return False
    if any("storage" in parametrized_names(mark) for mark in metafunc.definition.iter_markers("parametrize")):
        return False
    parameter = inspect.signature(metafunc.function, eval_str=True).parameters.get("storage")
    wanted = parameter.annotation if parameter is not None else None
    return not (isinstance(wanted, type) and issubclass(wanted, MemoryStorage))


def parametrized_names(mark: pytest.Mark) -> list[str]:
    """The argument names of a `parametrize` mark ("a,b" or ["a", "b"])."""
    names = mark.args[0] if mark.args else mark.kwargs["argnames"]
    return [name.strip() for name in names.split(",")] if isinstance(names, str) else list(names)


@pytest.fixture
def storage(request: pytest.FixtureRequest) -> StorageBackend:
    """MemoryStorage, or with the parameter "s3" an S3Storage on SeaweedFS (closed at teardown)."""
    if getattr(request, "param", "memory") == "s3":
        s3: S3Storage = request.getfixturevalue("seaweedfs_storage")
        return s3
    return MemoryStorage()


@pytest.fixture
async def seaweedfs_storage(s3_storage_on_seaweedfs: S3Storage) -> AsyncIterator[S3Storage]:
    """An S3Storage on the session's SeaweedFS under a fresh key prefix, closed after the test (an app
    closes its storage only in its lifespan, which most tests never run)."""
    yield s3_storage_on_seaweedfs
    await s3_storage_on_seaweedfs.aclose()


@pytest.fixture
def state() -> MemoryStateStore:
    return MemoryStateStore()


@pytest.fixture
def make_app(storage: StorageBackend, state: UploadStateStore, tmp_path: Path) -> AppFactory:
    """`make_app(max_size=10, ...)`: an app on the test's storage and state with the given settings."""

    def factory(**settings: Any) -> Starlette:
        return create_app(Settings(data_dir=tmp_path / "data", **settings), storage=storage, state=state)

    return factory


@pytest.fixture
def app(make_app: AppFactory) -> Starlette:
    return make_app()


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
