"""The `tusserver` command: flags (each with a TUSSERVER_* variable) -> Settings -> an ASGI server."""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import re
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

import anyio
from pydantic import ValidationError

from storage_backends.errors import StorageError
from tusserver.app import create_app
from tusserver.commands import CLIENT_COMMANDS, run_client
from tusserver.context import TusContext
from tusserver.coordination.auth.setup import build_authenticator
from tusserver.coordination.cleanup import remove_expired, remove_orphans
from tusserver.coordination.hooks.setup import build_hooks
from tusserver.extras import with_install_commands
from tusserver.serving.servers import run
from tusserver.serving.startup import check_services, claim_data_dir, data_dir_exists
from tusserver.settings import Settings

__all__ = [
    "CLEANUP_FIELDS",
    "OPTIONS",
    "command_options",
    "format_duration",
    "format_size",
    "main",
    "parse_args",
    "parse_duration",
    "parse_size",
]

COMMANDS = ("serve", "cleanup")
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


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"not a whole number: {text!r}") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"not a number: {text!r}") from None


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
    Option("port", "TCP port", _whole),
    Option("base_path", "URL path of the creation endpoint; uploads are below it"),
    Option("api_path", "URL path of the status API (JSON; <path>/openapi.json describes it); off for none", _off_or),
    Option("data_dir", "directory for upload files and the state database"),
    Option("max_size", "largest upload accepted (Tus-Max-Size), e.g. 10G", parse_size),
    Option("cors_origins", "comma-separated origins allowed by CORS; * for any", _csv),
    Option("cors_expose_headers", "comma-separated response headers browsers may read besides tus's", _csv),
    Option(
        "trusted_proxies", "comma-separated IPs/CIDRs (or * for any) whose Forwarded/X-Forwarded-* headers count", _csv
    ),
    Option("lock_timeout", "seconds to wait for a busy upload before 423 Locked", _number),
    Option("read_timeout", "seconds a request body may stall before the server stops reading", _number),
    Option("min_body_rate", "bytes/s a request body must average, e.g. 1K; 0 for no bound", parse_size),
    Option("header_timeout", "seconds a connection may take to send its request line and headers", _number),
    Option("checkpoint_size", "a long PATCH records its progress after this many bytes, e.g. 64M", parse_size),
    Option("checkpoint_interval", "... or after this many seconds, whichever comes first", parse_duration),
    Option("fsync", "sync data and state before acknowledging (survives power loss)", _flag),
    Option("require_tus_resumable_on_head", "answer HEAD without Tus-Resumable with 412", _flag),
    Option("log_level", "debug, info, warning or error", str.lower),
    Option("server", "ASGI server: uvicorn, or granian (pip install 'tusserver[granian]')", str.lower),
    Option(
        "limit_concurrency", "most connections served at once (uvicorn answers more with 503, granian waits)", _whole
    ),
    Option("downloads", "serve GET downloads of finished uploads", _flag),
    Option("ui", "serve the upload page (drag & drop, resumable; Uppy) at --ui-path", _flag),
    Option("ui_path", "URL path of the upload page (with --ui)"),
    Option("max_concat_parts", "most partial uploads one final upload may list (1-1000)", _whole),
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
    Option("lock_ttl", "seconds a crashed instance's Redis locks live on", _number),
    Option("storage", "where bytes go: local (files under --data-dir), s3 or azure (extras [s3], [azure])", str.lower),
    Option("s3_bucket", "the S3 bucket (must exist); credentials come from the standard AWS chain"),
    Option("s3_prefix", "prefix of every S3 object key, e.g. uploads/"),
    Option("s3_endpoint", "URL of an S3-compatible store (path-style), e.g. http://127.0.0.1:8333; unset for AWS"),
    Option("s3_region", "the bucket's region; unset takes it from the AWS configuration"),
    Option("s3_part_size", "preferred S3 part size (5M-5G); grows so an upload fits 10,000 parts", parse_size),
    Option("s3_deferred_part_size", "part size of deferred-length uploads, capping them at 10,000 parts", parse_size),
    Option("s3_part_concurrency", "S3 parts one request uploads at once", _whole),
    Option("azure_container", "the Azure Blob container (must exist)"),
    Option("azure_prefix", "prefix of every blob name, e.g. uploads/"),
    Option("azure_connection_string", "the storage account's connection string (with a key or SAS)"),
    Option("azure_account_url", "https://ACCOUNT.blob.core.windows.net, instead of a connection string"),
    Option("azure_account_key", "the account key, with --azure-account-url"),
    Option("azure_sas_token", "a SAS token, with --azure-account-url; neither: DefaultAzureCredential"),
    Option("azure_block_size", "preferred Azure block size (1M-4000M); grows so uploads fit 50,000 blocks", parse_size),
    Option("azure_deferred_block_size", "block size of deferred-length uploads, capping them at 50,000", parse_size),
    Option("azure_block_concurrency", "Azure blocks one request stages at once", _whole),
    Option("buffer_budget", "memory all requests together may use for buffered parts, e.g. 256M", parse_size),
    Option("storage_timeout", "seconds the object store may stay silent before a request gets 503", _number),
    Option("hooks_module", "in-process hooks: a module with async functions named after events, e.g. app.hooks"),
    Option("hooks_http", "POST every hook event (tusd's JSON) to this URL, e.g. http://127.0.0.1:8000/"),
    Option("hooks_http_forward_headers", "comma-separated client headers copied onto HTTP hook requests", _csv),
    Option("hooks_http_timeout", "seconds an HTTP hook attempt may take", _number),
    Option("hooks_http_retry", "how often a failed HTTP hook is tried again", _whole),
    Option("hooks_http_backoff", "seconds between HTTP hook attempts", _number),
    Option("hooks_dir", "run the executable named after each event in this directory (tusd's file hooks)"),
    Option("hooks_enabled_events", "comma-separated events to send", _csv),
    Option("hooks_progress_interval", "seconds between post-receive events of one PATCH", _number),
    Option("hooks_max_age", "post-create/finish/terminate are retried this long, e.g. 24h", parse_duration),
    Option("auth_jwt_secret", "bearer tokens are HS256 JWTs signed with this key (32+ bytes; prefer the variable)"),
    Option("auth_jwt_public_key", "bearer tokens are JWTs signed for this PEM public key (RS256, ES256, ...)"),
    Option("auth_jwks_url", "bearer tokens are JWTs signed with a key of this JWKS, e.g. https://idp/jwks.json"),
    Option("auth_jwt_audience", "the aud a token must carry"),
    Option("auth_jwt_issuer", "the iss a token must carry"),
    Option("auth_admins", "comma-separated principals (a token's sub) that reach every upload", _csv),
    Option("auth_admin_claim", "the claim that makes a token's principal an admin: NAME=VALUE, or NAME for true"),
    Option("metrics_path", "URL path of the Prometheus metrics; off for none", _off_or),
    Option("shutdown_timeout", "seconds running uploads get to finish after SIGTERM; then they end, kept", _number),
    Option("log_format", "text, or json: one object per line", str.lower),
)


