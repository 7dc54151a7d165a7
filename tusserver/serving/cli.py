"""The `tusserver` command: flags (each with a TUSSERVER_* variable) -> Settings -> an ASGI server."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio
from pydantic import ValidationError

from storage_backends.base import SupportsOpen
from storage_backends.errors import StorageError
from tusserver.app import create_app, default_storage
from tusserver.context import TusContext
from tusserver.coordination.auth.setup import build_authenticator
from tusserver.coordination.cleanup import remove_expired, remove_orphans
from tusserver.coordination.hooks.setup import build_hooks
from tusserver.serving.servers import run
from tusserver.settings import Settings

__all__ = ["OPTIONS", "main", "parse_args", "parse_duration", "parse_size"]

COMMANDS = ("serve", "cleanup")
CLIENT_COMMANDS = ("upload", "download")  # the tus client (tusserver.client), in the `client` extra
_SIZE = re.compile(r"([0-9]+)\s*([KMGT]i?B?|B)?", re.IGNORECASE)
_UNITS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}


def parse_size(text: str) -> int:
    """Bytes from "1048576", "500M", "10GiB" or "2T" (binary units); raises ValueError."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a size: {text!r}")
    unit = (match.group(2) or "").upper()[:1].replace("B", "")
    return int(match.group(1)) << (10 * _UNITS[unit])


_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)", re.IGNORECASE)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float | None:
    """Seconds from "90", "45s", "30m", "12h" or "7d"; "0", "off" and "never" give None; raises ValueError."""
    if text.strip().lower() in {"off", "never", "none", ""}:
        return None
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    seconds = float(match.group(1)) * _SECONDS[match.group(2).lower()]
    return seconds or None


