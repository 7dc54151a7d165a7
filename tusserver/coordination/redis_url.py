"""`--redis-url`: redis-py's own URLs, and a URL for Redis Sentinel (pure parsing; no redis import).

redis-py reads `redis://`, `rediss://` and `unix://` URLs, and follows a Sentinel-managed master through
`redis.asyncio.sentinel.Sentinel`, but has no URL for a Sentinel deployment. This is the form several
other tools read (the redis-sentinel-url package, LangChain, RedisVL, Prefect, docket):

    redis+sentinel://[user:password@]host[:port][,host[:port]...]/service_name[/db][?option=value&...]
    rediss+sentinel://...      the same with TLS, to the sentinels and to the master

- the hosts are the sentinels (port 26379 when left out), tried in turn;
- `service_name` is the master's name in their configuration (`sentinel monitor <name> ...`);
- user and password authenticate to the master; the options `sentinel_username` and `sentinel_password`
  authenticate to the sentinels (when they have `requirepass`);
- every other option is one of redis-py's URL options (`socket_timeout`, `ssl_ca_certs`, ...), for the
  connections to the master.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["PLAIN_SCHEMES", "SENTINEL_SCHEMES", "SentinelURL", "check_redis_url", "is_sentinel_url"]

PLAIN_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SENTINEL_PORT = 26379
_SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")


@dataclass(frozen=True)
class SentinelURL:
    """A parsed `redis+sentinel://` URL.

    Attributes:
        sentinels: (host, port) of each sentinel, in the URL's order.
        service_name: the monitored master's name.
        db: the database number.
        tls: connect with TLS (`rediss+sentinel://`).
        username: for the master, or None.
        password: for the master, or None.
        sentinel_username: for the sentinels, or None.
        sentinel_password: for the sentinels, or None.
        options: the other query options, as given (redis-py parses them).
    """

    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    db: int = 0
    tls: bool = False
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, url: str) -> SentinelURL:
        """Parse a `redis+sentinel://` or `rediss+sentinel://` URL.

        Raises:
            ValueError: not such a URL, no sentinel, no service name, or a bad port or db.
        """
        scheme, _, rest = url.partition("://")
        if scheme.lower() not in SENTINEL_SCHEMES:
            raise ValueError(f"not a Sentinel URL (expected {' or '.join(s + '://' for s in SENTINEL_SCHEMES)})")
        netloc, _, path_and_query = rest.partition("/")
        userinfo, _, hosts = netloc.rpartition("@")
        username, _, password = userinfo.partition(":")
        parts = urlsplit("//x/" + path_and_query)
        service_name, db = _service_and_db(parts.path)
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        return cls(
            sentinels=tuple(_host_port(host) for host in hosts.split(",")),
            service_name=service_name,
            db=db,
            tls=scheme.lower().startswith("rediss"),
            username=unquote(username) or None,
            password=unquote(password) or None,
            sentinel_username=options.pop(_SENTINEL_OPTIONS[0], None),
            sentinel_password=options.pop(_SENTINEL_OPTIONS[1], None),
            options=options,
        )


def is_sentinel_url(url: str) -> bool:
    """True for a `redis+sentinel://` or `rediss+sentinel://` URL (the scheme only is looked at)."""
    return url.partition("://")[0].lower() in SENTINEL_SCHEMES


def check_redis_url(url: str) -> None:
    """Raise ValueError unless `url` has a scheme tusserver can use and, for Sentinel, parses."""
    scheme, separator, _ = url.partition("://")
    if not separator or scheme.lower() not in (*PLAIN_SCHEMES, *SENTINEL_SCHEMES):
        schemes = ", ".join(name + "://" for name in (*PLAIN_SCHEMES, *SENTINEL_SCHEMES))
        raise ValueError(f"a Redis URL starts with one of {schemes}")
    if is_sentinel_url(url):
        SentinelURL.parse(url)


def _host_port(text: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]` or `[v6]:port`; the port defaults to Sentinel's 26379."""
    if text.startswith("["):
        host, bracket, after = text[1:].partition("]")
        port = after.removeprefix(":")
        if not bracket or (after and not after.startswith(":")):
            raise ValueError(f"bad sentinel address {text!r}")
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise ValueError(f"a Sentinel URL needs host[:port] for each sentinel, got {text!r}")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"bad sentinel port in {text!r}")
    return unquote(host), int(port) if port else SENTINEL_PORT


def _service_and_db(path: str) -> tuple[str, int]:
    segments = [unquote(segment) for segment in path.strip("/").split("/") if segment]
    if not segments or len(segments) > 2:
        raise ValueError("a Sentinel URL's path is /service_name or /service_name/db")
    if len(segments) == 2 and not segments[1].isdigit():
        raise ValueError(f"the database number must be an integer, got {segments[1]!r}")
    return segments[0], int(segments[1]) if len(segments) == 2 else 0
