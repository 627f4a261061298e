"""`seqfast node list` and `seqfast cluster health`: look at a cluster from the command line.

`seqfast node list` reads the cluster database directly (found exactly as `seqfast serve` finds
it: flags, then SEQFAST_* variables, then the config file, then `<data>/cluster.sqlite`), so it
works with every node down.  Exit status 0; 1 with a sentence when the database cannot be read;
2 for bad arguments.

`seqfast node remove NODE_ID` takes a decommissioned node out of the membership in that
database: only one that is not running (it stopped, or has been silent for a whole lease) and
does not lead.  Exit status 0 once it is gone; 1 with a sentence saying why it was kept; 2 for
bad arguments.

`seqfast cluster health` asks a running node's `/health/cluster`, which any node answers for
the whole cluster.  Exit statuses, for scripts and deployment pipelines:

* 0 — healthy: a node leads under a live lease and its heartbeat is fresh;
* 1 — the cluster answered but is not healthy (with `--wait-until-healthy`: still not healthy
  when `--timeout` ran out);
* 2 — bad arguments (a sentence on stderr);
* 3 — the node could not be reached, or did not answer as a seqfast node does.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from seqfast.config import Config, ConfigError, config_from_args
from seqfast.errors import SeqfastError

if TYPE_CHECKING:
    from seqfast.cluster.lease import Lease

EXIT_HEALTHY: Final = 0
EXIT_UNHEALTHY: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNREACHABLE: Final = 3
DEFAULT_WAIT_SECONDS: Final = 60.0
POLL_SECONDS: Final = 0.5
REQUEST_TIMEOUT_SECONDS: Final = 5.0

_Command = Callable[[argparse.Namespace], int]


def add_parsers(subparsers: Any) -> None:
    """Registers `node` (with `list` and `remove`) and `cluster` (with `health`) on `subparsers`."""
    node: argparse.ArgumentParser = subparsers.add_parser(
        "node", help="the nodes of a cluster", description="The nodes of a cluster."
    )
    node_commands = node.add_subparsers(dest="node_command", required=True, metavar="COMMAND")
    listing = node_commands.add_parser(
        "list",
        help="list the nodes, their roles and heartbeats (reads the cluster database)",
        description="List the nodes of the cluster, from the cluster database.",
    )
    _database_arguments(listing)
    listing.add_argument("--json", action="store_true", help="print the /health/cluster document")
    listing.set_defaults(run=_node_list)
    removal = node_commands.add_parser(
        "remove",
        help="take a decommissioned node out of the membership (it must not be running)",
        description="Remove a node that is not running from the cluster's membership (it "
        "stopped, or has sent no heartbeat for a whole lease, and it does not lead).",
    )
    removal.add_argument("node_id", metavar="NODE_ID", help="the node's id (see `node list`)")
    _database_arguments(removal)
    removal.set_defaults(run=_node_remove)

    cluster: argparse.ArgumentParser = subparsers.add_parser(
        "cluster", help="the health of a cluster", description="The health of a cluster."
    )
    cluster_commands = cluster.add_subparsers(
        dest="cluster_command", required=True, metavar="COMMAND"
    )
    health = cluster_commands.add_parser(
        "health",
        help="is there a leader? (asks a node's /health/cluster; exit 0 when healthy)",
        description="Ask a node whether the cluster is healthy.  Exit status 0: healthy; 1: not"
        " healthy; 2: bad arguments; 3: the node cannot be reached.",
    )
    health.add_argument(
        "--server",
        metavar="URL",
        help="any node of the cluster (default: from the config: advertise, else listen)",
    )
    health.add_argument(
        "--wait-until-healthy",
        action="store_true",
        help="poll until the cluster is healthy or --timeout runs out",
    )
    health.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_WAIT_SECONDS,
        help=f"how long to wait with --wait-until-healthy (default {DEFAULT_WAIT_SECONDS:g})",
    )
    health.add_argument("--config", metavar="FILE", type=Path, help="the server's config file")
    health.add_argument("--json", action="store_true", help="print the /health/cluster document")
    health.set_defaults(run=_cluster_health)


def _database_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the cluster database is, as `seqfast serve` takes it."""
    parser.add_argument("--data", metavar="DIR", help="data directory (default ./seqfast-data)")
    parser.add_argument(
        "--cluster-db",
        metavar="URL",
        help="SQLAlchemy URL of the cluster database (default <data>/cluster.sqlite)",
    )
    parser.add_argument("--cluster-name", metavar="NAME", help="the cluster (default: default)")
    parser.add_argument(
        "--timing-profile", metavar="NAME", help="lease timing: default or test (default: default)"
    )
    parser.add_argument("--config", metavar="FILE", type=Path, help="the server's config file")


# -- seqfast node list / remove --------------------------------------------------------------


def _on_the_database(run: Callable[[argparse.Namespace, Config], int]) -> _Command:
    """A command on the cluster database, found as `seqfast serve` finds it: bad settings exit
    2 with a sentence, a database that cannot be used exits 1 with one."""

    def command(args: argparse.Namespace) -> int:
        try:
            config = config_from_args(args, os.environ)
        except ConfigError as exc:
            print(f"seqfast: {exc}", file=sys.stderr)
            return EXIT_USAGE
        try:
            return run(args, config)
        except SeqfastError as exc:
            print(f"seqfast: {exc}", file=sys.stderr)
            return 1

    return command