# What `tusserver cleanup` uses: where uploads and their records are, the locks, and the hooks it sends
# (post-terminate). Its --help lists these alone, and it reads no other TUSSERVER_* variable.
CLEANUP_FIELDS = frozenset(
    {
        "data_dir", "fsync", "log_level", "lock_timeout", "tombstone_retention", "redis_url", "redis_prefix",
        "lock_ttl", "storage", "storage_timeout", "s3_bucket", "s3_prefix", "s3_endpoint", "s3_region",
        "azure_container", "azure_prefix", "azure_connection_string", "azure_account_url", "azure_account_key",
        "azure_sas_token",
    }
)  # fmt: skip


def command_options(command: str) -> tuple[Option, ...]:
    """The options `command` ("serve" or "cleanup") takes."""
    if command != "cleanup":
        return OPTIONS
    return tuple(option for option in OPTIONS if option.field in CLEANUP_FIELDS or option.field.startswith("hooks_"))


def format_size(size: int) -> str:
    """ "256M" for 268435456: the largest binary unit that divides `size` (parse_size reads it back)."""
    for unit in "TGMK":
        shift = 10 * _UNITS[unit]
        if size and size % (1 << shift) == 0:
            return f"{size >> shift}{unit}"
    return str(size)


def format_duration(seconds: float) -> str:
    """ "7d" for 604800: the largest unit that divides `seconds` (parse_duration reads it back)."""
    for unit in "dhm":
        if seconds and seconds % _SECONDS[unit] == 0:
            return f"{int(seconds // _SECONDS[unit])}{unit}"
    return f"{seconds:g}s"


def _shown_default(option: Option, value: object) -> str:
    """A default as a person writes it: on/off, 7d, 256M, unlimited, none."""
    if option.parse is _flag:
        return "on" if value else "off"
    if value is None:
        unset = "off" if option.parse in (parse_duration, _off_or) else "none"
        return "unlimited" if option.field == "max_size" else unset
    if option.parse is parse_size and isinstance(value, int):
        return format_size(value)
    if option.parse is parse_duration and isinstance(value, int | float):
        return format_duration(value)
    if isinstance(value, tuple):
        value = ", ".join(str(item) for item in value)
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value) or "none"


class _Switch(argparse.Action):
    """An on/off setting: `--NAME` (or `--NAME true|false|yes|no|1|0`) and `--no-NAME`."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs="?", **kwargs)  # type: ignore[arg-type]

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[object] | None,
        option_string: str | None = None,
    ) -> None:
        if option_string is not None and option_string.startswith("--no-"):
            if values is not None:
                parser.error(f"{option_string} takes no value")
            values = "false"
        setattr(namespace, self.dest, "true" if values is None else values)


class _Formatter(argparse.HelpFormatter):
    def _split_lines(self, text: str, width: int) -> list[str]:
        # Never at a hyphen: "pre-\ncreate" or "--no-\nfsync" would read as other words.
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False, break_long_words=False)

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if isinstance(action, _Switch):
            return ", ".join(action.option_strings)  # not "--fsync [X], --no-fsync [X]"
        return super()._format_action_invocation(action)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, naming what was wrong (no usage block): `tusserver: error: --port: not a whole number`."""
        self.exit(2, f"tusserver: error: {message} (see `{self.prog} --help`)\n")


