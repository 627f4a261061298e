"""`seqfast apikey create|list|remove`: manage API keys from the command line.

The metadata database is found exactly as `seqfast serve` finds it (flags, then SEQFAST_*
variables, then the config file, then `<data>/metadata.sqlite`), so both always agree.  The
data directory's lock is not taken: SQLite and PostgreSQL handle concurrent writers themselves,
and keys can be managed while the server runs (it sees changes within seconds).

`--property NAME=VALUE` reads VALUE as JSON when it is valid JSON (`Retries=3` is the number 3,
`Debug=true` a boolean, `Tags=["a","b"]` a list) and as text otherwise (`Env=prod`); quote it to
force text: `Version='"1.0"'`.

Errors a user can cause end with exit status 1 and one sentence on stderr.

Runs as `python -m seqfast.meta.apikey_cli create|list|remove …` too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from seqfast.config import config_from_args
from seqfast.errors import SeqfastError
from seqfast.meta.cli_common import table, with_database

if TYPE_CHECKING:
    from seqfast.meta.apikeys import ApiKey, ApiKeys, JsonValue

# The metadata modules (and SQLAlchemy, ~0.15 s to import) are imported only when an apikey
# command runs, not whenever the `seqfast` command builds its parser.  For the same reason the
# permission names are spelled out here; a test checks them against apikeys.PERMISSIONS.
PERMISSION_NAMES = "ingest,read,write,project,system"

_Command = Callable[[argparse.Namespace], int]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Registers `apikey` (with create, list and remove) on `subparsers`, the object returned by
    `ArgumentParser.add_subparsers()`.  Each command sets `args.run`, a function of the parsed
    arguments that returns the exit status."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "apikey", help="create, list and remove API keys", description=__doc__.splitlines()[0]
    )
    add_commands(parser)
    return parser


def add_commands(parser: argparse.ArgumentParser) -> None:
    """Adds the create, list and remove commands to `parser`."""
    commands = parser.add_subparsers(dest="apikey_command", required=True, metavar="COMMAND")

    create = with_database(commands.add_parser("create", help="create a key; prints its token"))
    create.add_argument("--title", required=True, help="what the key is for")
    create.add_argument(
        "--permissions",
        default="ingest",
        metavar="LIST",
        help=f"comma-separated, from {PERMISSION_NAMES} (default: ingest)",
    )
    create.add_argument(
        "--minimum-level", metavar="LEVEL", help="drop events below this level (default: none)"
    )
    create.add_argument(
        "--property",
        dest="properties",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="add this property to every event (repeatable; VALUE is JSON or text)",
    )
    create.add_argument("--json", action="store_true", help="print the key as JSON")
    create.set_defaults(run=_guarded(_create))

    listing = with_database(commands.add_parser("list", help="list the keys (never tokens)"))
    listing.add_argument("--json", action="store_true", help="print the keys as JSON")
    listing.set_defaults(run=_guarded(_list))

    remove = with_database(commands.add_parser("remove", help="remove a key"))
    remove.add_argument("id", help="the key's id (apikey-…)")
    remove.set_defaults(run=_guarded(_remove))


def _guarded(command: _Command) -> _Command:
    """Wraps a command so that any error a user can cause becomes one sentence on stderr and
    exit status 1, whoever calls it (this module's `main` or the `seqfast` command)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (SeqfastError, OSError) as exc:  # OSError: e.g. a data directory we may not create
            print(f"seqfast: {exc}", file=sys.stderr)
            return 1

    return run


def _open_keys(args: argparse.Namespace, *, create: bool) -> ApiKeys:
    from seqfast.meta.apikeys import ApiKeys
    from seqfast.meta.db import open_metadata

    # `args` has --data, --metadata-db and --config, as `config.add_arguments` names them; the
    # other settings come from the environment, the config file or their defaults.
    config = config_from_args(args, os.environ)
    return ApiKeys(open_metadata(config.metadata_url, create=create))


def parse_property(text: str) -> tuple[str, JsonValue]:
    """NAME=VALUE: VALUE as JSON if it is valid JSON, otherwise as text."""
    from seqfast.meta.apikeys import InvalidApiKey

    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise InvalidApiKey(f"--property must be NAME=VALUE, got {text!r}")
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except ValueError:
        value = raw
    return name.strip(), value


def _refuse_constant(text: str) -> None:
    # NaN and Infinity are not JSON values (json.loads accepts them): keep them as text.
    raise ValueError(text)


def _properties(pairs: Sequence[str]) -> dict[str, JsonValue]:
    from seqfast.meta.apikeys import InvalidApiKey

    properties: dict[str, JsonValue] = {}
    for text in pairs:
        name, value = parse_property(text)
        if name in properties:
            raise InvalidApiKey(f"property {name!r} is given more than once")
        properties[name] = value
    return properties


def _create(args: argparse.Namespace) -> int:
    properties = _properties(args.properties)
    keys = _open_keys(args, create=True)
    key, token = keys.create(args.title, args.permissions, args.minimum_level, properties)
    if args.json:
        print(json.dumps({**keys.to_json(key), "Token": token}, indent=2))
    else:
        print(f"id:     {key.id}")
        print(f"title:  {key.title}")
        print(f"prefix: {key.token_prefix}")
        print(f"token:  {token}")
    print("seqfast: the token is shown only this once; store it now", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    keys = _open_keys(args, create=False)
    found = keys.list()
    if args.json:
        print(json.dumps([keys.to_json(key) for key in found], indent=2))
    elif found:
        print(format_table(found), end="")
    else:
        print("seqfast: there are no API keys", file=sys.stderr)
    return 0


def _remove(args: argparse.Namespace) -> int:
    from seqfast.meta.apikeys import InvalidApiKey

    if not _open_keys(args, create=False).remove(args.id):
        raise InvalidApiKey(f"there is no API key with id {args.id!r}")
    print(f"removed {args.id}")
    return 0


def format_table(keys: Sequence[ApiKey]) -> str:
    """The keys as an aligned text table: id, title, prefix, permissions, minimum level,
    applied properties (NAME=JSON)."""
    header = ("ID", "TITLE", "PREFIX", "PERMISSIONS", "MINIMUM LEVEL", "PROPERTIES")
    rows = [header] + [
        (
            key.id,
            key.title,
            key.token_prefix,
            ",".join(key.permissions),
            key.minimum_level or "-",
            " ".join(f"{n}={json.dumps(v)}" for n, v in key.applied_properties) or "-",
        )
        for key in keys
    ]
    return table(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seqfast apikey", description=__doc__.splitlines()[0])
    add_commands(parser)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
