"""The command line: sizes, flags, TUSSERVER_* variables and --help (tusserver.serving.cli)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tusserver.extras import install_command, with_install_commands
from tusserver.serving.cli import (
    OPTIONS,
    command_options,
    format_duration,
    format_size,
    main,
    parse_args,
    parse_duration,
    parse_size,
)
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


# --- issue 23: the command line as a new user meets it ----------------------------------------------------------------

SWITCHES = ["fsync", "downloads", "require_tus_resumable_on_head", "ui"]


@pytest.mark.parametrize("field", SWITCHES)
def test_on_off_settings_are_switches(field: str) -> None:
    flag = "--" + field.replace("_", "-")
    negated = "--no-" + flag.removeprefix("--")
    assert getattr(parse_args([flag], {}), field) is True
    assert getattr(parse_args([negated], {}), field) is False
    assert getattr(parse_args([negated], {"TUSSERVER_" + field.upper(): "true"}), field) is False  # flag wins
    assert getattr(parse_args([flag, "no"], {}), field) is False  # `--fsync false` as before


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("1", True), ("yes", True), ("false", False), ("0", False), ("no", False), ("YES", True)],
)
def test_boolean_variables_take_true_false_1_0_yes_no(raw: str, expected: bool) -> None:
    for field in SWITCHES:
        assert getattr(parse_args([], {"TUSSERVER_" + field.upper(): raw}), field) is expected


def test_a_negated_switch_takes_no_value(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--no-fsync", "true"], {})
    assert capsys.readouterr().err == "tusserver: error: --no-fsync takes no value (see `tusserver --help`)\n"


@pytest.mark.parametrize(
    ("argv", "environ", "line"),
    [
        (["--port", "70000"], {}, "--port: input should be less than or equal to 65535"),
        (["--port", "eighty"], {}, "--port: not a whole number: 'eighty'"),
        ([], {"TUSSERVER_PORT": "eighty"}, "TUSSERVER_PORT: not a whole number: 'eighty'"),
        ([], {"TUSSERVER_LOCK_TIMEOUT": "0"}, "TUSSERVER_LOCK_TIMEOUT: input should be greater than 0"),
        (["--read-timeout", "soon"], {}, "--read-timeout: not a number: 'soon'"),
        (["--fsync", "maybe"], {}, "--fsync: not a boolean: 'maybe'"),
        (["--storage", "s3"], {}, "--storage s3 needs --s3-bucket"),
        (["--log-level", "loud"], {}, "--log-level: input should be 'critical', 'error', 'warning', 'info' or 'debug'"),
        (["--no-such-flag"], {}, "unrecognized arguments: --no-such-flag"),
    ],
    ids=["range", "word", "env-word", "env-range", "float-word", "bool-word", "model-rule", "choice", "unknown"],
)
def test_a_bad_value_is_one_line_naming_the_flag_or_variable(
    argv: list[str], environ: dict[str, str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(argv, environ)
    assert info.value.code == 2
    assert capsys.readouterr().err == f"tusserver: error: {line} (see `tusserver --help`)\n"


@pytest.mark.parametrize(
    ("size", "text"), [(0, "0"), (1000, "1000"), (1024, "1K"), (256 * MiB, "256M"), (1536 * MiB, "1536M"),
                       (2 * TiB, "2T")]
)  # fmt: skip
def test_format_size_is_read_back_by_parse_size(size: int, text: str) -> None:
    assert (format_size(size), parse_size(text)) == (text, size)


@pytest.mark.parametrize(
    ("seconds", "text"), [(7 * 86400, "7d"), (3600, "1h"), (90, "90s"), (120, "2m"), (1.5, "1.5s")]
)
def test_format_duration_is_read_back_by_parse_duration(seconds: float, text: str) -> None:
    assert (format_duration(seconds), parse_duration(text)) == (text, seconds)


def help_text(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as info:
        parse_args([*argv, "--help"], {})
    assert info.value.code == 0
    return capsys.readouterr().out


def test_help_shows_defaults_as_people_write_them(capsys: pytest.CaptureFixture[str]) -> None:
    text = " ".join(help_text(capsys).split())  # unwrapped
    for shown in ["--expiration TUSSERVER_EXPIRATION unfinished", "(default: 7d)", "(default: 256M)",
                  "(default: 64M)", "(default: 1K)", "(default: unlimited)", "(default: off)", "(default: 10)",
                  "--fsync, --no-fsync", "TUSSERVER_FSYNC=true/false; default: off", "(default: none)"]:  # fmt: skip
        assert shown in text
    for garbled in ["None", "(default: )", "67108864", "604800", "10.0", "[TUSSERVER_"]:
        assert garbled not in text


def test_help_lines_never_break_at_a_hyphen(capsys: pytest.CaptureFixture[str]) -> None:
    for line in help_text(capsys).splitlines():
        assert not line.endswith("-"), line


def test_cleanup_help_shows_only_what_cleanup_uses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--help"], {}, "cleanup")
    text = capsys.readouterr().out
    assert text.startswith("usage: tusserver cleanup [flags]")
    shown = {option.field for option in OPTIONS if option.flag + " " in text or option.flag + "," in text}
    assert shown == {option.field for option in command_options("cleanup")}
    assert {"data_dir", "redis_url", "storage", "s3_bucket", "azure_container", "hooks_http"} <= shown
    assert not {"port", "max_size", "ui", "expiration", "s3_part_size", "auth_jwt_secret"} & shown


def test_cleanup_reads_only_its_own_variables() -> None:
    environ = {"TUSSERVER_PORT": "eighty", "TUSSERVER_DATA_DIR": "/srv/tus"}  # the server's port: not cleanup's
    assert parse_args([], environ, "cleanup").data_dir == Path("/srv/tus")


def test_a_missing_extra_names_an_install_command_that_works_from_this_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = Path(__file__).resolve().parent.parent.parent
    monkeypatch.chdir(root)
    for name in [name for name in sys.modules if name == "redis" or name.startswith("redis.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(SystemExit) as info:
        main(["--redis-url", "redis://127.0.0.1:1/0", "--data-dir", str(tmp_path / "data")])
    command = install_command("redis")
    assert info.value.code == f"tusserver: --redis-url needs the redis package: {command}"
    interpreter, rest = command.split(" ", 1)
    assert rest == "-m pip install '.[redis]'"  # from the checkout, not from an index
    assert Path(interpreter).resolve() == Path(sys.executable).resolve()  # into the environment running it


def test_install_command_outside_the_checkout_names_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = Path(__file__).resolve().parent.parent.parent
    assert install_command("azure").endswith(f" -m pip install '{root}[azure]'")
    message = "--storage azure needs azure-storage-blob: pip install 'tusserver[azure]'"
    assert with_install_commands(message) == f"--storage azure needs azure-storage-blob: {install_command('azure')}"
