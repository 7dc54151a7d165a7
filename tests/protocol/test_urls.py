"""Trusted proxies and forwarded origins for Location (tusserver.protocol.urls); PROTOCOL.md item 32."""

from __future__ import annotations

import pytest

from tusserver.protocol.urls import TrustedProxies, forwarded_origin

# --- TrustedProxies ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "peer"),
    [
        (["10.0.0.1"], "10.0.0.1"),
        (["10.0.0.0/8"], "10.255.1.2"),
        (["10.0.0.1/8"], "10.9.9.9"),
        (["::1"], "::1"),
        (["fd00::/8"], "fd12:3456::1"),
        (["192.168.0.0/16", "2001:db8::/32"], "2001:db8::7"),
        ([" 10.0.0.1 ", ""], "10.0.0.1"),
        (["*"], "203.0.113.9"),
        (["*"], None),
        (["*"], "not-an-ip"),
        (["10.0.0.0/8"], "::ffff:10.0.0.1"),
    ],
    ids=[
        "ip",
        "cidr",
        "cidr-host-bits-set",
        "ipv6",
        "ipv6-cidr",
        "second-network",
        "spaces-and-blanks",
        "everyone",
        "everyone-no-peer",
        "everyone-garbage-peer",
        "ipv4-mapped-ipv6-peer",
    ],
)
def test_trusted_proxies_trusts(entries: list[str], peer: str | None) -> None:
    assert TrustedProxies.parse(entries).trusts(peer) is True


@pytest.mark.parametrize(
    ("entries", "peer"),
    [
        ([], "10.0.0.1"),
        (["10.0.0.1"], "10.0.0.2"),
        (["10.0.0.0/8"], "11.0.0.1"),
        (["::1"], "::2"),
        (["10.0.0.0/8"], "::1"),
        (["10.0.0.1"], None),
        (["10.0.0.1"], "garbage"),
        (["10.0.0.1"], ""),
        ([], None),
    ],
    ids=[
        "none-configured",
        "other-ip",
        "outside-cidr",
        "other-ipv6",
        "v6-peer-v4-net",
        "no-peer",
        "garbage",
        "empty",
        "empty-config",
    ],
)
def test_trusted_proxies_distrusts(entries: list[str], peer: str | None) -> None:
    assert TrustedProxies.parse(entries).trusts(peer) is False


def test_trusted_proxies_default_trusts_nobody() -> None:
    assert TrustedProxies().trusts("127.0.0.1") is False


@pytest.mark.parametrize(
    "entry", ["garbage", "10.0.0.300", "10.0.0.0/33", "::g"], ids=["word", "octet", "prefix", "v6"]
)
def test_trusted_proxies_parse_malformed_raises_value_error(entry: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the documented contract is a plain ValueError
        TrustedProxies.parse([entry])


# --- forwarded_origin ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, (None, None)),
        ({"forwarded": "proto=https;host=example.com"}, ("https", "example.com")),
        ({"forwarded": 'proto="https";host="example.com:8443"'}, ("https", "example.com:8443")),
        ({"forwarded": "for=1.2.3.4; Proto=HTTPS; HOST=example.com"}, ("https", "example.com")),
        ({"forwarded": "proto=https;host=a.example, proto=http;host=b.example"}, ("https", "a.example")),
        ({"forwarded": 'host="[::1]:8080"'}, (None, "[::1]:8080")),
        ({"x-forwarded-proto": "https", "x-forwarded-host": "example.com"}, ("https", "example.com")),
        ({"x-forwarded-proto": "https, http", "x-forwarded-host": "a.example, b.example"}, ("https", "a.example")),
        ({"x-forwarded-proto": "HTTP"}, ("http", None)),
        ({"forwarded": "for=1.2.3.4"}, (None, None)),
    ],
    ids=[
        "none",
        "forwarded",
        "forwarded-quoted",
        "forwarded-case-and-spaces",
        "forwarded-first-element-only",
        "forwarded-ipv6-host",
        "x-forwarded",
        "x-forwarded-first-only",
        "x-forwarded-proto-case",
        "forwarded-without-proto-or-host",
    ],
)
def test_forwarded_origin(headers: dict[str, str], expected: tuple[str | None, str | None]) -> None:
    assert forwarded_origin(headers) == expected


def test_forwarded_origin_forwarded_wins_over_x_forwarded() -> None:
    headers = {
        "forwarded": "proto=https;host=good.example",
        "x-forwarded-proto": "http",
        "x-forwarded-host": "other.example",
    }
    assert forwarded_origin(headers) == ("https", "good.example")


@pytest.mark.parametrize(
    "proto",
    ["javascript", "ftp", "https://evil", "http\r\nX: y", ""],
    ids=["javascript", "ftp", "url", "crlf", "empty"],
)
def test_forwarded_origin_invalid_proto_is_ignored(proto: str) -> None:
    assert forwarded_origin({"x-forwarded-proto": proto})[0] is None
    assert forwarded_origin({"forwarded": f'proto="{proto}"'})[0] is None


@pytest.mark.parametrize(
    "host",
    [
        "evil.com/path",
        "user@evil.com",
        "evil.com\r\nSet-Cookie: x=1",
        "evil.com:port",
        "evil.com:123456",
        "[::1",
        "exa mple.com",
        "evil.com?x",
        "évil.com",
    ],
    ids=["path", "userinfo", "crlf", "bad-port", "long-port", "open-bracket", "space", "query", "non-ascii"],
)
def test_forwarded_origin_invalid_host_is_ignored(host: str) -> None:
    assert forwarded_origin({"x-forwarded-host": host})[1] is None
    assert forwarded_origin({"forwarded": f'host="{host}"'})[1] is None
