"""The `tusserver` command's entry point: the client's commands or the server's.

`tusserver upload|download` goes to the client without importing the server's command module, which imports
the whole server (Starlette, storage, hooks, uvicorn): `tusserver upload --help` took 0.47-0.52 s with it and
0.27-0.30 s without (BENCHMARKS.md, "Client").
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["CLIENT_COMMANDS", "main", "run_client"]

CLIENT_COMMANDS = ("upload", "download")  # the tus client (tusserver.client), in the `client` extra


def main(argv: Sequence[str] | None = None) -> None:
    """`tusserver upload|download ...` runs the client; anything else the server (`tusserver.serving.cli`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in CLIENT_COMMANDS:
        raise SystemExit(run_client(args))
    from tusserver.serving.cli import main as serve  # noqa: PLC0415 -- the server's imports, for the server only

    serve(args)


def run_client(args: Sequence[str]) -> int:
    """`tusserver upload|download ...` (`args[0]` is the command); returns the exit status."""
    try:
        from tusserver.client.cli import main as client_main  # noqa: PLC0415 -- needs the `client` extra
    except ImportError as exc:
        from tusserver.extras import with_install_commands  # noqa: PLC0415 -- a small module of its own

        print(f"tusserver: {with_install_commands(str(exc))}", file=sys.stderr)  # the missing extra, in one line
        return 2
    return client_main(args)
