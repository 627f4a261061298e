"""The configuration: precedence, parsing, every validation message, and the derived views."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqfast.config import (
    SETTINGS,
    Config,
    ConfigError,
    add_arguments,
    config_from_args,
    env_name,
    format_size,
    load_config,
    parse_size,
    settings_table_markdown,
)

NO_FLAGS: dict[str, str | None] = {}
NO_ENV: dict[str, str] = {}


def load(
    flags: dict[str, str | None] | None = None,
    env: dict[str, str] | None = None,
    file: Path | None = None,
) -> Config:
    return load_config(flags or NO_FLAGS, env or NO_ENV, file)


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "seqfast.toml"
    path.write_text(text)
    return path


def error_of(
    flags: dict[str, str | None] | None = None,
    env: dict[str, str] | None = None,
    file: Path | None = None,
) -> str:
    with pytest.raises(ConfigError) as caught:
        load(flags, env, file)
    return str(caught.value)


# -- defaults and precedence -------------------------------------------------------------------


def test_defaults() -> None:
    config = load()
    assert config == Config()
    assert config.data == Path("./seqfast-data")
    assert config.listen == "127.0.0.1:5341"
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 5341)
    assert config.require_api_key is False
    assert config.payload_limit_bytes == 10 * 1024 * 1024
    assert config.event_limit_bytes == 256 * 1024
    assert config.queue_limit_bytes == 64 * 1024 * 1024
    assert config.free_disk_reserve_bytes == 512 * 1024 * 1024
    assert config.retry_after_seconds == 2
    assert config.header_timeout_seconds == 10
    assert config.keepalive_timeout_seconds == 75
    assert config.body_timeout_seconds == 30
    assert config.max_header_bytes == 16 * 1024
    assert config.ingest_threads == 2
    assert config.metadata_db == ""
    assert config.log_level == "Information"


def test_command_line_beats_environment_beats_file_beats_default(tmp_path: Path) -> None:
    file = write_toml(
        tmp_path, 'listen = "0.0.0.0:1"\ningest_threads = 3\nretry_after_seconds = 7\n'
    )
    env = {"SEQFAST_LISTEN": "0.0.0.0:2", "SEQFAST_INGEST_THREADS": "4"}
    config = load({"listen": "0.0.0.0:3", "ingest_threads": None}, env, file)
    assert config.listen == "0.0.0.0:3"  # flag
    assert config.ingest_threads == 4  # environment (the flag was not given)
    assert config.retry_after_seconds == 7  # file
    assert config.body_timeout_seconds == 30  # default


def test_empty_environment_variable_counts_as_unset(tmp_path: Path) -> None:
    file = write_toml(tmp_path, 'listen = "0.0.0.0:1"\n')
    assert load(env={"SEQFAST_LISTEN": ""}, file=file).listen == "0.0.0.0:1"


def test_file_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    file = tmp_path / "etc" / "seqfast.toml"
    file.write_text('data = "../var/data"\n')
    assert load(file=file).data == tmp_path / "etc" / "../var/data"
    file.write_text('data = "/srv/data"\n')
    assert load(file=file).data == Path("/srv/data")
    # On the command line and in the environment, relative to the working directory.
    assert load({"data": "here"}).data == Path("here")
    assert load(env={"SEQFAST_DATA": "there"}).data == Path("there")


def test_file_accepts_native_toml_types(tmp_path: Path) -> None:
    file = write_toml(
        tmp_path,
        "require_api_key = true\n"
        "payload_limit_bytes = 1048576\n"
        'event_limit_bytes = "64KiB"\n'
        "header_timeout_seconds = 2.5\n"
        "keepalive_timeout_seconds = 5\n"
        'log_level = "WRN"\n',
    )
    config = load(file=file)
    assert config.require_api_key is True
    assert config.payload_limit_bytes == 1 << 20
    assert config.event_limit_bytes == 64 << 10
    assert config.header_timeout_seconds == 2.5
    assert config.keepalive_timeout_seconds == 5.0
    assert config.log_level == "Warning"
    assert config.python_log_level == logging.WARNING


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("on", True),
        ("1", True),
        ("false", False),
        ("No", False),
        ("off", False),
        ("0", False),
    ],
)
def test_boolean_spellings(text: str, expected: bool) -> None:
    assert load(env={"SEQFAST_REQUIRE_API_KEY": text}).require_api_key is expected


# -- sizes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0, 0),
        (1048576, 1048576),
        ("1048576", 1048576),
        ("10MiB", 10 << 20),
        ("10 MiB", 10 << 20),
        ("10mib", 10 << 20),
        ("256KiB", 256 << 10),
        ("2GiB", 2 << 30),
        ("1TiB", 1 << 40),
        ("1.5MiB", 3 << 19),
        ("500MB", 500_000_000),
        ("1kb", 1000),
        ("1GB", 10**9),
        ("7B", 7),
        (" 3 KiB ", 3072),
    ],
)
def test_size_parsing(raw: int | str, expected: int) -> None:
    assert parse_size(raw) == expected


@pytest.mark.parametrize("raw", ["", "MiB", "10 mebibytes", "10M", "ten", "-1", "1e6", True, 1.5])
def test_bad_sizes(raw: object) -> None:
    with pytest.raises(Exception, match="must be a size"):
        parse_size(raw)


@given(st.integers(min_value=0, max_value=1 << 50))
def test_format_size_round_trips(value: int) -> None:
    assert parse_size(format_size(value).replace(" ", "")) == value


def test_format_size_picks_the_largest_exact_unit() -> None:
    assert format_size(10 << 20) == "10 MiB"
    assert format_size(256 << 10) == "256 KiB"
    assert format_size(1000) == "1000 B"
    assert format_size(0) == "0 B"


# -- validation messages -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"listen": "abc"}, "listen must be HOST:PORT, got 'abc' (from --listen)"),
        ({"listen": ":5341"}, "listen must be HOST:PORT, got ':5341' (from --listen)"),
        ({"listen": "host:99999"}, "listen must be HOST:PORT, got 'host:99999' (from --listen)"),
        ({"listen": "::1:5341"}, "listen must be HOST:PORT, got '::1:5341' (from --listen)"),
        (
            {"require_api_key": "maybe"},
            "require_api_key must be true or false, got 'maybe' (from --require-api-key)",
        ),
        (
            {"payload_limit_bytes": "lots"},
            "payload_limit_bytes must be a size such as 10MiB or 1048576 (units B, KiB, MiB, "
            "GiB, KB, MB…), got 'lots' (from --payload-limit-bytes)",
        ),
        (
            {"event_limit_bytes": "0"},
            "event_limit_bytes must be at least 1 B, got '0' (from --event-limit-bytes)",
        ),
        (
            {"max_header_bytes": "100"},
            "max_header_bytes must be at least 1 KiB, got '100' (from --max-header-bytes)",
        ),
        (
            {"retry_after_seconds": "soon"},
            "retry_after_seconds must be an integer, got 'soon' (from --retry-after-seconds)",
        ),
        (
            {"retry_after_seconds": "0"},
            "retry_after_seconds must be an integer from 1 to 3600, got '0' "
            "(from --retry-after-seconds)",
        ),
        (
            {"ingest_threads": "0"},
            "ingest_threads must be an integer from 1 to 256, got '0' (from --ingest-threads)",
        ),
        (
            {"header_timeout_seconds": "0"},
            "header_timeout_seconds must be a positive number of seconds, got '0' "
            "(from --header-timeout-seconds)",
        ),
        (
            {"body_timeout_seconds": "inf"},
            "body_timeout_seconds must be a positive number of seconds, got 'inf' "
            "(from --body-timeout-seconds)",
        ),
        (
            {"keepalive_timeout_seconds": "long"},
            "keepalive_timeout_seconds must be a number of seconds, got 'long' "
            "(from --keepalive-timeout-seconds)",
        ),
        (
            {"log_level": "loud"},
            "log_level must be a log level: Verbose, Debug, Information, Warning, Error, Fatal, "
            "got 'loud' (from --log-level)",
        ),
        (
            {"metadata_db": "mysql://root:hunter2@db/seq"},
            "metadata_db must be a PostgreSQL or SQLite URL such as postgresql://user@host/db, "
            "got 'mysql://root:***@db/seq' (from --metadata-db)",
        ),
        (
            {"metadata_db": "root:hunter2@db"},
            "metadata_db must be a PostgreSQL or SQLite URL such as postgresql://user@host/db, "
            "got a value that is not a URL (from --metadata-db)",
        ),
    ],
)
def test_bad_values_name_the_setting_value_and_flag(
    flags: dict[str, str | None], message: str
) -> None:
    assert error_of(flags) == message
    assert "hunter2" not in message


def test_bad_value_names_the_variable() -> None:
    assert error_of(env={"SEQFAST_INGEST_THREADS": "many"}) == (
        "ingest_threads must be an integer, got 'many' (from SEQFAST_INGEST_THREADS)"
    )


def test_bad_value_names_the_file_and_key(tmp_path: Path) -> None:
    file = write_toml(tmp_path, 'require_api_key = "sometimes"\n')
    assert error_of(file=file) == (
        f"require_api_key must be true or false, got 'sometimes' (from {file}:require_api_key)"
    )
    file.write_text("listen = [1, 2]\n")
    assert error_of(file=file) == f"listen must be HOST:PORT, got [1, 2] (from {file}:listen)"
    file.write_text("ingest_threads = true\n")
    assert "ingest_threads must be an integer, got True" in error_of(file=file)


def test_payload_must_hold_an_event() -> None:
    assert error_of({"payload_limit_bytes": "1KiB"}) == (
        "payload_limit_bytes must be at least event_limit_bytes, got 1 KiB "
        "(--payload-limit-bytes) < 256 KiB (default)"
    )


def test_queue_must_hold_a_payload() -> None:
    message = error_of(env={"SEQFAST_QUEUE_LIMIT_BYTES": "1MiB"})
    assert message == (
        "queue_limit_bytes must be at least payload_limit_bytes, got 1 MiB "
        "(SEQFAST_QUEUE_LIMIT_BYTES) < 10 MiB (default)"
    )


def test_direct_construction_checks_the_cross_rules() -> None:
    with pytest.raises(ConfigError, match="payload_limit_bytes must be at least event_limit"):
        Config(payload_limit_bytes=10, event_limit_bytes=20)


def test_unknown_environment_variables_are_named() -> None:
    assert error_of(env={"SEQFAST_PAYLOAD_LIMIT": "1MiB"}) == (
        "unknown environment variable: SEQFAST_PAYLOAD_LIMIT "
        "(did you mean SEQFAST_PAYLOAD_LIMIT_BYTES?)"
    )
    assert error_of(env={"SEQFAST_B": "1", "SEQFAST_A": "2"}) == (
        "unknown environment variables: SEQFAST_A, SEQFAST_B"
    )


def test_other_variables_are_left_alone() -> None:
    env = {
        "PATH": "/bin",
        "SEQ_API_KEY": "x",
        "SEQFAST_VENV": ".venv",
        "SEQFAST_DEBUG": "1",
        "SEQFAST_CONFIG": "/nonexistent.toml",  # read by config_from_args, not load_config
    }
    assert load(env=env) == Config()


def test_unknown_file_keys_are_named(tmp_path: Path) -> None:
    file = write_toml(tmp_path, "listen_port = 80\nfoo = 1\n")
    assert error_of(file=file) == (
        f"config file {file} has unknown settings: foo, listen_port (did you mean listen?)"
    )


def test_unknown_override_keys_are_named() -> None:
    assert error_of({"colour": "blue"}) == "unknown settings given on the command line: colour"


def test_file_errors(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    assert error_of(file=missing) == f"config file {missing} does not exist"
    broken = write_toml(tmp_path, "listen = \n")
    assert error_of(file=broken).startswith(f"config file {broken} is not valid TOML: ")
    assert error_of(file=tmp_path).startswith(f"cannot read config file {tmp_path}: ")


def test_listen_forms() -> None:
    assert load({"listen": "[::1]:8080"}).listen == "[::1]:8080"
    config = load({"listen": " localhost:0 "})
    assert (config.listen, config.listen_host, config.listen_port) == (
        "localhost:0",
        "localhost",
        0,
    )
    assert load({"listen": "[::]:5341"}).listen_host == "::"


# -- derived values ----------------------------------------------------------------------------


def test_metadata_url_defaults_to_sqlite_in_the_data_directory(tmp_path: Path) -> None:
    config = load({"data": str(tmp_path / "d")})
    assert config.metadata_url == f"sqlite:///{tmp_path / 'd' / 'metadata.sqlite'}"
    url = "postgresql+psycopg://seq@db/seq"
    assert load(env={"SEQFAST_METADATA_DB": url}).metadata_url == url


def test_repr_hides_the_database_password() -> None:
    config = load({"metadata_db": "postgresql://seq:hunter2@db/seq"})
    assert "hunter2" not in repr(config)
    assert "postgresql://seq:***@db/seq" in repr(config)


@pytest.mark.parametrize(
    ("level", "number"),
    [("verbose", 5), ("dbg", logging.DEBUG), ("error", logging.ERROR), ("fatal", 50)],
)
def test_python_log_level(level: str, number: int) -> None:
    assert load({"log_level": level}).python_log_level == number


# -- the single definition and what is derived from it ------------------------------------------


def test_every_field_is_a_described_setting() -> None:
    assert list(SETTINGS) == [f.name for f in dataclasses.fields(Config)]
    for name, definition in SETTINGS.items():
        assert definition.metadata["description"], name
        assert "\n" not in definition.metadata["description"], name


def test_environment_variable_names() -> None:
    assert env_name("payload_limit_bytes") == "SEQFAST_PAYLOAD_LIMIT_BYTES"
    for name in SETTINGS:
        value = Config().__getattribute__(name)
        # Every setting is reachable through its variable (feeding the default back in).
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if text:
            assert getattr(load(env={env_name(name): text}), name) == value, name


def test_settings_table_has_a_row_per_setting() -> None:
    table = settings_table_markdown().splitlines()
    assert table[0].startswith("| Setting (TOML key) | Flag | Environment variable | Default |")
    rows = table[2:]
    assert len(rows) == len(SETTINGS)
    for row, (name, definition) in zip(rows, SETTINGS.items(), strict=True):
        assert row.startswith(f"| `{name}` | `--{name.replace('_', '-')}`")
        assert f"`{env_name(name)}`" in row
        assert row.endswith(f"| {definition.metadata['description']} |")
    assert "| `payload_limit_bytes` |" in table[5]
    assert "`10 MiB`" in table[5]
    assert "`--require-api-key` / `--no-require-api-key`" in table[4]
    assert "`sqlite:///<data>/metadata.sqlite`" in settings_table_markdown()
    assert "`./seqfast-data`" in table[2]


def test_readme_settings_table_is_the_generated_one() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start, end = "<!-- settings-table -->", "<!-- /settings-table -->"
    assert start in readme and end in readme, "README.md lost its settings-table markers"
    shown = readme.split(start, 1)[1].split(end, 1)[0]
    assert shown.strip() == settings_table_markdown().strip(), (
        "README.md's settings table is stale: replace it with "
        "`python -c 'from seqfast.config import settings_table_markdown as t; print(t())'`"
    )


# -- argparse ----------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seqfast serve")
    add_arguments(p)
    return p


def test_add_arguments_has_a_flag_per_setting() -> None:
    help_text = parser().format_help()
    assert "--config FILE" in help_text
    for name in SETTINGS:
        assert f"--{name.replace('_', '-')}" in help_text
    assert "--no-require-api-key" in help_text


def test_config_from_args_applies_flags_over_environment(tmp_path: Path) -> None:
    args = parser().parse_args(
        ["--data", str(tmp_path), "--listen", "0.0.0.0:80", "--require-api-key"]
    )
    config = config_from_args(args, {"SEQFAST_LISTEN": "1.2.3.4:5", "SEQFAST_INGEST_THREADS": "8"})
    assert config.data == tmp_path
    assert config.listen == "0.0.0.0:80"
    assert config.require_api_key is True
    assert config.ingest_threads == 8

    args = parser().parse_args(["--no-require-api-key"])
    assert config_from_args(args, {"SEQFAST_REQUIRE_API_KEY": "true"}).require_api_key is False


def test_config_file_from_flag_or_variable(tmp_path: Path) -> None:
    file = write_toml(tmp_path, "ingest_threads = 5\n")
    assert config_from_args(parser().parse_args(["--config", str(file)]), {}).ingest_threads == 5
    from_env = config_from_args(parser().parse_args([]), {"SEQFAST_CONFIG": str(file)})
    assert from_env.ingest_threads == 5
    other = tmp_path / "other.toml"
    other.write_text("ingest_threads = 6\n")
    both = config_from_args(parser().parse_args(["--config", str(other)]), {"SEQFAST_CONFIG": ""})
    assert both.ingest_threads == 6


def test_bad_flag_value_through_argparse() -> None:
    args = parser().parse_args(["--payload-limit-bytes", "huge"])
    with pytest.raises(ConfigError, match=r"got 'huge' \(from --payload-limit-bytes\)"):
        config_from_args(args, {})
