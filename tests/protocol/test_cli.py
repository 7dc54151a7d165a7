"""The command line: sizes, flags, TUSSERVER_* variables and --help (tusserver.serving.cli)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tusserver.serving.cli import OPTIONS, parse_args, parse_size
from tusserver.settings import Settings

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40

# --- parse_size ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("10", 10),
        ("10B", 10),
        ("1K", KiB),
        ("1k", KiB),
        ("1KB", KiB),
        ("1KiB", KiB),
        ("500M", 500 * MiB),
        ("10GiB", 10 * GiB),
        ("10gib", 10 * GiB),
        ("2T", 2 * TiB),
        (" 3 M ", 3 * MiB),
    ],
    ids=["zero", "bytes", "b-suffix", "k", "lower-k", "kb", "kib", "500m", "10gib", "lower-gib", "2t", "spaces"],
)
def test_parse_size_valid(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "abc", "G", "1.5G", "-1", "+1", "10X", "10P", "1KiBB", "1 K B", "1_000"],
    ids=[
        "empty",
        "word",
        "unit-only",
        "fraction",
        "negative",
        "plus",
        "unknown-unit",
        "peta",
        "double-b",
        "split",
        "underscore",
    ],
)
def test_parse_size_invalid_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the documented contract is a plain ValueError
        parse_size(text)


# --- parse_args ------------------------------------------------------------------------------------------------------


def test_options_cover_every_setting() -> None:
    """Every Settings field has a flag and a TUSSERVER_* variable, and nothing else does."""
    assert sorted(option.field for option in OPTIONS) == sorted(Settings.model_fields)


def test_parse_args_without_flags_or_variables_gives_defaults() -> None:
    assert parse_args([], {}) == Settings()


def test_parse_args_flag_beats_variable() -> None:
    assert parse_args(["--port", "9000"], {"TUSSERVER_PORT": "7000"}).port == 9000


def test_parse_args_variable_beats_default() -> None:
    assert parse_args([], {"TUSSERVER_PORT": "7000"}).port == 7000


def test_parse_args_ignores_unrelated_variables() -> None:
    assert parse_args([], {"PORT": "7000", "TUSSERVER_UNKNOWN": "x"}) == Settings()


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("host", "0.0.0.0", "0.0.0.0"),
        ("base_path", "uploads", "/uploads/"),
        ("data_dir", "/tmp/tus", Path("/tmp/tus")),
        ("max_size", "10G", 10 * GiB),
        ("cors_origins", "https://a.example, https://b.example,,", ("https://a.example", "https://b.example")),
        ("trusted_proxies", " 10.0.0.0/8 ,::1", ("10.0.0.0/8", "::1")),
        ("lock_timeout", "2.5", 2.5),
        ("read_timeout", "30", 30.0),
        ("fsync", "yes", True),
        ("fsync", "Off", False),
        ("fsync", "", False),
        ("require_tus_resumable_on_head", "false", False),
        ("log_level", "debug", "debug"),
        ("max_concat_parts", "16", 16),
    ],
    ids=[
        "host",
        "base-path",
        "data-dir",
        "max-size-units",
        "cors-csv",
        "trusted-proxies-csv",
        "lock-timeout",
        "read-timeout",
        "fsync-yes",
        "fsync-off",
        "fsync-empty",
        "head-412-false",
        "log-level",
        "max-concat-parts",
    ],
)
def test_parse_args_parses_each_option(field: str, raw: str, expected: object) -> None:
    flag = "--" + field.replace("_", "-")
    from_flag = parse_args([flag, raw], {})
    from_env = parse_args([], {"TUSSERVER_" + field.upper(): raw})
    assert getattr(from_flag, field) == getattr(from_env, field) == expected


@pytest.mark.parametrize(
    ("argv", "environ"),
    [
        (["--port", "abc"], {}),
        (["--port", "70000"], {}),
        ([], {"TUSSERVER_PORT": "abc"}),
        (["--max-size", "10X"], {}),
        ([], {"TUSSERVER_MAX_SIZE": "-1"}),
        (["--fsync", "maybe"], {}),
        (["--lock-timeout", "0"], {}),
        (["--read-timeout", "soon"], {}),
        (["--max-concat-parts", "0"], {}),
        ([], {"TUSSERVER_MAX_CONCAT_PARTS": "1001"}),
        (["--no-such-flag"], {}),
        (["--port"], {}),
    ],
    ids=[
        "port-word",
        "port-range",
        "env-port-word",
        "size-unit",
        "env-size-negative",
        "bool-word",
        "timeout-zero",
        "timeout-word",
        "concat-parts-zero",
        "env-concat-parts-over-parser-bound",
        "unknown-flag",
        "missing-value",
    ],
)
def test_parse_args_bad_value_exits_with_usage_error(argv: list[str], environ: dict[str, str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(argv, environ)
    assert info.value.code == 2


def test_help_lists_every_flag_and_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(["--help"], {})
    assert info.value.code == 0
    out = capsys.readouterr().out
    missing = [name for option in OPTIONS for name in (option.flag, option.env) if name not in out]
    assert missing == []


@pytest.mark.parametrize(
    "raw", ["not-an-ip", "10.0.0.0/33", "10.0.0.1,garbage"], ids=["word", "prefix", "second-entry"]
)
def test_parse_args_malformed_trusted_proxy_exits_with_usage_error(raw: str) -> None:
    """A proxy list that TrustedProxies.parse rejects is a bad value like any other (item 32)."""
    with pytest.raises(SystemExit) as info:
        parse_args(["--trusted-proxies", raw], {})
    assert info.value.code == 2
