"""`seqfast apikey`: through argparse in-process, and as real processes
(`python -m seqfast.meta.apikey_cli`)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

import seqfast
from seqfast.meta.apikey_cli import PERMISSION_NAMES, add_parser, format_table, parse_property
from seqfast.meta.apikeys import PERMISSIONS, ApiKeys, InvalidApiKey
from seqfast.meta.db import open_metadata

REPO = Path(seqfast.__file__).resolve().parent.parent
POSTGRES_CONNINFO = "host=127.0.0.1 port=5432 user=postgres dbname=test"


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands read SEQFAST_* variables, as the server does; start from none."""
    for name in list(os.environ):
        if name.startswith("SEQFAST_"):
            monkeypatch.delenv(name)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """Runs `seqfast apikey ARGS…` in-process through a parser built like the `seqfast` one."""

    def run(*args: str) -> Result:
        parser = argparse.ArgumentParser(prog="seqfast")
        add_parser(parser.add_subparsers(dest="command", required=True))
        namespace = parser.parse_args(["apikey", *args])
        code = namespace.run(namespace)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    yield run


def run_process(*args: str, env: dict[str, str] | None = None) -> Result:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SEQFAST_")}
    environment["PYTHONPATH"] = str(REPO)
    environment.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "seqfast.meta.apikey_cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def fields_of(output: str) -> dict[str, str]:
    return dict(
        (name.strip(), value.strip())
        for name, _, value in (line.partition(":") for line in output.splitlines())
    )


def assert_one_sentence_error(result: Result, text: str) -> None:
    assert result.code == 1
    assert result.out == ""
    assert result.err == f"seqfast: {text}\n"


# -- in-process --------------------------------------------------------------------------------


def test_create_list_remove(cli: Any, tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    made = cli(
        "create",
        "--title",
        "Orders service",
        "--permissions",
        "ingest,READ",
        "--minimum-level",
        "wrn",
        "--property",
        "App=orders",
        "--property",
        "Retries=3",
        "--data",
        data,
    )
    assert made.code == 0
    shown = fields_of(made.out)
    assert shown["title"] == "Orders service"
    assert shown["token"].startswith(shown["prefix"])
    assert "shown only this once" in made.err

    keys = ApiKeys(open_metadata(f"sqlite:///{tmp_path / 'data' / 'metadata.sqlite'}"))
    key = keys.authenticate(shown["token"])
    assert key is not None and key.id == shown["id"]
    assert key.permissions == ("ingest", "read")
    assert key.minimum_level == "Warning"
    assert key.applied_properties == (("App", "orders"), ("Retries", 3))

    listed = cli("list", "--data", data)
    assert listed.code == 0
    header, row = listed.out.splitlines()
    assert header.split() == [
        "ID",
        "TITLE",
        "PREFIX",
        "PERMISSIONS",
        "MINIMUM",
        "LEVEL",
        "PROPERTIES",
    ]
    assert row.startswith(shown["id"])
    assert "Orders service  " in row and "ingest,read" in row and "Warning" in row
    assert row.endswith('App="orders" Retries=3')
    assert shown["token"] not in listed.out + listed.err

    removed = cli("remove", shown["id"], "--data", data)
    assert (removed.code, removed.out) == (0, f"removed {shown['id']}\n")
    assert keys.list() == []
    assert_one_sentence_error(
        cli("remove", shown["id"], "--data", data),
        f"there is no API key with id '{shown['id']}'",
    )


def test_json_output(cli: Any, tmp_path: Path) -> None:
    data = str(tmp_path)
    made = cli("create", "--title", "T", "--json", "--data", data)
    created = json.loads(made.out)
    assert created["Title"] == "T" and created["Token"].startswith(created["TokenPrefix"])
    assert created["AssignedPermissions"] == ["Ingest"]
    listed = json.loads(cli("list", "--json", "--data", data).out)
    assert [k["Id"] for k in listed] == [created["Id"]]
    assert "Token" not in listed[0] and created["Token"] not in json.dumps(listed)


def test_empty_list(cli: Any, tmp_path: Path) -> None:
    created = json.loads(cli("create", "--title", "T", "--json", "--data", str(tmp_path)).out)
    assert cli("remove", created["Id"], "--data", str(tmp_path)).code == 0
    result = cli("list", "--data", str(tmp_path))
    assert (result.code, result.out, result.err) == (0, "", "seqfast: there are no API keys\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--permissions", "ingest,admin"],
            "unknown permission 'admin'; the permissions are ingest, read, write, project, system",
        ),
        (
            ["--minimum-level", "loud"],
            "unknown level 'loud'; the levels are Verbose, Debug, Information, Warning, Error, "
            "Fatal",
        ),
        (["--property", "NoEquals"], "--property must be NAME=VALUE, got 'NoEquals'"),
        (["--property", "=3"], "--property must be NAME=VALUE, got '=3'"),
        (["--property", "A=1", "--property", "A=2"], "property 'A' is given more than once"),
        (["--property", "@t=1"], "applied property name '@t' must not start with @"),
        (["--permissions", ","], "an API key needs at least one permission"),
    ],
)
def test_create_errors_are_one_sentence(
    cli: Any, tmp_path: Path, args: list[str], message: str
) -> None:
    result = cli("create", "--title", "T", "--data", str(tmp_path), *args)
    assert_one_sentence_error(result, message)


