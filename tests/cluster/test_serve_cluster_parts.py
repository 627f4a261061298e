"""The parts of running a cluster that need no cluster: the node's identity, the
`/health/cluster` document, the cluster settings, and ingestion acknowledging only while the
node may (real HTTP on loopback, a real store)."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h11
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

import seqfast
from seqfast.api.cluster_routes import cluster_document
from seqfast.api.http import HttpServer, Limits
from seqfast.api.ingest import Ingestion, IngestLimits
from seqfast.cluster.lease import LeaderRow, NodeRow
from seqfast.cluster.node_identity import (
    NODE_ID_FILE,
    NodeIdentityError,
    advertise_url,
    generated_node_id,
    node_id_for,
)
from seqfast.cluster.timing import DEFAULT, TEST
from seqfast.config import ConfigError, load_config
from seqfast.storage.store import Store, StoreOptions

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)

# -- node identity -------------------------------------------------------------------------------


def test_a_node_id_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = node_id_for(tmp_path)
    assert (tmp_path / NODE_ID_FILE).read_text().strip() == first
    assert node_id_for(tmp_path) == first
    assert node_id_for(tmp_path / "other") != first


def test_a_configured_node_id_wins_and_is_remembered(tmp_path: Path) -> None:
    node_id_for(tmp_path)
    assert node_id_for(tmp_path, "alpha") == "alpha"
    assert node_id_for(tmp_path) == "alpha"


def test_a_damaged_node_id_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / NODE_ID_FILE).write_text("not an id!\n")
    with pytest.raises(NodeIdentityError, match="does not hold a node id"):
        node_id_for(tmp_path)


@given(st.integers(min_value=0, max_value=20))
def test_generated_ids_are_valid_settings(_: int) -> None:
    node_id = generated_node_id()
    assert load_config({"node_id": node_id}, {}, None).node_id == node_id


def test_the_advertised_url_defaults_to_the_bound_address() -> None:
    assert advertise_url("", "127.0.0.1", 5341) == "http://127.0.0.1:5341"
    assert advertise_url("", "::1", 80) == "http://[::1]:80"
    assert advertise_url("", "0.0.0.0", 5341) == f"http://{socket.gethostname()}:5341"
    assert advertise_url("http://n1.internal:5341/", "0.0.0.0", 1) == "http://n1.internal:5341"


# -- /health/cluster -----------------------------------------------------------------------------


def member(node_id: str, age: float = 1.0, state: str = "follower") -> NodeRow:
    return NodeRow(
        node_id=node_id,
        api_url=f"http://{node_id}:5341",
        internal_url=f"http://{node_id}:5341",
        version="1.0",
        state=state,
        heartbeat_age=age,
    )


def leader_row(node_id: str, expires_in: float = 10.0, epoch: int = 7) -> LeaderRow:
    return LeaderRow(
        node_id=node_id,
        epoch=epoch,
        expires_in=expires_in,
        api_url=f"http://{node_id}:5341",
        internal_url=f"http://{node_id}:5341",
    )


def test_a_live_leader_with_a_fresh_heartbeat_is_healthy() -> None:
    document = cluster_document(
        leader_row("a"), [member("a", state="leader"), member("b")], NOW, stale_after=15
    )
    assert document == {
        "Leader": {"NodeId": "a", "Url": "http://a:5341", "Epoch": 7},
        "Members": [
            {
                "NodeId": "a",
                "Url": "http://a:5341",
                "Role": "leader",
                "LastHeartbeat": "2026-01-02T03:04:04.000Z",
                "Version": "1.0",
            },
            {
                "NodeId": "b",
                "Url": "http://b:5341",
                "Role": "follower",
                "LastHeartbeat": "2026-01-02T03:04:04.000Z",
                "Version": "1.0",
            },
        ],
        "Healthy": True,
    }


def test_an_expired_lease_means_no_leader() -> None:
    document = cluster_document(
        leader_row("a", expires_in=-0.1), [member("a", state="leader")], NOW, 15
    )
    assert document["Leader"] is None
    assert document["Healthy"] is False
    assert document["Members"][0]["Role"] == "follower"


def test_a_leader_whose_heartbeat_stopped_is_not_healthy() -> None:
    document = cluster_document(leader_row("a"), [member("a", age=20, state="leader")], NOW, 15)
    assert document["Leader"]["NodeId"] == "a"
    assert document["Healthy"] is False
    assert document["Members"][0]["Role"] == "unreachable"


def test_stopped_nodes_stay_stopped_and_silent_ones_become_unreachable() -> None:
    document = cluster_document(
        None,
        [member("a", age=100, state="stopped"), member("b", age=100), member("c", age=1)],
        NOW,
        15,
    )
    assert [m["Role"] for m in document["Members"]] == ["stopped", "unreachable", "follower"]
    assert document["Healthy"] is False


def test_no_members_and_no_leader_is_not_healthy() -> None:
    assert cluster_document(None, [], NOW, 15) == {"Leader": None, "Members": [], "Healthy": False}


# -- settings ------------------------------------------------------------------------------------


def test_cluster_settings_default_to_a_cluster_of_one_in_the_data_directory(
    tmp_path: Path,
) -> None:
    config = load_config({"data": str(tmp_path)}, {}, None)
    assert config.cluster_url == f"sqlite:///{(tmp_path / 'cluster.sqlite').absolute()}"
    assert (config.cluster_name, config.node_id, config.advertise) == ("default", "", "")
    assert config.timing == DEFAULT


def test_cluster_settings_from_flags_and_environment() -> None:
    config = load_config(
        {"cluster_db": "postgresql+psycopg://u@db/x", "timing_profile": "test"},
        {"SEQFAST_CLUSTER_NAME": "prod-1", "SEQFAST_ADVERTISE": "http://n1:5341/"},
        None,
    )
    assert config.cluster_url == "postgresql+psycopg://u@db/x"
    assert config.cluster_name == "prod-1"
    assert config.advertise == "http://n1:5341"
    assert config.timing == TEST


@pytest.mark.parametrize(
    ("name", "value", "complaint"),
    [
        ("cluster_name", "a b", "cluster_name must be 1 to 128 letters"),
        ("cluster_name", "x" * 129, "cluster_name must be 1 to 128 letters"),
        ("node_id", "-lead", "node_id must be 1 to 128 letters"),
        ("advertise", "n1:5341", "advertise must be a URL"),
        ("advertise", "http://n1:5341/path", "advertise must be a URL"),
        ("advertise", "http://n1:99999", "advertise must be a URL"),
        ("timing_profile", "fast", "timing_profile must be one of default, test"),
        ("cluster_db", "mysql://x", "cluster_db must be a PostgreSQL or SQLite URL"),
    ],
)
def test_bad_cluster_settings_are_refused_by_name(name: str, value: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        load_config({name: value}, {}, None)


# -- acknowledging only while leading ------------------------------------------------------------


class _OpenKeys:
    """No API keys: every request is anonymous, as on a server without them."""

    def authenticate(self, token: str | None) -> None:
        return None

    def record(self, key_id: str | None, events: int, bytes: int, rejected: bool) -> None:
        pass


def _post_clef(data_dir: Path, body: bytes, leads: Iterable[bool]) -> h11.Response:
    """POSTs `body` to /ingest/clef of an ingestion server on loopback whose runtime answers
    "may I acknowledge?" with the successive values of `leads`, and returns the response; the
    store is closed afterwards."""
    answers = iter(leads)
    store = Store(data_dir, StoreOptions())
    try:
        ingestion = Ingestion(
            store,
            _OpenKeys(),
            IngestLimits(
                payload_limit_bytes=1 << 20,
                queue_limit_bytes=1 << 22,
                free_disk_reserve_bytes=0,
                retry_after_seconds=2,
                require_api_key=False,
            ),
            data_dir,
            1,
            lambda *a, **k: None,
            may_acknowledge=lambda: next(answers),
        )
        server = HttpServer(ingestion.handle, _no_app, Limits(), lambda *a, **k: None)
        found: list[h11.Response] = []

        async def main() -> None:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            port = listeners[0].socket.getsockname()[1]
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.serve_listeners, server.serve_connection, listeners)
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                client = h11.Connection(h11.CLIENT)
                head = h11.Request(
                    method="POST",
                    target="/ingest/clef",
                    headers=[("Host", "x"), ("Content-Length", str(len(body)))],
                )
                await stream.send_all(
                    client.send(head)
                    + client.send(h11.Data(data=body))
                    + client.send(h11.EndOfMessage())
                )
                while not found:
                    event = client.next_event()
                    if event is h11.NEED_DATA:
                        client.receive_data(await stream.receive_some(65536))
                    elif isinstance(event, h11.Response):
                        found.append(event)
                await stream.aclose()
                nursery.cancel_scope.cancel()

        trio.run(main)
        return found[0]
    finally:
        store.close()


async def _no_app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("only ingestion is asked here")


def test_a_node_that_does_not_lead_stores_nothing_and_answers_503(tmp_path: Path) -> None:
    line = b'{"@t":"2024-05-01T10:00:00Z","@mt":"refused before the log"}\n'
    response = _post_clef(tmp_path, line, leads=[False])
    assert response.status_code == 503
    assert dict(response.headers)[b"retry-after"] == b"1"
    with seqfast.open(tmp_path) as store:
        assert list(store.events()) == []


def test_a_leadership_that_lapses_during_the_commit_answers_503_though_the_batch_is_durable(
    tmp_path: Path,
) -> None:
    line = b'{"@t":"2024-05-01T10:00:00Z","@mt":"kept but not acknowledged"}\n'
    # Still the leader when the batch enters the log, no longer once it is durable.
    response = _post_clef(tmp_path, line, leads=[True, False])
    assert response.status_code == 503
    assert dict(response.headers)[b"retry-after"] == b"1"
    with seqfast.open(tmp_path) as store:
        assert [e["@mt"] for e in store.events()] == ["kept but not acknowledged"]


def test_a_leader_acknowledges_with_201(tmp_path: Path) -> None:
    line = b'{"@t":"2024-05-01T10:00:00Z","@mt":"acknowledged"}\n'
    assert _post_clef(tmp_path, line, leads=[True, True]).status_code == 201
