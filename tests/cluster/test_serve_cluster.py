"""Several real `seqfast serve` processes on one PostgreSQL database act as one service.

Each test runs its nodes as subprocesses on loopback (port 0, own data directories) in a
cluster of its own name (`--cluster-name`), with `--timing-profile test`, and removes that
cluster's rows from the database afterwards.  PostgreSQL is the server on 127.0.0.1:5432; if it
does not answer, the tests fail (never skip).

Waits are bounded (a broken cluster fails the test instead of hanging it) but nothing asserts
how long anything took.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Ping, TextMessage
from wsproto.events import Request as WsRequest

import seqfast
from seqfast.testing.serve_process import REPO, ServeProcess, seqfast_command, server_env

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
POSTGRES_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
SETTLE_TIMEOUT = 60.0  # for a cluster to agree on a leader


def run_seqfast(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Runs a `seqfast` command to completion and returns it, whatever its exit status."""
    return subprocess.run(
        seqfast_command(*args),
        cwd=REPO,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Node(ServeProcess):
    """One `seqfast serve` process of a cluster (or none, between `stop()` and `start()`)."""

    stderr_tail = 100

    def stderr(self) -> str:
        return self.stderr_text()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.headers, response.read()
        finally:
            conn.close()

    def cluster_health(self) -> tuple[int, dict[str, Any]]:
        status, _, body = self.request("GET", "/health/cluster")
        document: dict[str, Any] = json.loads(body)
        return status, document

    def node_id(self) -> str:
        return (self.data / "node-id").read_text().strip()

    def stored(self) -> list[dict[str, Any]]:
        """The events in this node's store; the node must be stopped."""
        assert not self.running
        with seqfast.open(self.data) as store:
            return list(store.events(limit=1_000_000))


def require_postgres() -> None:
    try:
        psycopg.connect(POSTGRES_DSN, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL does not answer on 127.0.0.1:5432 ({exc})", pytrace=False)


def forget_cluster(name: str) -> None:
    """Removes a test cluster's rows (the tables may not exist if no node ever started)."""
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        for table in ("nodes", "leader"):
            exists = conn.execute("SELECT to_regclass(%s)", (f"public.{table}",)).fetchone()
            if exists is not None and exists[0] is not None:
                conn.execute(f"DELETE FROM {table} WHERE cluster = %s", (name,))


NodeFactory = Callable[..., list[Node]]


@pytest.fixture
def cluster_name() -> Iterator[str]:
    require_postgres()
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    forget_cluster(name)


@pytest.fixture
def cluster(tmp_path: Path, cluster_name: str) -> Iterator[NodeFactory]:
    """`cluster(count, *flags)`: starts `count` more nodes of this test's cluster on PostgreSQL,
    all at once, and returns them once every one listens."""
    started: list[Node] = []

    def start(count: int = 1, *flags: str) -> list[Node]:
        nodes = [new_node(*flags) for _ in range(count)]
        for node in nodes:
            node.launch()
        return [node.wait_listening() for node in nodes]

    def new_node(*flags: str) -> Node:
        node = Node(
            tmp_path / f"node{len(started) + 1}",
            (
                "--cluster-db",
                POSTGRES_URL,
                "--cluster-name",
                cluster_name,
                "--timing-profile",
                "test",
                *flags,
            ),
        )
        started.append(node)
        return node

    yield start
    problems = []
    for node in started:
        if node.running:
            try:
                node.stop()
            except AssertionError as exc:
                problems.append(str(exc))
    assert not problems, "\n\n".join(problems)


def settled(nodes: list[Node], members: int) -> dict[str, Any]:
    """Waits until every node's `/health/cluster` is healthy, names the same leader, and lists
    `members` members; returns that document (as the first node gave it)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    seen: list[tuple[int, dict[str, Any]]] = []
    while time.monotonic() < deadline:
        seen = [node.cluster_health() for node in nodes]
        leaders = {json.dumps(doc["Leader"], sort_keys=True) for _, doc in seen}
        if (
            all(status == 200 and doc["Healthy"] for status, doc in seen)
            and len(leaders) == 1
            and all(len(doc["Members"]) == members for _, doc in seen)
            and all(m["Role"] in ("leader", "follower") for m in seen[0][1]["Members"])
        ):
            return seen[0][1]
        time.sleep(0.2)
    raise AssertionError(f"the cluster did not settle: {seen}")


def leader_of(nodes: list[Node], document: dict[str, Any]) -> Node:
    (leader,) = [n for n in nodes if n.node_id() == document["Leader"]["NodeId"]]
    return leader


def clef_lines(marker: str, count: int) -> bytes:
    return b"".join(
        json.dumps(
            {"@t": "2024-05-01T10:00:00Z", "@mt": "Event {N} of {Marker}", "N": i, "Marker": marker}
        ).encode()
        + b"\n"
        for i in range(count)
    )


# -- the tests -----------------------------------------------------------------------------------


def test_three_nodes_elect_exactly_one_leader_and_every_node_agrees(
    cluster: NodeFactory,
) -> None:
    nodes = cluster(3)
    document = settled(nodes, members=3)
    ids = {node.node_id() for node in nodes}
    assert len(ids) == 3
    assert document["Leader"]["NodeId"] in ids
    assert document["Leader"]["Url"] == leader_of(nodes, document).url
    assert isinstance(document["Leader"]["Epoch"], int)
    roles = {m["NodeId"]: m["Role"] for m in document["Members"]}
    assert sorted(roles.values()) == ["follower", "follower", "leader"]
    assert {m["Url"] for m in document["Members"]} == {n.url for n in nodes}
    # Exactly one node started leader duties.
    activations = [
        node for node in nodes for event in node.logs() if event.get("Transition") == "activated"
    ]
    assert activations == [leader_of(nodes, document)]
    # `/health` stays about each node alone: every one of them is in service.
    for node in nodes:
        status, _, body = node.request("GET", "/health")
        assert status == 200, body


def test_ingestion_through_a_follower_lands_on_the_leader(cluster: NodeFactory) -> None:
    nodes = cluster(2)
    document = settled(nodes, members=2)
    leader = leader_of(nodes, document)
    (follower,) = [n for n in nodes if n is not leader]
    marker = uuid.uuid4().hex
    for path in ("/api/events/raw?clef", "/ingest/clef"):
        status, headers, body = follower.request(
            "POST", path, clef_lines(marker, 50), {"Content-Type": "application/vnd.serilog.clef"}
        )
        assert status == 201, body
        assert headers["X-Seqfast-Proxied-By"] == follower.node_id()
        assert follower.node_id() in headers["Via"]
    # Reading through the follower is answered by the leader, which has the events.
    status, headers, body = follower.request("GET", "/api/events?count=1000")
    assert status == 200, body
    assert body.count(marker.encode()) >= 100
    assert headers["X-Seqfast-Proxied-By"] == follower.node_id()
    # Written to the leader's store only.
    follower.stop()
    leader.stop()
    assert sum(marker in json.dumps(e) for e in leader.stored()) == 100
    assert not any(marker in json.dumps(e) for e in follower.stored())


def test_a_large_batch_streams_through_a_follower(cluster: NodeFactory) -> None:
    nodes = cluster(2)
    leader = leader_of(nodes, settled(nodes, members=2))
    (follower,) = [n for n in nodes if n is not leader]
    marker = uuid.uuid4().hex
    batch = clef_lines(marker, 40_000)  # about 4 MB
    status, _, body = follower.request("POST", "/ingest/clef", batch)
    assert status == 201, body
    follower.stop()
    leader.stop()
    assert sum(marker in json.dumps(e) for e in leader.stored()) == 40_000


def test_the_live_tail_works_through_a_follower(cluster: NodeFactory) -> None:
    nodes = cluster(2)
    leader = leader_of(nodes, settled(nodes, members=2))
    (follower,) = [n for n in nodes if n is not leader]
    marker = uuid.uuid4().hex
    with socket.create_connection(("127.0.0.1", follower.port), timeout=30) as sock:
        ws = WSConnection(ConnectionType.CLIENT)
        sock.sendall(ws.send(WsRequest(host="x", target="/api/events/stream?clef=true")))
        pending: list[Any] = []

        def next_event() -> Any:
            while not pending:
                data = sock.recv(65536)
                assert data, "the tail closed"
                ws.receive_data(data)
                pending.extend(ws.events())
            return pending.pop(0)

        assert isinstance(next_event(), AcceptConnection)
        status, _, body = follower.request("POST", "/ingest/clef", clef_lines(marker, 3))
        assert status == 201, body
        messages: list[str] = []
        text = ""
        while len(messages) < 3:
            event = next_event()
            if isinstance(event, Ping):
                sock.sendall(ws.send(event.response()))
            elif isinstance(event, TextMessage):
                text += event.data
                if event.message_finished:
                    messages.append(text)
                    text = ""
        sock.sendall(ws.send(CloseConnection(code=1000)))
    assert all(marker in message for message in messages)


def test_errors_from_the_leader_come_back_unchanged_through_a_follower(
    cluster: NodeFactory,
) -> None:
    nodes = cluster(2)
    leader = leader_of(nodes, settled(nodes, members=2))
    (follower,) = [n for n in nodes if n is not leader]
    status, headers, body = follower.request("POST", "/ingest/clef", b"not json\n")
    assert status == 400
    assert "Error" in json.loads(body)
    assert headers["X-Seqfast-Proxied-By"] == follower.node_id()
    status, _, body = follower.request("GET", "/api/no-such-thing")
    assert status == 404
    assert "Error" in json.loads(body)


def test_when_the_leader_stops_another_node_takes_over(cluster: NodeFactory) -> None:
    nodes = cluster(3)
    first = settled(nodes, members=3)
    old = leader_of(nodes, first)
    old.stop()
    remaining = [n for n in nodes if n is not old]
    second = settled_without(remaining, old)
    assert second["Leader"]["NodeId"] != first["Leader"]["NodeId"]
    assert second["Leader"]["Epoch"] > first["Leader"]["Epoch"]
    # The stopped node released its lease and says so in its last heartbeat.
    assert any("Released the lease" in e.get("@mt", "") for e in old.logs())
    new = leader_of(remaining, second)
    (follower,) = [n for n in remaining if n is not new]
    status, _, body = follower.request("POST", "/ingest/clef", clef_lines("after", 3))
    assert status == 201, body


def settled_without(nodes: list[Node], gone: Node) -> dict[str, Any]:
    """Waits until `nodes` agree on a healthy leader among themselves."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    seen: list[tuple[int, dict[str, Any]]] = []
    while time.monotonic() < deadline:
        seen = [node.cluster_health() for node in nodes]
        leaders = {json.dumps(doc["Leader"], sort_keys=True) for _, doc in seen}
        if (
            all(status == 200 and doc["Healthy"] for status, doc in seen)
            and len(leaders) == 1
            and seen[0][1]["Leader"]["NodeId"] != gone.node_id()
        ):
            return seen[0][1]
        time.sleep(0.2)
    raise AssertionError(f"no new leader: {seen}")


def test_the_node_id_is_kept_in_the_data_directory(cluster: NodeFactory) -> None:
    (node,) = cluster()
    first = node.node_id()
    assert settled([node], members=1)["Leader"]["NodeId"] == first
    node.stop()
    node.start()
    assert node.node_id() == first
    assert settled([node], members=1)["Leader"]["NodeId"] == first


def test_a_configured_node_id_and_advertised_url_are_used(cluster: NodeFactory) -> None:
    (node,) = cluster(1, "--node-id", "alpha-1", "--advertise", "http://alpha.example:5341")
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        status, document = node.cluster_health()
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200, document
    assert document["Leader"] == {
        "NodeId": "alpha-1",
        "Url": "http://alpha.example:5341",
        "Epoch": document["Leader"]["Epoch"],
    }
    assert node.node_id() == "alpha-1"


# -- a cluster of one: the default ---------------------------------------------------------------


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[Node]:
    node = Node(tmp_path / "alone", ())
    yield node
    if node.running:
        node.stop()


def test_a_node_without_cluster_db_leads_at_once_in_its_data_directory(standalone: Node) -> None:
    standalone.start()
    # Accepted right away: the node led before it said it was listening.
    status, _, body = standalone.request("POST", "/ingest/clef", clef_lines("alone", 2))
    assert status == 201, body
    status, document = standalone.cluster_health()
    assert status == 200
    assert document["Healthy"] is True
    assert document["Leader"]["NodeId"] == standalone.node_id()
    assert [m["Role"] for m in document["Members"]] == ["leader"]
    assert (standalone.data / "cluster.sqlite").exists()


def test_a_killed_standalone_node_leads_again_at_once_when_restarted(standalone: Node) -> None:
    standalone.start()
    standalone.kill()  # its lease stays live in cluster.sqlite
    standalone.start()
    status, _, body = standalone.request("POST", "/ingest/clef", clef_lines("again", 1))
    assert status == 201, body
