"""`seqfast signal create|list|remove` and `seqfast retention create|list|remove|apply`.

The metadata database is found exactly as `seqfast serve` and `seqfast apikey` find it, and
signals and policies can be managed while the server runs (it reads them on every retention
pass and every search).  `retention apply` opens the data directory itself, so it runs only
while the server does not (the leading node applies the policies every
`retention_interval_seconds`, and on `POST /api/retentionpolicies/apply`).

Input a user got wrong (a filter that does not parse, an unknown id, a bad duration) ends with
exit status 2 and one sentence on stderr; anything else that fails (the database does not
answer, the data directory is in use) with status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from seqfast.config import config_from_args, parse_size
from seqfast.errors import SeqfastError
from seqfast.meta.cli_common import table, with_database

if TYPE_CHECKING:
    from seqfast.meta.retention_policies import RetentionPolicies, RetentionPolicy
    from seqfast.meta.signals import Signal, Signals

_Command = Callable[[argparse.Namespace], int]


class _BadInput(SeqfastError, ValueError):
    """Input the user got wrong."""


def add_parsers(subparsers: Any) -> None:
    """Registers `signal` and `retention` on `subparsers` (from `add_subparsers()`)."""
    signal = subparsers.add_parser(
        "signal", help="create, list and remove signals", description="Manage signals."
    )
    commands = signal.add_subparsers(dest="signal_command", required=True, metavar="COMMAND")
    create = with_database(commands.add_parser("create", help="create a signal"))
    create.add_argument("--title", required=True, help="the signal's name")
    create.add_argument(
        "--filter",
        dest="filters",
        action="append",
        default=[],
        metavar="FILTER",
        help="a filter, as typed in the search box (repeatable; all must match)",
    )
    create.add_argument("--description", default="", help="what the signal is for")
    create.add_argument("--json", action="store_true", help="print the signal as JSON")
    create.set_defaults(run=_guarded(_create_signal))
    listing = with_database(commands.add_parser("list", help="list the signals"))
    listing.add_argument("--json", action="store_true", help="print the signals as JSON")
    listing.set_defaults(run=_guarded(_list_signals))
    remove = with_database(commands.add_parser("remove", help="remove a signal"))
    remove.add_argument("id", help="the signal's id (signal-N)")
    remove.set_defaults(run=_guarded(_remove_signal))

    retention = subparsers.add_parser(
        "retention",
        help="create, list, remove and apply retention policies",
        description="Manage retention policies.",
    )
    commands = retention.add_subparsers(dest="retention_command", required=True, metavar="COMMAND")
    create = with_database(commands.add_parser("create", help="create a retention policy"))
    create.add_argument(
        "--after",
        metavar="DURATION",
        help="remove events older than this: 30d, 12h, 90m or 30.00:00:00",
    )
    which = create.add_mutually_exclusive_group()
    which.add_argument(
        "--delete-all-events",
        action="store_true",
        help="remove every event older than --after (the default)",
    )
    which.add_argument(
        "--delete", metavar="SIGNAL", help="remove only the events in this signal (signal-N)"
    )
    create.add_argument(
        "--max-total-bytes",
        type=_size,
        metavar="SIZE",
        help="drop the oldest events while the store is larger than this (e.g. 50GiB)",
    )
    create.add_argument("--json", action="store_true", help="print the policy as JSON")
    create.set_defaults(run=_guarded(_create_policy))
    listing = with_database(commands.add_parser("list", help="list the retention policies"))
    listing.add_argument("--json", action="store_true", help="print the policies as JSON")
    listing.set_defaults(run=_guarded(_list_policies))
    remove = with_database(commands.add_parser("remove", help="remove a retention policy"))
    remove.add_argument("id", help="the policy's id (retentionpolicy-N)")
    remove.set_defaults(run=_guarded(_remove_policy))
    apply = with_database(
        commands.add_parser(
            "apply", help="apply the policies now (while the server is not running)"
        )
    )
    apply.set_defaults(run=_guarded(_apply))


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except Exception as exc:  # config's own error type is private; its message is the point
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def _guarded(command: _Command) -> _Command:
    def run(args: argparse.Namespace) -> int:
        from seqfast.meta.retention_policies import InvalidRetentionPolicy
        from seqfast.meta.signals import InvalidSignal

        try:
            return command(args)
        except (InvalidSignal, InvalidRetentionPolicy, _BadInput) as exc:
            print(f"seqfast: {exc}", file=sys.stderr)
            return 2
        except (SeqfastError, OSError) as exc:
            print(f"seqfast: {exc}", file=sys.stderr)
            return 1

    return run


def _open(args: argparse.Namespace, *, create: bool) -> tuple[Signals, RetentionPolicies]:
    from seqfast.meta.db import open_metadata
    from seqfast.meta.retention_policies import RetentionPolicies
    from seqfast.meta.signals import Signals

    config = config_from_args(args, os.environ)
    engine = open_metadata(config.metadata_url, create=create)
    return Signals(engine), RetentionPolicies(engine)


# -- what the commands print (signals and policies alike) ----------------------------------------


class _Saved(Protocol):
    @property
    def id(self) -> str: ...

    def to_json(self) -> dict[str, Any]: ...


_S = TypeVar("_S", bound=_Saved)


def _print_created(args: argparse.Namespace, item: _Saved) -> int:
    print(json.dumps(item.to_json(), indent=2) if args.json else item.id)
    return 0


def _print_list(
    args: argparse.Namespace, found: Sequence[_S], fmt: Callable[[Sequence[_S]], str], what: str
) -> int:
    if args.json:
        print(json.dumps([item.to_json() for item in found], indent=2))
    elif found:
        print(fmt(found), end="")
    else:
        print(f"seqfast: there are no {what}", file=sys.stderr)
    return 0


def _print_removed(args: argparse.Namespace, removed: bool, what: str) -> int:
    if not removed:
        raise _BadInput(f"there is no {what} with id {args.id!r}")
    print(f"removed {args.id}")
    return 0


# -- signals -----------------------------------------------------------------------------------


def _create_signal(args: argparse.Namespace) -> int:
    from seqfast.meta.signals import normalise_filter, normalise_title

    normalise_title(args.title)  # checked before the database is opened or created
    filters = [normalise_filter(None, text) for text in args.filters]
    signals, _ = _open(args, create=True)
    return _print_created(args, signals.create(args.title, filters, args.description))


def _list_signals(args: argparse.Namespace) -> int:
    signals, _ = _open(args, create=False)
    return _print_list(args, signals.list(), format_signals, "signals")


def _remove_signal(args: argparse.Namespace) -> int:
    signals, _ = _open(args, create=False)
    return _print_removed(args, signals.remove(args.id), "signal")


def format_signals(signals: Sequence[Signal]) -> str:
    rows = [("ID", "TITLE", "FILTERS")] + [
        (s.id, s.title, " and ".join(f"({f.filter})" for f in s.filters) or "-") for s in signals
    ]
    return table(rows)


# -- retention policies ------------------------------------------------------------------------


def _create_policy(args: argparse.Namespace) -> int:
    from seqfast.meta.retention_policies import parse_timespan

    retention = None if args.after is None else parse_timespan(args.after)
    if retention is None and args.max_total_bytes is None:
        raise _BadInput("say what to remove: --after DURATION and/or --max-total-bytes SIZE")
    _, policies = _open(args, create=True)
    return _print_created(args, policies.create(retention, args.delete, args.max_total_bytes))


def _list_policies(args: argparse.Namespace) -> int:
    _, policies = _open(args, create=False)
    return _print_list(args, policies.list(), format_policies, "retention policies")


def _remove_policy(args: argparse.Namespace) -> int:
    _, policies = _open(args, create=False)
    return _print_removed(args, policies.remove(args.id), "retention policy")


def _apply(args: argparse.Namespace) -> int:
    from seqfast.storage.store import Store

    signals, policies = _open(args, create=False)
    rules = policies.rules(signals)
    config = config_from_args(args, os.environ)
    with Store(config.data) as store:
        report = store.apply_retention(rules)
    print(json.dumps(report.to_json(), indent=2))
    return 0


def format_policies(policies: Sequence[RetentionPolicy]) -> str:
    rows = [("ID", "RETENTION TIME", "REMOVES", "MAX TOTAL BYTES")] + [
        (
            p.id,
            p.to_json()["RetentionTime"] or "-",
            p.removed_signal_id or ("all events" if p.retention is not None else "-"),
            "-" if p.max_total_bytes is None else str(p.max_total_bytes),
        )
        for p in policies
    ]
    return table(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seqfast", description=__doc__.splitlines()[0])
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