def _version() -> str:
    try:
        return importlib.metadata.version("tusserver")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed: run from a source tree)"


def _parser(command: str = "serve") -> argparse.ArgumentParser:
    if command == "cleanup":
        usage = "tusserver cleanup [flags]"
        description = (
            "Remove expired and rejected uploads (their bytes; their records after --tombstone-retention) and "
            "stored data no upload record names, once; print what was removed and exit. Takes the server's "
            "storage, state and hook settings. Every flag can also be set by the variable shown."
        )
    else:
        usage = "tusserver [serve | cleanup] [flags] | tusserver upload FILE... URL | tusserver download URL [FILE]"
        description = (
            "A tus 1.0 resumable upload server. `tusserver` (or `tusserver serve`) runs it; `tusserver cleanup` "
            "removes expired uploads once (see `tusserver cleanup --help`); `tusserver upload` and `tusserver "
            "download` are the client (see their --help). Every flag can also be set by the variable shown."
        )
    parser = _Parser(
        prog="tusserver" if command == "serve" else f"tusserver {command}",
        usage=usage,
        description=description,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"tusserver {_version()}")
    defaults = Settings()
    for option in command_options(command):
        shown = _shown_default(option, getattr(defaults, option.field))
        if option.parse is _flag:
            parser.add_argument(
                option.flag,
                "--no-" + option.flag.removeprefix("--"),
                dest=option.field,
                action=_Switch,
                help=f"{option.help} ({option.env}=true/false; default: {shown})",
            )
        else:
            parser.add_argument(
                option.flag, dest=option.field, metavar=option.env, help=f"{option.help} (default: {shown})"
            )
    return parser


def parse_args(argv: Sequence[str], environ: Mapping[str, str], command: str = "serve") -> Settings:
    """Settings from flags, falling back to TUSSERVER_* variables, then to the defaults.

    Raises:
        SystemExit: a value is invalid (one line on stderr naming the flag or variable, status 2).
    """
    parser = _parser(command)
    args = vars(parser.parse_args(argv))
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for option in command_options(command):
        from_flag = args[option.field] is not None
        raw = args[option.field] if from_flag else environ.get(option.env)
        if raw is None:
            continue
        sources[option.field] = option.flag if from_flag else option.env
        try:
            values[option.field] = option.parse(raw)
        except ValueError as exc:
            parser.error(f"{sources[option.field]}: {exc}")
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        parser.error(_one_line(exc, sources))


def _one_line(exc: ValidationError, sources: Mapping[str, str]) -> str:
    """The first error of `exc` as "--flag: reason" (or the reason alone when it names the flags itself)."""
    error = exc.errors()[0]
    message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    message = message[:1].lower() + message[1:]
    field = str(error["loc"][0]) if error["loc"] else ""
    if field in sources:
        return f"{sources[field]}: {message}"
    if field:
        return f"--{field.replace('_', '-')}: {message}"
    return message


def main(argv: Sequence[str] | None = None) -> None:
    """`tusserver [serve] [flags]` runs the server; `tusserver cleanup [flags]` removes expired uploads once."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in CLIENT_COMMANDS:
        raise SystemExit(run_client(args))
    command = args.pop(0) if args and args[0] in COMMANDS else "serve"
    settings = parse_args(args, dict(os.environ), command)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # azure-core logs every request's headers at info: our own lines say what failed, once.
    logging.getLogger("azure").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        if command == "cleanup":
            data_dir_exists(settings)
        else:
            claim_data_dir(settings)
        anyio.run(check_services, settings)  # Redis, the bucket, the container: reachable and usable, now
        build_hooks(settings)  # a hook module or URL that cannot be used stops the start-up, with one line
        build_authenticator(settings)  # so does a key file that cannot be read, or PyJWT missing
    except (StorageError, RuntimeError, ValueError, OSError) as exc:
        raise SystemExit(f"tusserver: {with_install_commands(str(exc))}") from None
    if command == "cleanup":
        removed, orphans = anyio.run(_cleanup, settings)
        print(f"removed {len(removed)} expired upload(s)", *removed, sep="\n")
        print(f"removed {len(orphans)} item(s) no upload record names", *orphans, sep="\n")
        return
    try:
        run(settings)
    except SystemExit as exc:  # granian missing: its install command, as from here
        if isinstance(exc.code, str):
            raise SystemExit(with_install_commands(exc.code)) from None
        raise


async def _cleanup(settings: Settings) -> tuple[list[str], list[str]]:
    tus: TusContext = create_app(settings).state.tus
    try:
        return await remove_expired(tus, tus.clock()), await remove_orphans(tus)
    finally:
        await tus.aclose()


if __name__ == "__main__":
    main()
