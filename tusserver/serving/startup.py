"""What `tusserver` checks before it serves: the data directory (there, writable, and without Redis this
process's alone), that Redis answers and takes writes, and that the storage answers. Each failure is one line
for the user, not a traceback; a running server rides out the same outages with 503s instead."""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Awaitable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import anyio

from storage_backends.base import SupportsOpen
from tusserver.app import default_storage
from tusserver.settings import Settings

if TYPE_CHECKING:  # redis is an optional dependency
    from redis.asyncio import Redis

__all__ = ["LOCK_FILE", "check_services", "claim_data_dir", "data_dir_exists"]

LOCK_FILE = "tusserver.lock"  # in the data directory: held by the one server that uses it without Redis
WRITE_CHECK_TTL_MS = 10_000  # the start-up check's key expires by itself even if its DEL never runs
_held_locks: list[int] = []  # the descriptors of held locks: open, and so locked, until the process ends


def _uses_data_dir(settings: Settings) -> bool:
    """Local storage keeps bytes there; without Redis the SQLite state is there too."""
    return settings.storage == "local" or settings.redis_url is None


def data_dir_exists(settings: Settings) -> None:
    """`tusserver cleanup` on a data directory that does not exist: a mistake, not an empty store to create."""
    if _uses_data_dir(settings) and not settings.data_dir.is_dir():
        raise RuntimeError(
            f"the data directory {settings.data_dir} does not exist: nothing to clean up "
            "(give the server's --data-dir / TUSSERVER_DATA_DIR)"
        )


def claim_data_dir(settings: Settings) -> None:
    """Create the data directory, and without Redis take its exclusive lock for as long as this process runs.

    Without Redis, upload locks live in this process: a second server on the same directory would write the
    same uploads unlocked. A directory this user cannot write is one line saying so, not a traceback.
    """
    if not _uses_data_dir(settings):
        return
    directory = settings.data_dir
    try:
        directory.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise RuntimeError(
            f"cannot write the data directory {directory} ({exc.strerror}) as user {os.getuid()}: make it "
            f"writable by that user (for a bind mount, `chown {os.getuid()}` the host directory), or give "
            "another --data-dir"
        ) from None
    if settings.redis_url is not None:  # locks are in Redis: any number of servers may share it
        os.close(descriptor)
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
        os.close(descriptor)
        raise RuntimeError(
            f"another tusserver{f' (pid {holder})' if holder else ''} is using the data directory {directory}: "
            "without --redis-url its upload locks live in that process, so only one server may use a data "
            "directory; stop it, give this one another --data-dir, or share state and locks with --redis-url"
        ) from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    _held_locks.append(descriptor)


async def check_services(settings: Settings) -> None:
    """Fail before serving, with one line, when Redis or the storage cannot be reached or used. (A running
    server rides out their outages: requests get 503 meanwhile.)"""
    if settings.redis_url is not None:
        await _check_redis(settings.redis_url, settings.redis_prefix)
    await _check_storage(settings)


async def _check_redis(url: str, prefix: str) -> None:
    """PING, then a write: a Redis that answers but refuses writes (a read-only replica reached directly,
    `min-replicas-to-write` unmet, MISCONF after a failed save, an ACL user without write access to the
    prefix) would otherwise let the server start and fail every upload with 503."""
    try:  # redis itself too: redis_client may have been imported before redis went missing
        import redis.exceptions  # noqa: F401, PLC0415

        from tusserver.coordination.redis_client import redis_client  # noqa: PLC0415
    except ImportError:
        raise RuntimeError("--redis-url needs the redis package: pip install 'tusserver[redis]'") from None
    client = redis_client(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        await _ask(client.ping(), f"cannot use Redis at {_without_password(url)}")
        await _ask(_write_and_delete(client, prefix), f"Redis at {_without_password(url)} refuses writes")
    finally:
        await client.aclose()


async def _ask(question: Awaitable[object], failure: str) -> None:
    """Await `question` for at most 20 s; a failure is one line: `failure` and the reason."""
    from redis.exceptions import RedisError  # noqa: PLC0415

    try:
        with anyio.fail_after(20):
            await question
    except (RedisError, OSError, TimeoutError) as exc:
        raise RuntimeError(f"--redis-url: {failure}: {_one_line(exc)}") from None


async def _write_and_delete(client: Redis, prefix: str) -> None:
    """SET a key under the server's own prefix (an ACL may allow only that), expiring by itself should the
    DEL not happen, then DEL it."""
    key = f"{prefix}startup-check:{secrets.token_hex(8)}"
    await client.set(key, "1", px=WRITE_CHECK_TTL_MS)
    await client.delete(key)


def _one_line(exc: BaseException) -> str:
    """Redis's own reason (or the client's) on one line, with the error code redis-py strips from some
    (`READONLY`, `NOPERM`); a bare timeout says so."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    code = getattr(exc, "status_code", None)  # set by recent redis-py only: older ones give the text alone
    return f"{code} {text}" if isinstance(code, str) and not text.startswith(code) else text


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


async def _check_storage(settings: Settings) -> None:
    """Fail before serving, with one line, when the storage cannot be used (a missing S3 bucket)."""
    storage = default_storage(settings)
    try:
        if isinstance(storage, SupportsOpen):
            await storage.open()
    finally:
        await storage.aclose()