def _csv(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _off_or(text: str) -> str | None:
    return None if text.strip().lower() in {"off", "none", ""} else text


def _flag(text: str) -> bool:
    if text.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if text.strip().lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


@dataclass(frozen=True)
class Option:
    """One setting on the command line and in the environment."""

    field: str
    help: str
    parse: Callable[[str], object] = str

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")

    @property
    def env(self) -> str:
        return "TUSSERVER_" + self.field.upper()


OPTIONS = (
    Option("host", "interface to listen on (0.0.0.0 for all)"),
    Option("port", "TCP port", int),
    Option("base_path", "URL path of the creation endpoint; uploads are below it"),
    Option("api_path", "URL path of the status API (JSON; <path>/openapi.json describes it); off for none", _off_or),
    Option("data_dir", "directory for upload files and the state database"),
    Option("max_size", "largest upload accepted (Tus-Max-Size), e.g. 10G; unlimited if unset", parse_size),
    Option("cors_origins", "comma-separated origins allowed by CORS; * for any", _csv),
    Option("cors_expose_headers", "comma-separated response headers browsers may read besides tus's", _csv),
    Option("trusted_proxies", "comma-separated IPs/CIDRs whose Forwarded/X-Forwarded-* headers count; *", _csv),
    Option("lock_timeout", "seconds to wait for a busy upload before 423 Locked", float),
    Option("read_timeout", "seconds a request body may stall before the server stops reading", float),
    Option("min_body_rate", "bytes/s a request body must average, e.g. 1K; 0 for no bound", parse_size),
    Option("header_timeout", "seconds a connection may take to send its request line and headers", float),
    Option("checkpoint_size", "a long PATCH records its progress after this many bytes, e.g. 64M", parse_size),
    Option("checkpoint_interval", "... or after this many seconds, whichever comes first", parse_duration),
    Option("fsync", "sync data and state before acknowledging (survives power loss): true/false", _flag),
    Option("require_tus_resumable_on_head", "answer HEAD without Tus-Resumable with 412: true/false", _flag),
    Option("log_level", "debug, info, warning or error", str.lower),
    Option("server", "ASGI server: uvicorn, or granian (pip install 'tusserver[granian]')", str.lower),
    Option("limit_concurrency", "most connections served at once (uvicorn answers more with 503, granian waits)", int),
    Option("downloads", "serve GET downloads of finished uploads: true/false", _flag),
    Option("ui", "serve the upload page (drag & drop, resumable; Uppy) at --ui-path: --ui, or true/false", _flag),
    Option("ui_path", "URL path of the upload page (with --ui)"),
    Option("max_concat_parts", "most partial uploads one final upload may list (1-1000)", int),
    Option(
        "expiration", "unfinished uploads expire this long after their last PATCH, e.g. 7d, 12h; off", parse_duration
    ),
    Option(
        "retention", "finished uploads are removed this long after completion, e.g. 30d; off keeps them", parse_duration
    ),
    Option(
        "tombstone_retention",
        "the records of removed uploads are kept this long for the status API, e.g. 30d; off drops them at once",
        parse_duration,
    ),
    Option("cleanup_interval", "how often the server removes expired uploads itself, e.g. 1h; off", parse_duration),
    Option("redis_url", "keep state and locks in Redis for several instances, e.g. redis://host:6379/0"),
    Option("redis_prefix", "prefix of every Redis key"),
    Option("lock_ttl", "seconds a crashed instance's Redis locks live on", float),
    Option("storage", "where bytes go: local (files under --data-dir), s3 or azure (extras [s3], [azure])", str.lower),
    Option("s3_bucket", "the S3 bucket (must exist); credentials come from the standard AWS chain"),
    Option("s3_prefix", "prefix of every S3 object key, e.g. uploads/"),
    Option("s3_endpoint", "URL of an S3-compatible store (path-style), e.g. http://127.0.0.1:8333; unset for AWS"),
    Option("s3_region", "the bucket's region; unset takes it from the AWS configuration"),
    Option("s3_part_size", "preferred S3 part size (5M-5G); grows so an upload fits 10,000 parts", parse_size),
    Option("s3_deferred_part_size", "part size of deferred-length uploads, capping them at 10,000 parts", parse_size),
    Option("s3_part_concurrency", "S3 parts one request uploads at once", int),
    Option("azure_container", "the Azure Blob container (must exist)"),
    Option("azure_prefix", "prefix of every blob name, e.g. uploads/"),
    Option("azure_connection_string", "the storage account's connection string (with a key or SAS)"),
    Option("azure_account_url", "https://ACCOUNT.blob.core.windows.net, instead of a connection string"),
    Option("azure_account_key", "the account key, with --azure-account-url"),
    Option("azure_sas_token", "a SAS token, with --azure-account-url; neither: DefaultAzureCredential"),
    Option("azure_block_size", "preferred Azure block size (1M-4000M); grows so uploads fit 50,000 blocks", parse_size),
    Option("azure_deferred_block_size", "block size of deferred-length uploads, capping them at 50,000", parse_size),
    Option("azure_block_concurrency", "Azure blocks one request stages at once", int),
    Option("buffer_budget", "memory all requests together may use for buffered parts, e.g. 256M", parse_size),
    Option("storage_timeout", "seconds the object store may stay silent before a request gets 503", float),
    Option("hooks_module", "in-process hooks: a module with async functions named after events, e.g. app.hooks"),
    Option("hooks_http", "POST every hook event (tusd's JSON) to this URL, e.g. http://127.0.0.1:8000/"),
    Option("hooks_http_forward_headers", "comma-separated client headers copied onto HTTP hook requests", _csv),
    Option("hooks_http_timeout", "seconds an HTTP hook attempt may take", float),
    Option("hooks_http_retry", "how often a failed HTTP hook is tried again", int),
    Option("hooks_http_backoff", "seconds between HTTP hook attempts", float),
    Option("hooks_dir", "run the executable named after each event in this directory (tusd's file hooks)"),
    Option("hooks_enabled_events", "comma-separated events to send", _csv),
    Option("hooks_progress_interval", "seconds between post-receive events of one PATCH", float),
    Option("hooks_max_age", "post-create/finish/terminate are retried this long, e.g. 24h", parse_duration),
    Option("auth_jwt_secret", "bearer tokens are HS256 JWTs signed with this key (32+ bytes; prefer the variable)"),
    Option("auth_jwt_public_key", "bearer tokens are JWTs signed for this PEM public key (RS256, ES256, ...)"),
    Option("auth_jwks_url", "bearer tokens are JWTs signed with a key of this JWKS, e.g. https://idp/jwks.json"),
    Option("auth_jwt_audience", "the aud a token must carry"),
    Option("auth_jwt_issuer", "the iss a token must carry"),
    Option("auth_admins", "comma-separated principals (a token's sub) that reach every upload", _csv),
    Option("auth_admin_claim", "the claim that makes a token's principal an admin: NAME=VALUE, or NAME for true"),
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tusserver",
        usage="tusserver [serve | cleanup] [flags] | tusserver upload FILE... URL | tusserver download URL [FILE]",
        description=(
            "A tus 1.0 resumable upload server. `tusserver` (or `tusserver serve`) runs it; `tusserver cleanup` "
            "removes expired uploads (data and state) once, prints what it removed and exits; `tusserver upload` "
            "and `tusserver download` are the client (see their --help). "
            "Every flag can also be set by the variable shown."
        ),
    )
    defaults = Settings()
    for option in OPTIONS:
        default = getattr(defaults, option.field)
        shown = ",".join(default) if isinstance(default, tuple) else default
        nargs = "?" if option.parse is _flag else None  # a boolean flag alone (`--ui`) means true
        help_text = f"{option.help} (default: {shown})"
        const = "true" if nargs else None
        parser.add_argument(option.flag, metavar=option.env, help=help_text, nargs=nargs, const=const)
    return parser


def parse_args(argv: Sequence[str], environ: dict[str, str]) -> Settings:
    """Settings from flags, falling back to TUSSERVER_* variables, then to the defaults.

    Raises:
        SystemExit: a value is invalid (argparse prints the reason).
    """
    parser = _parser()
    args = vars(parser.parse_args(argv))
    values: dict[str, object] = {}
    for option in OPTIONS:
        raw = args[option.field] if args[option.field] is not None else environ.get(option.env)
        if raw is None:
            continue
        try:
            values[option.field] = option.parse(raw)
        except ValueError as exc:
            parser.error(f"{option.flag} / {option.env}: {exc}")
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        parser.error(str(exc).replace("\n", " "))


def main(argv: Sequence[str] | None = None) -> None:
    """`tusserver [serve] [flags]` runs the server; `tusserver cleanup [flags]` removes expired uploads once."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in CLIENT_COMMANDS:
        raise SystemExit(_client(args))
    command = args.pop(0) if args and args[0] in COMMANDS else "serve"
    settings = parse_args(args, dict(os.environ))
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # azure-core logs every request's headers at info: our own lines say what failed, once.
    logging.getLogger("azure").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        anyio.run(_check_storage, settings)
        build_hooks(settings)  # a hook module or URL that cannot be used stops the start-up, with one line
        build_authenticator(settings)  # so does a key file that cannot be read, or PyJWT missing
    except (StorageError, RuntimeError, ValueError) as exc:
        raise SystemExit(f"tusserver: {exc}") from None
    if command == "cleanup":
        removed, orphans = anyio.run(_cleanup, settings)
        print(f"removed {len(removed)} expired upload(s)", *removed, sep="\n")
        print(f"removed {len(orphans)} item(s) no upload record names", *orphans, sep="\n")
    else:
        run(settings)


def _client(args: list[str]) -> int:
    """`tusserver upload|download ...`, imported only then: the server runs without the client's httpx."""
    try:
        from tusserver.client.cli import main as client_main  # noqa: PLC0415
    except ImportError as exc:
        print(f"tusserver: {exc}", file=sys.stderr)  # the missing extra, in one line
        return 2
    return client_main(args)


async def _check_storage(settings: Settings) -> None:
    """Fail before serving, with one line, when the storage cannot be used (a missing S3 bucket)."""
    storage = default_storage(settings)
    try:
        if isinstance(storage, SupportsOpen):
            await storage.open()
    finally:
        await storage.aclose()


async def _cleanup(settings: Settings) -> tuple[list[str], list[str]]:
    tus: TusContext = create_app(settings).state.tus
    try:
        return await remove_expired(tus, tus.clock()), await remove_orphans(tus)
    finally:
        await tus.aclose()


if __name__ == "__main__":
    main()