def test_reading_a_missing_database_is_an_error_and_creates_nothing(
    cli: Any, tmp_path: Path
) -> None:
    missing = tmp_path / "typo"
    assert_one_sentence_error(
        cli("list", "--data", str(missing)),
        f"there is no metadata database at {(missing / 'metadata.sqlite').absolute()}",
    )
    assert cli("remove", "apikey-x", "--data", str(missing)).code == 1
    assert not missing.exists()


def test_configuration_errors_are_one_sentence(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQFAST_PAYLOAD_LIMIT", "1MiB")
    assert_one_sentence_error(
        cli("list"),
        "unknown environment variable: SEQFAST_PAYLOAD_LIMIT "
        "(did you mean SEQFAST_PAYLOAD_LIMIT_BYTES?)",
    )
    monkeypatch.delenv("SEQFAST_PAYLOAD_LIMIT")
    assert_one_sentence_error(
        cli("list", "--metadata-db", "mysql://root:hunter2@db/seq"),
        "metadata_db must be a PostgreSQL or SQLite URL such as postgresql://user@host/db, "
        "got 'mysql://root:***@db/seq' (from --metadata-db)",
    )


def test_unreachable_database_is_one_sentence(cli: Any) -> None:
    result = cli("list", "--metadata-db", "postgresql://seq:hunter2@127.0.0.1:1/seq")
    assert result.code == 1
    assert result.err.startswith("seqfast: metadata database postgresql+psycopg://seq:***@")
    assert result.err.count("\n") == 1 and "hunter2" not in result.err


def test_database_is_found_as_the_server_finds_it(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SEQFAST_DATA, then a config file's metadata_db, then the --metadata-db flag.
    monkeypatch.setenv("SEQFAST_DATA", str(tmp_path / "from-env"))
    cli("create", "--title", "env")
    assert (tmp_path / "from-env" / "metadata.sqlite").exists()

    config = tmp_path / "seqfast.toml"
    config.write_text('metadata_db = "sqlite:///' + str(tmp_path / "file.sqlite") + '"\n')
    cli("create", "--title", "file", "--config", str(config))
    assert (tmp_path / "file.sqlite").exists()
    monkeypatch.setenv("SEQFAST_CONFIG", str(config))
    assert json.loads(cli("list", "--json").out)[0]["Title"] == "file"

    flagged = f"sqlite:///{tmp_path / 'flag.sqlite'}"
    cli("create", "--title", "flag", "--metadata-db", flagged)
    assert json.loads(cli("list", "--json", "--metadata-db", flagged).out)[0]["Title"] == "flag"


@pytest.mark.parametrize(
    ("text", "name", "value"),
    [
        ("Env=prod", "Env", "prod"),
        ("Retries=3", "Retries", 3),
        ("Ratio=0.5", "Ratio", 0.5),
        ("Debug=true", "Debug", True),
        ("Nothing=null", "Nothing", None),
        ('Version="1.0"', "Version", "1.0"),
        ('Tags=["a","b"]', "Tags", ["a", "b"]),
        ('Where={"dc":1}', "Where", {"dc": 1}),
        ("Empty=", "Empty", ""),
        ("Expr=a=b", "Expr", "a=b"),
        ("N=NaN", "N", "NaN"),
        ("Big=Infinity", "Big", "Infinity"),
        (" Spaced =x", "Spaced", "x"),
        ("Text={not json", "Text", "{not json"),
    ],
)
def test_property_values_are_json_or_text(text: str, name: str, value: object) -> None:
    assert parse_property(text) == (name, value)


def test_help_names_every_permission() -> None:
    assert PERMISSION_NAMES.split(",") == list(PERMISSIONS)


def test_building_the_parser_does_not_import_sqlalchemy() -> None:
    code = (
        "import sys, argparse; from seqfast.meta import apikey_cli; "
        "apikey_cli.add_parser(argparse.ArgumentParser().add_subparsers()); "
        "print('sqlalchemy' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.stdout.strip() == "False", done.stderr


def test_bad_property() -> None:
    with pytest.raises(InvalidApiKey, match="must be NAME=VALUE"):
        parse_property("x")


def test_format_table_aligns_columns(tmp_path: Path) -> None:
    keys = ApiKeys(open_metadata(f"sqlite:///{tmp_path / 'm.sqlite'}"))
    a, _ = keys.create("A")
    b, _ = keys.create("A much longer title", ["read", "write"], "Error", {"K": [1]})
    lines = format_table([a, b]).splitlines()
    starts = [
        line.index(a.token_prefix if i == 1 else "PREFIX") for i, line in enumerate(lines[:2])
    ]
    assert starts[0] == starts[1] == lines[2].index(b.token_prefix)
    assert lines[1].endswith("-") and lines[2].endswith("K=[1]")
    assert all(line == line.rstrip() for line in lines)


# -- real processes ----------------------------------------------------------------------------


def test_processes_create_list_remove(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    made = run_process("create", "--title", "Proc", "--data", data)
    assert made.code == 0, made.err
    shown = fields_of(made.out)

    listed = run_process("list", "--data", data)
    assert listed.code == 0 and shown["id"] in listed.out
    assert shown["token"] not in listed.out

    assert run_process("remove", shown["id"], "--data", data).code == 0
    gone = run_process("remove", shown["id"], "--data", data)
    assert gone.code == 1
    assert gone.err == f"seqfast: there is no API key with id '{shown['id']}'\n"
    assert "Traceback" not in gone.err


def test_process_errors_exit_1_without_a_traceback(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    for args in (
        ["create", "--title", "T", "--permissions", "root", "--data", str(tmp_path)],
        ["create", "--title", "T", "--minimum-level", "loud", "--data", str(tmp_path)],
        ["create", "--title", "T", "--property", "x", "--data", str(tmp_path)],
        ["list", "--data", str(tmp_path / "absent")],
        ["list", "--metadata-db", "postgresql://seq@127.0.0.1:1/seq"],
        ["create", "--title", "T", "--data", str(not_a_directory / "data")],
    ):
        result = run_process(*args)
        assert result.code == 1, args
        assert result.err.startswith("seqfast: ") and result.err.count("\n") == 1, result.err
        assert "Traceback" not in result.err


def test_keys_created_by_the_command_reach_a_running_server(tmp_path: Path) -> None:
    engine = open_metadata(f"sqlite:///{tmp_path / 'metadata.sqlite'}")
    server = ApiKeys(engine, miss_refresh_seconds=0)
    assert server.list() == []
    made = run_process("create", "--title", "Live", "--data", str(tmp_path))
    shown = fields_of(made.out)
    key = server.authenticate(shown["token"])
    assert key is not None and key.id == shown["id"]


@pytest.fixture
def postgres_schema() -> Iterator[str]:
    try:
        connection = psycopg.connect(POSTGRES_CONNINFO, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL does not answer on 127.0.0.1:5432 ({exc})", pytrace=False)
    schema = f"seqfast_cli_{uuid.uuid4().hex[:12]}"
    with connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield schema
        finally:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_processes_against_postgresql(postgres_schema: str) -> None:
    # The URL's own server options pick the schema, as an operator sharing a database would.
    url = f"postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{postgres_schema}"
    made = run_process("create", "--title", "PG", env={"SEQFAST_METADATA_DB": url})
    assert made.code == 0, made.err
    shown = fields_of(made.out)
    listed = run_process("list", "--json", env={"SEQFAST_METADATA_DB": url})
    assert [k["Id"] for k in json.loads(listed.out)] == [shown["id"]]
    with psycopg.connect(POSTGRES_CONNINFO) as conn:
        row = conn.execute(
            f'SELECT token_prefix FROM "{postgres_schema}".api_keys WHERE id = %s',
            (shown["id"],),
        ).fetchone()
    assert row == (shown["prefix"],)
    assert run_process("remove", shown["id"], env={"SEQFAST_METADATA_DB": url}).code == 0
