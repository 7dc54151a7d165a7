"""The redis.asyncio client for `--redis-url`: a plain one, or one that follows a Sentinel-managed master.

Imported only when Redis is configured (redis is an optional dependency). The URL forms are in
`tusserver.coordination.redis_url`.
"""

from __future__ import annotations

import time
from contextlib import suppress
from typing import Any
from urllib.parse import quote, urlencode

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

from tusserver.coordination.redis_url import SentinelURL, is_sentinel_url

__all__ = ["MASTER_CHECK_INTERVAL", "redis_client"]

MASTER_CHECK_INTERVAL = 1.0  # seconds between two questions to the sentinels: which node is the master?


def redis_client(url: str, **defaults: Any) -> Redis:
    """A client for `url`; options in the URL win over `defaults` (as with `Redis.from_url`).

    For a Sentinel URL the client asks the sentinels for the master's address whenever it opens a
    connection, and at most every MASTER_CHECK_INTERVAL seconds when it hands one out: a former master
    that is still up keeps accepting writes after a failover until the sentinels reconfigure it (~10 s),
    and every write it takes then is lost when it becomes a replica, so a connection to it is dropped
    and reopened to the new master. A command that meets a demoted master fails with a connection error
    (redis-py turns its READONLY answer into one): the retry, or the next command, goes to the new
    master. A master set to refuse writes without replicas (`min-replicas-to-write`), as a former master
    soon does, answers NOREPLICAS: that is taken as a connection error too. Closing the client also
    closes its sentinel clients.
    """
    if not is_sentinel_url(url):
        return Redis.from_url(url, **defaults)
    spec = SentinelURL.parse(url)
    options: dict[str, Any] = {**defaults, **_connection_options(spec)}
    options["connection_class"] = _SentinelSSLConnection if spec.tls else _SentinelConnection
    sentinel_options = {name: value for name, value in options.items() if name.startswith(("socket_", "ssl_"))}
    if spec.tls:
        sentinel_options["ssl"] = True
    if spec.sentinel_username:
        sentinel_options["username"] = spec.sentinel_username
    if spec.sentinel_password:
        sentinel_options["password"] = spec.sentinel_password
    sentinel = Sentinel(spec.sentinels, sentinel_kwargs=sentinel_options)
    client: Redis = sentinel.master_for(spec.service_name, connection_pool_class=_SentinelPool, **options)
    return client


def _connection_options(spec: SentinelURL) -> dict[str, Any]:
    """The master's connection options, parsed by redis-py from the equivalent plain URL (so every
    option means what it means in a `redis://` URL)."""
    userinfo = ""
    if spec.username or spec.password:
        userinfo = quote(spec.username or "", safe="") + ":" + quote(spec.password or "", safe="") + "@"
    scheme = "rediss" if spec.tls else "redis"
    options: dict[str, Any] = dict(parse_url(f"{scheme}://{userinfo}sentinel/{spec.db}?{urlencode(spec.options)}"))
    options.pop("host", None)
    options.pop("port", None)
    return options


class _SentinelConnection(SentinelManagedConnection):
    """A connection to the master that treats NOREPLICAS as it treats READONLY: the node it reached
    may no longer be the master (or cannot keep a write safe now), so drop the connection and let the
    retry, or the next command, ask the sentinels again (a 503 if none succeeds, not a 500)."""

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)
        except redis_errors.ResponseError as exc:
            if not str(exc).startswith("NOREPLICAS"):
                raise
            await self.disconnect()
            raise redis_errors.ConnectionError(f"the master refused a write: {exc}") from exc


class _SentinelSSLConnection(_SentinelConnection, SSLConnection):
    pass


class _SentinelPool(SentinelConnectionPool):
    """redis-py's pool for a Sentinel-managed master, which also checks that its connections still go
    to the master (see `redis_client`), and owns its `Sentinel` (redis-py leaves the sentinel clients
    open when the client closes)."""

    _checked_at = float("-inf")

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        await self._check_master()
        connection = await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        if self.is_master and self.master_address and (connection.host, connection.port) != self.master_address:
            try:  # to a former master: reconnect, which asks the sentinels for the master again
                await connection.disconnect()
                await connection.connect()
            except BaseException:
                await self.release(connection)
                raise
        return connection

    async def _check_master(self) -> None:
        now = time.monotonic()
        if self.is_master and now - self._checked_at >= MASTER_CHECK_INTERVAL:
            self._checked_at = now
            # No sentinel answers: keep the master we know. A new master: idle connections are dropped.
            with suppress(redis_errors.ConnectionError, redis_errors.TimeoutError):
                await self.get_master_address()  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            for sentinel in self.sentinel_manager.sentinels:  # Sentinel.aclose is new in redis-py 7
                await sentinel.aclose()
