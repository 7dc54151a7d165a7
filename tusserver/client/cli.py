"""`tusserver upload FILE... URL` and `tusserver download URL [FILE]`: the client on the command line.

stdout gets one line per result (`<upload URL><TAB><name>` for uploads, the file written for downloads), for
scripts; stderr gets the progress line (on a terminal only) and one `tusserver: ...` line per failure. Exit
status: 0 all done, 1 something failed, 2 bad usage, 130 interrupted (run the same command again to resume).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio

from tusserver.client.client import AsyncTusClient
from tusserver.client.errors import BatchError, TusClientError
from tusserver.client.files import collect
from tusserver.client.options import DEFAULT_CHUNK, ProgressCallback, TransferOptions
from tusserver.client.progress import ProgressBar
from tusserver.client.session import RetryPolicy
from tusserver.client.store import STORE_VARIABLE, ResumeStore
from tusserver.protocol.checksums import ALGORITHMS

__all__ = ["COMMANDS", "main"]

COMMANDS = ("upload", "download")
BEARER_VARIABLE = "TUSSERVER_CLIENT_BEARER"
_SIZE = re.compile(r"([0-9]+)\s*([KMGT]?)(?:i?B)?", re.IGNORECASE)


def _size(text: str) -> int:
    match = _SIZE.fullmatch(text.strip())
    if match is None or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 8M, 1G)")
    return int(match.group(1)) << (10 * " KMGT".index(match.group(2).upper() or " "))


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(f"not a header: {text!r} (e.g. 'X-Api-Key: secret')")
    return name.strip(), value.strip()


def _pair(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key or " " in key or "," in key:
        raise argparse.ArgumentTypeError(f"not a metadata pair: {text!r} (e.g. project=atlas)")
    return key, value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--header",
        type=_header,
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="send this header with every request (repeatable)",
    )
    parser.add_argument(
        "--bearer",
        metavar="TOKEN",
        default=os.environ.get(BEARER_VARIABLE),
        help=f"send 'Authorization: Bearer TOKEN' (default: ${BEARER_VARIABLE})",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=RetryPolicy().retries,
        metavar="N",
        help="attempts after a failure without progress, waiting as the server asks (Retry-After) "
        "or 0.5 s doubling to 30 s (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="to connect, and for any read or write to wait (default: %(default)s)",
    )
    parser.add_argument(
        "--store",
        type=Path,
        metavar="PATH",
        help=f"the resume store (default: ${STORE_VARIABLE}, else client.sqlite3 in the user's "
        "data directory, e.g. ~/.local/share/tusserver/)",
    )
    parser.add_argument("--no-resume", action="store_true", help="neither resume nor remember anything")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress line, even on a terminal")  # fmt: skip


def _parser(command: str) -> argparse.ArgumentParser:
    if command == "upload":
        parser = argparse.ArgumentParser(
            prog="tusserver upload", usage="tusserver upload FILE... URL [options]",
            description="Upload files (directories recursively) to a tus server's creation URL, resumably: run the "
                        "same command again after an interruption and it continues. Prints '<upload URL><TAB><name>' "
                        "per file.",
        )  # fmt: skip
        parser.add_argument("paths", nargs="+", metavar="FILE... URL", help="files or directories, then the URL")
        parser.add_argument(
            "--parallel",
            type=int,
            default=1,
            metavar="N",
            help="streams at once: parts of a large file (if the server offers concatenation) and "
            "files of a directory (default: %(default)s)",
        )
        parser.add_argument(
            "--chunk-size",
            type=_size,
            default=DEFAULT_CHUNK,
            metavar="SIZE",
            help="most bytes per PATCH, e.g. 8M (default: 64M)",
        )
        parser.add_argument(
            "--checksum",
            choices=list(ALGORITHMS),
            metavar="ALGO",
            help="send Upload-Checksum with every PATCH, with an algorithm the server offers",
        )
        parser.add_argument(
            "--digest",
            choices=[*ALGORITHMS, "none"],
            default="xxh128",
            metavar="ALGO",
            help="declare the whole file's digest in the 'checksum' metadata (default: %(default)s)",
        )
        parser.add_argument("--metadata", type=_pair, action="append", default=[], metavar="KEY=VALUE",
                            help="add an Upload-Metadata pair to every upload (repeatable)")  # fmt: skip
    else:
        parser = argparse.ArgumentParser(
            prog="tusserver download", usage="tusserver download URL [FILE] [options]",
            description="Download a finished upload, resumably (Range + If-Range), and check it against the "
                        "digest declared at upload. FILE may be a directory; by default the upload's own name in "
                        "the current directory. Prints the file written.",
        )  # fmt: skip
        parser.add_argument("url", metavar="URL")
        parser.add_argument("file", nargs="?", metavar="FILE")
    _common(parser)
    return parser


def _options(args: argparse.Namespace) -> TransferOptions:
    headers = dict(args.header)
    if args.bearer:
        headers["Authorization"] = f"Bearer {args.bearer}"
    upload = {}
    if "paths" in args:
        digest = None if args.digest == "none" else args.digest
        upload = {"chunk_size": args.chunk_size, "parallel": args.parallel, "checksum": args.checksum,
                  "digest": digest, "metadata": dict(args.metadata)}  # fmt: skip
    return TransferOptions(headers=headers, timeout=args.timeout, retry=RetryPolicy(retries=args.retries), **upload)


def main(argv: Sequence[str]) -> int:
    """Run `upload` or `download` (`argv[0]`) with the rest of `argv`; returns the exit status."""
    parser = _parser(argv[0])
    args = parser.parse_args(argv[1:])
    try:
        options = _options(args)
    except ValueError as exc:
        parser.error(str(exc))
    store = None if args.no_resume else ResumeStore(args.store)
    job = _upload if argv[0] == "upload" else _download
    try:
        return anyio.run(job, args, options, store, backend_options=_loop_options())
    except KeyboardInterrupt:
        print("\ntusserver: interrupted; run the same command again to continue", file=sys.stderr)
        return 130
    finally:
        if store is not None:
            store.close()


def _loop_options() -> dict[str, bool]:
    try:
        import uvloop  # noqa: F401, PLC0415 -- only asks whether it is installed
    except ImportError:
        return {}
    return {"use_uvloop": True}


def _bar(total: int, files: int, quiet: bool) -> ProgressBar | None:
    return ProgressBar(sys.stderr, total, files) if not quiet and sys.stderr.isatty() else None


async def _upload(args: argparse.Namespace, options: TransferOptions, store: ResumeStore | None) -> int:
    *paths, endpoint = args.paths
    if not paths:
        print("tusserver upload: give at least one FILE and then the URL", file=sys.stderr)
        return 2
    try:
        sources = collect(paths)
    except OSError as exc:
        print(f"tusserver: {exc}", file=sys.stderr)
        return 1
    bar = _bar(sum(source.length for source in sources), len(sources), args.quiet)
    progress: ProgressCallback | None = bar.update if bar is not None else None
    failures: list[tuple[Path, TusClientError]] = []
    async with AsyncTusClient(options, store=store, progress=progress) as client:
        try:
            results = await client.upload_all(sources, endpoint)
        except BatchError as exc:
            results, failures = exc.results, exc.failures
        finally:
            if bar is not None:
                bar.close()
    for result in results:
        print(f"{result.url}\t{result.name}", flush=True)
    for _, error in failures:
        print(f"tusserver: {error}", file=sys.stderr)
    return 1 if failures else 0


async def _download(args: argparse.Namespace, options: TransferOptions, store: ResumeStore | None) -> int:
    bar = _bar(0, 1, args.quiet)

    def progress(path: Path, transferred: int, length: int) -> None:
        if bar is not None:
            bar.total = length
            bar.update(path, transferred, length)

    async with AsyncTusClient(options, store=store, progress=progress) as client:
        try:
            result = await client.download(args.url, args.file)
        except (TusClientError, OSError) as exc:
            print(f"tusserver: {exc}", file=sys.stderr)
            return 1
        finally:
            if bar is not None:
                bar.close()
    print(result.path, flush=True)
    if result.digest is None:
        print("tusserver: no digest was declared for this upload; only its length was checked", file=sys.stderr)
    return 0