@_on_the_database
def _node_list(args: argparse.Namespace, config: Config) -> int:
    document = read_cluster(config)
    if args.json:
        print(json.dumps(document, indent=2))
    elif document["Members"]:
        print(format_members(document), end="")
    else:
        print(f"seqfast: no node has joined the cluster {config.cluster_name!r}", file=sys.stderr)
    return 0


@_on_the_database
def _node_remove(args: argparse.Namespace, config: Config) -> int:
    try:
        with _open_lease(config) as lease:
            # A whole lease without a heartbeat: a running node sends one every renewal period.
            refused = lease.forget(args.node_id, quiet_for=config.timing.lease)
    except ValueError as exc:  # not a node id
        print(f"seqfast: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if refused is not None:
        print(f"seqfast: {refused}", file=sys.stderr)
        return 1
    print(f"removed node {args.node_id} from the cluster {config.cluster_name!r}")
    return 0


def read_cluster(config: Config) -> dict[str, Any]:
    """The cluster's state as `/health/cluster` gives it, read from the database directly."""
    from seqfast.api.cluster_routes import cluster_document

    with _open_lease(config) as lease:
        leader, members = lease.current(), lease.members()
    return cluster_document(leader, members, dt.datetime.now(dt.UTC), config.timing.lease)


def _open_lease(config: Config) -> Lease:
    """The lease of the configured cluster; a missing default SQLite database is an error here,
    not a new empty one."""
    from seqfast.cluster.lease import Lease
    from seqfast.meta.db import MetadataError

    if not config.cluster_db:
        path = (config.data / "cluster.sqlite").absolute()
        if not path.exists():
            raise MetadataError(
                f"there is no cluster database at {path}: give --cluster-db, or the --data "
                "directory of a node that has run"
            )
    return Lease(
        config.cluster_url, cluster=config.cluster_name, call_timeout=config.timing.call_timeout
    )


def format_members(document: dict[str, Any]) -> str:
    """The members as an aligned text table, the leader marked with its epoch."""
    leader = document["Leader"]
    header = ("NODE ID", "ROLE", "URL", "LAST HEARTBEAT", "VERSION")
    rows = [header]
    for member in document["Members"]:
        role = member["Role"]
        if leader is not None and member["NodeId"] == leader["NodeId"]:
            role = f"{role} (epoch {leader['Epoch']})"
        rows.append(
            (
                member["NodeId"],
                role,
                member["Url"],
                member["LastHeartbeat"],
                member["Version"] or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        + "\n"
        for row in rows
    )


# -- seqfast cluster health ----------------------------------------------------------------------


class _Unreachable(Exception):
    """The node did not answer, or not as a seqfast node does."""


def _cluster_health(args: argparse.Namespace) -> int:
    try:
        server = _server_url(args)
    except (SeqfastError, ValueError) as exc:
        print(f"seqfast: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not args.timeout > 0 or args.timeout == float("inf"):
        print(
            f"seqfast: --timeout must be a positive number of seconds, not {args.timeout:g}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            status, document = fetch_cluster_health(server, REQUEST_TIMEOUT_SECONDS)
            failure = None
        except _Unreachable as exc:
            status, document, failure = 0, None, str(exc)
        healthy = document is not None and status == 200 and document.get("Healthy") is True
        if healthy or not args.wait_until_healthy or time.monotonic() >= deadline:
            break
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
    waited = f" after waiting {args.timeout:g} s" if args.wait_until_healthy else ""
    if document is None:
        print(f"seqfast: {server} cannot be reached{waited}: {failure}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print(describe_health(document), end="")
    if healthy:
        return EXIT_HEALTHY
    print(f"seqfast: the cluster is not healthy{waited}", file=sys.stderr)
    return EXIT_UNHEALTHY


def _server_url(args: argparse.Namespace) -> str:
    if args.server:
        url = str(args.server).rstrip("/")
    else:
        config = config_from_args(args, os.environ)
        if config.advertise:
            url = config.advertise
        else:
            host = config.listen_host
            if host in ("0.0.0.0", "::", ""):
                host = "127.0.0.1"
            url = f"http://{host if ':' not in host else f'[{host}]'}:{config.listen_port}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--server must be a URL such as http://127.0.0.1:5341, not {url!r}")
    return url


def fetch_cluster_health(server: str, timeout: float) -> tuple[int, dict[str, Any]]:
    """GET `<server>/health/cluster`: the status and the document (200 and 503 both carry
    one)."""
    request = urllib.request.Request(
        f"{server}/health/cluster", headers={"Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, body = int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Unreachable(str(reason)) from None
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict) or "Healthy" not in document:
        raise _Unreachable(f"it answered {status} without a cluster health document")
    return status, document


def describe_health(document: dict[str, Any]) -> str:
    """A few lines for a person: healthy or not, the leader, the members."""
    leader = document.get("Leader")
    lines = ["healthy" if document.get("Healthy") else "not healthy"]
    if leader is None:
        lines.append("leader: none")
    else:
        lines.append(f"leader: {leader['NodeId']} at {leader['Url']} (epoch {leader['Epoch']})")
    if document.get("Error"):
        lines.append(f"error: {document['Error']}")
    members = document.get("Members") or []
    if members:
        lines.append(format_members(document).rstrip("\n"))
    return "\n".join(lines) + "\n"


__all__ = [
    "EXIT_HEALTHY",
    "EXIT_UNHEALTHY",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "add_parsers",
    "describe_health",
    "fetch_cluster_health",
    "format_members",
    "read_cluster",
]
