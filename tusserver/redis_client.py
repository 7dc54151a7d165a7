"""The redis.asyncio client for `--redis-url`: a plain one, or one that follows a Sentinel-managed master.

Imported only when Redis is configured (redis is an optional dependency). The URL forms are in
`tusserver.redis_url`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from redis.asyncio import Redis
from redis.asyncio.connection import parse_url
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from tusserver.redis_url import SentinelURL, is_sentinel_url

__all__ = ["redis_client"]


def redis_client(url: str, **defaults: Any) -> Redis:
    """A client for `url`; options in the URL win over `defaults` (as with `Redis.from_url`).

    For a Sentinel URL the client asks the sentinels for the master's address whenever it opens a
    connection; after a failover, a command that reaches the demoted master fails with a connection
    error (redis-py turns its READONLY answer into one), the connection is dropped, and the retry or
    the next command connects to the new master. Closing the client also closes its sentinel clients.
    """
    if not is_sentinel_url(url):
        return Redis.from_url(url, **defaults)
    spec = SentinelURL.parse(url)
    options: dict[str, Any] = {**defaults, **_connection_options(spec)}
    options.pop("connection_class", None)  # the pool picks its own (SSL for rediss+sentinel)
    sentinel_options = {name: value for name, value in options.items() if name.startswith(("socket_", "ssl_"))}
    if spec.tls:
        options["ssl"] = sentinel_options["ssl"] = True
    if spec.sentinel_username:
        sentinel_options["username"] = spec.sentinel_username
    if spec.sentinel_password:
        sentinel_options["password"] = spec.sentinel_password
    sentinel = Sentinel(spec.sentinels, sentinel_kwargs=sentinel_options)
    client: Redis = sentinel.master_for(spec.service_name, connection_pool_class=_OwnedSentinelPool, **options)
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


class _OwnedSentinelPool(SentinelConnectionPool):
    """A pool that owns its `Sentinel`: redis-py leaves the sentinel clients open when the client closes."""

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            for sentinel in self.sentinel_manager.sentinels:  # Sentinel.aclose is new in redis-py 7
                await sentinel.aclose()
