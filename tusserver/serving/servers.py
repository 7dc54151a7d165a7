"""Running the app on an ASGI server: uvicorn (the default) or granian (`tusserver[granian]`).

uvicorn is what users expect and needs nothing else; it runs with `PieceProtocol`, which spares
each body piece two of uvicorn's copies. granian (a Rust HTTP server) hands the app ~400 KiB body
chunks from its own buffers instead of ~250 KiB ones that uvloop and httptools copied; see
BENCHMARKS.md for when it pays.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import resource
import signal
from typing import TYPE_CHECKING

import uvicorn

from tusserver.app import create_app
from tusserver.serving._gc import tune_gc
from tusserver.serving._malloc import tune_malloc
from tusserver.serving.logs import configure_logging, granian_log_config
from tusserver.serving.shutdown import END_GRACE, DrainingServer, GranianDrain
from tusserver.settings import Settings

if TYPE_CHECKING:  # for annotations only: httptools may be missing at run time
    from uvicorn.config import HTTPProtocolType
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = [
    "PIECE_PROTOCOL_UVICORN",
    "SETTINGS_VARIABLE",
    "UVICORN_VERSION_VARIABLE",
    "app_from_environment",
    "piece_protocol_fits",
    "run",
]

logger = logging.getLogger("tusserver")
SETTINGS_VARIABLE = "TUSSERVER_SETTINGS_JSON"


def run(settings: Settings) -> None:
    """Serve `create_app(settings)` until SIGTERM or SIGINT, on the server `settings.server` names."""
    tune_malloc()
    _raise_descriptor_limit()
    configure_logging(settings)
    if settings.server == "granian":
        _run_granian(settings)
    else:
        _run_uvicorn(settings)


def _run_uvicorn(settings: Settings) -> None:
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal through the handler that
    # was installed before it; a no-op handler there makes a graceful stop exit with status 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    app = create_app(settings)
    tune_gc()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # uvicorn's lines go through the root logger too: one format (`configure_logging`)
        access_log=False,  # tusserver logs each request itself, with the upload id
        proxy_headers=False,  # forwarded headers count only from --trusted-proxies
        server_header=False,
        # uvicorn answers 503 once as many connections as its limit are open, counting the one asking.
        limit_concurrency=settings.limit_concurrency + 1,
        http=_uvicorn_protocol(settings),
    )
    DrainingServer(config, app.state.tus, timeout=settings.shutdown_timeout).run()


# PieceProtocol subclasses uvicorn's httptools protocol and relies on its internals: it runs on the uvicorn minor
# versions its tests (tests/test_splice.py, tests/test_uvicorn_protocol.py) pass on, and any other uvicorn the
# pyproject range allows serves with its own protocol, so tusserver never pins an app's uvicorn.
PIECE_PROTOCOL_UVICORN = ((0, 54), (0, 55))
# Tests only: the uvicorn version to decide by instead of the installed one (the fallback on this machine).
UVICORN_VERSION_VARIABLE = "TUSSERVER_TEST_UVICORN_VERSION"


def piece_protocol_fits(version: str) -> bool:
    """Whether PieceProtocol runs on uvicorn `version` ("0.55.0"): a minor version its tests pass on."""
    major_minor = tuple(int(number) for number in re.findall(r"[0-9]+", version)[:2])
    return major_minor in PIECE_PROTOCOL_UVICORN


def _uvicorn_protocol(settings: Settings) -> type[HttpToolsProtocol] | HTTPProtocolType:
    version = os.environ.get(UVICORN_VERSION_VARIABLE) or uvicorn.__version__
    if not piece_protocol_fits(version):
        tested = ", ".join(f"{major}.{minor}" for major, minor in PIECE_PROTOCOL_UVICORN)
        logger.warning(
            "uvicorn %s: serving with uvicorn's own HTTP protocol, not tusserver's (tested on uvicorn %s): "
            "request bodies are copied more, and heads get uvicorn's limits and errors",
            version,
            tested,
        )
        return "auto"
    try:
        # httptools is installed on CPython only; elsewhere uvicorn picks h11 itself.
        from tusserver.serving._uvicorn import PieceProtocol  # noqa: PLC0415
    except ImportError:
        return "auto"
    return PieceProtocol.configured(head_timeout=settings.header_timeout)


def _raise_descriptor_limit() -> None:
    """Raise the soft limit on open files to the hard one, as Go programs do at start-up.

    A connection takes a descriptor, a spliced body three more and its file one; at the common soft limit of
    1024, accepting fails (EMFILE) before `--limit-concurrency` connections are open, and a new client gets
    no connection at all rather than one for which an idle connection is closed.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):  # an unlimited hard limit the kernel will not take
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _run_granian(settings: Settings) -> None:
    try:
        # Imported here: granian is an optional dependency.
        from granian.constants import Interfaces  # noqa: PLC0415
        from granian.http import HTTP1Settings  # noqa: PLC0415
        from granian.server import Server  # noqa: PLC0415
    except ImportError:
        raise SystemExit("tusserver: --server granian needs granian: pip install 'tusserver[granian]'") from None
    # granian imports the app in a worker process: hand it the settings through the environment.
    os.environ[SETTINGS_VARIABLE] = settings.model_dump_json()
    Server(
        "tusserver.serving.servers:app_from_environment",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=1,  # the in-process locker serves one process
        # The last resort of a stop (`tusserver.serving.shutdown`): the worker is killed if its requests have not
        # ended END_GRACE seconds after GranianDrain ended their bodies.
        workers_kill_timeout=int(settings.shutdown_timeout + END_GRACE + 1),
        backpressure=settings.limit_concurrency,  # connections it serves at once; the next waits to be accepted
        http1_settings=HTTP1Settings(header_read_timeout=round(settings.header_timeout * 1000)),  # milliseconds
        log_level=settings.log_level,  # type: ignore[arg-type]  # granian's enum takes the same names
        log_access=False,
        log_dictconfig=granian_log_config(settings),
    ).serve()


def app_from_environment() -> GranianDrain:
    """The app for a granian worker, built from the settings the parent process exported, drained on SIGTERM."""
    tune_malloc()
    settings = Settings.model_validate_json(os.environ[SETTINGS_VARIABLE])
    configure_logging(settings)  # a worker process starts with no handler of ours
    app = create_app(settings)
    tune_gc()
    return GranianDrain(app, app.state.tus, timeout=settings.shutdown_timeout)
