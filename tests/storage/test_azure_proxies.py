"""The Azure client takes the environment's proxy once, when it is made (storage_backends/azure/auth.py), instead
of the SDK reading the environment (and ~/.netrc) again on every call."""

from __future__ import annotations

from typing import Any

import pytest

from storage_backends.azure.auth import Credentials, proxies_for

ACCOUNT_URL = "https://acct.blob.core.windows.net"


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def test_the_proxy_for_the_account_url_scheme_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://other.example:3128")
    assert proxies_for(ACCOUNT_URL) == {"https": "http://proxy.example:3128"}


def test_no_proxy_naming_the_host_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.core.windows.net")
    assert proxies_for(ACCOUNT_URL) == {}


def test_without_proxy_settings_there_is_none() -> None:
    assert proxies_for(ACCOUNT_URL) == {}


@pytest.mark.parametrize("proxy", [None, "http://proxy.example:3128"])
def test_the_client_gets_the_proxy_and_does_not_read_the_environment_per_call(
    monkeypatch: pytest.MonkeyPatch, proxy: str | None
) -> None:
    if proxy is not None:
        monkeypatch.setenv("HTTPS_PROXY", proxy)
    config: Any = Credentials(account_url=ACCOUNT_URL, account_key="a2V5").client()._config
    assert config.proxy_policy.proxies == ({"https": proxy} if proxy else None)
    assert config.transport._use_env_settings is False
