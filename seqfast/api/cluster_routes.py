"""`GET /health/cluster`: who leads the cluster and which nodes are in it, as the database says.

Every node answers from the same source, the cluster database (the leader row and the
membership heartbeats), so every node gives the same leader: ask any of them.  200 when the
cluster is healthy — a live lease whose holder's heartbeat is fresh — else 503, with the same
body:

    {"Leader": {"NodeId", "Url", "Epoch"} | null,
     "Members": [{"NodeId", "Url", "Role", "LastHeartbeat", "Version"}],
     "Healthy": bool}

`/health` stays about this node alone (a follower is healthy while it serves).  The database
is read at most once per `refresh_seconds`, however many callers ask, so that polling load
balancers cannot add load to the database the lease depends on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from seqfast.cluster.lease import LeaderRow, NodeRow
from seqfast.errors import SeqfastError

STALE_ROLE = "unreachable"


class ClusterSource(Protocol):
    """Where the cluster's state is read (a `Lease`)."""

    def current(self) -> LeaderRow | None: ...
    def members(self) -> list[NodeRow]: ...


def cluster_document(
    leader: LeaderRow | None, members: list[NodeRow], now: dt.datetime, stale_after: float
) -> dict[str, Any]:
    """The `/health/cluster` body (pure).  The lease holder, while its lease is live and its
    heartbeat fresh, is listed as "leader"; a node that shut down as "stopped" (its last
    heartbeat said so); one whose last heartbeat is older than `stale_after` seconds without
    saying so as "unreachable"; the others with the role of their last heartbeat."""
    live = leader if leader is not None and not leader.expired else None
    listed = []
    leader_fresh = False
    for member in members:
        stale = member.heartbeat_age > stale_after
        if live is not None and member.node_id == live.node_id and not stale:
            role = "leader"
            leader_fresh = True
        elif member.state == "stopped":
            role = "stopped"
        elif stale:
            role = STALE_ROLE
        elif member.state == "leader":
            role = "follower"  # its heartbeat is older than the lease row that names another
        else:
            role = member.state
        listed.append(
            {
                "NodeId": member.node_id,
                "Url": member.api_url,
                "Role": role,
                "LastHeartbeat": _iso(now - dt.timedelta(seconds=max(0.0, member.heartbeat_age))),
                "Version": member.version,
            }
        )
    document: dict[str, Any] = {
        "Leader": None
        if live is None
        else {"NodeId": live.node_id, "Url": live.api_url, "Epoch": live.epoch},
        "Members": listed,
        "Healthy": live is not None and leader_fresh,
    }
    return document


def _iso(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Cached:
    at: float
    status: int
    document: dict[str, Any]


class ClusterHealth:
    """Reads the cluster's state from `source` (in a worker thread) and caches it briefly."""

    def __init__(
        self,
        source: ClusterSource,
        stale_after: float,
        log: Callable[..., None],
        refresh_seconds: float = 0.5,
    ) -> None:
        self.source = source
        self.stale_after = stale_after
        self.log = log
        self.refresh_seconds = refresh_seconds
        self._cached: _Cached | None = None
        self._reading = trio.Lock()

    async def read(self) -> tuple[int, dict[str, Any]]:
        """The status code and body; one database read serves every caller waiting for it."""
        async with self._reading:
            cached = self._cached
            if cached is None or trio.current_time() - cached.at >= self.refresh_seconds:
                cached = await self._refresh()
                self._cached = cached
        return cached.status, cached.document

    async def _refresh(self) -> _Cached:
        started = trio.current_time()
        try:
            leader, members = await trio.to_thread.run_sync(self._query)
        except SeqfastError as exc:
            self.log("Warning", "Cannot read the cluster state: {Error}", Error=str(exc))
            document: dict[str, Any] = {
                "Leader": None,
                "Members": [],
                "Healthy": False,
                "Error": f"the cluster database cannot be read: {exc}",
            }
            return _Cached(started, 503, document)
        document = cluster_document(leader, members, dt.datetime.now(dt.UTC), self.stale_after)
        return _Cached(started, 200 if document["Healthy"] else 503, document)

    def _query(self) -> tuple[LeaderRow | None, list[NodeRow]]:
        return self.source.current(), self.source.members()


def cluster_routes(health: ClusterHealth) -> list[Route]:
    async def cluster(request: Request) -> Response:
        status, document = await health.read()
        return JSONResponse(document, status_code=status)

    return [Route("/health/cluster", cluster, methods=["GET", "HEAD"])]


__all__ = ["ClusterHealth", "ClusterSource", "cluster_document", "cluster_routes"]
