"""`seqfast node list`, `seqfast node remove` and `seqfast cluster health` against real nodes on
PostgreSQL, and their exit statuses (0 healthy, 1 not healthy, 2 bad arguments, 3 unreachable)
against stand-in HTTP servers that answer what a real cluster answers only at awkward moments."""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_serve_cluster import (
    POSTGRES_URL,
    REPO,
    Node,
    NodeFactory,
    cluster,
    cluster_name,
    run_seqfast,
    seqfast_command,
    server_env,
    settled,
    standalone,
)

__all__ = ["cluster", "cluster_name", "standalone"]  # fixtures used here


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cluster_health_is_healthy_from_every_node(cluster: NodeFactory) -> None:
    nodes = cluster(2)
    document = settled(nodes, members=2)
    leader_id = document["Leader"]["NodeId"]
    for node in nodes:
        done = run_seqfast("cluster", "health", "--server", node.url)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[0] == "healthy"
        assert f"leader: {leader_id} at " in done.stdout
        as_json = run_seqfast("cluster", "health", "--server", node.url, "--json")
        assert as_json.returncode == 0, as_json.stderr
        assert json.loads(as_json.stdout)["Leader"]["NodeId"] == leader_id


def test_wait_until_healthy_waits_for_the_cluster_to_come_up(
    tmp_path: Path, cluster_name: str
) -> None:
    port = free_port()
    waiting = subprocess.Popen(
        seqfast_command(
            "cluster",
            "health",
            "--server",
            f"http://127.0.0.1:{port}",
            "--wait-until-healthy",
            "--timeout",
            "120",
        ),
        cwd=REPO,
        env=server_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    node = Node(
        tmp_path / "late",
        (
            "--cluster-db",
            POSTGRES_URL,
            "--cluster-name",
            cluster_name,
            "--timing-profile",
            "test",
            "--listen",
            f"127.0.0.1:{port}",
        ),
    )
    try:
        node.start()
        out, err = waiting.communicate(timeout=180)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
        if node.running:
            node.stop()
    assert waiting.returncode == 0, err
    assert out.splitlines()[0] == "healthy"
    assert node.node_id() in out


def test_node_list_shows_every_member_and_the_leader_even_with_every_node_down(
    cluster: NodeFactory, cluster_name: str
) -> None:
    nodes = cluster(2)
    document = settled(nodes, members=2)
    leader_id = document["Leader"]["NodeId"]
    args = ("node", "list", "--cluster-db", POSTGRES_URL, "--cluster-name", cluster_name)
    done = run_seqfast(*args)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["NODE", "ID", "ROLE", "URL", "LAST", "HEARTBEAT", "VERSION"]
    by_id = {line.split()[0]: line for line in lines[1:]}
    assert set(by_id) == {node.node_id() for node in nodes}
    assert f"leader (epoch {document['Leader']['Epoch']})" in by_id[leader_id]
    for node in nodes:
        assert node.url in by_id[node.node_id()]
    listed = json.loads(run_seqfast(*args, "--json").stdout)
    assert listed["Leader"] == document["Leader"]
    for node in nodes:
        node.stop()
    after = json.loads(run_seqfast(*args, "--json").stdout)
    assert after["Leader"] is None
    assert {m["NodeId"]: m["Role"] for m in after["Members"]} == {
        node.node_id(): "stopped" for node in nodes
    }


def test_node_remove_takes_out_a_stopped_node_and_refuses_a_running_one(
    cluster: NodeFactory, cluster_name: str
) -> None:
    nodes = cluster(2)
    document = settled(nodes, members=2)
    leader_id = document["Leader"]["NodeId"]
    (follower,) = [node for node in nodes if node.node_id() != leader_id]
    where = ("--cluster-db", POSTGRES_URL, "--cluster-name", cluster_name)

    for running in (leader_id, follower.node_id()):
        kept = run_seqfast("node", "remove", running, *where)
        assert kept.returncode == 1, kept.stdout
        assert kept.stderr.startswith("seqfast: ") and "stop it first" in kept.stderr
        assert "Traceback" not in kept.stderr
    unknown = run_seqfast("node", "remove", "never-joined", *where)
    assert unknown.returncode == 1 and "no node 'never-joined'" in unknown.stderr

    follower.stop()  # decommissioned: its last heartbeat says "stopped"
    done = run_seqfast("node", "remove", follower.node_id(), *where)
    assert done.returncode == 0, done.stderr
    assert follower.node_id() in done.stdout
    listed = json.loads(run_seqfast("node", "list", *where, "--json").stdout)
    assert [m["NodeId"] for m in listed["Members"]] == [leader_id]
    assert listed["Leader"]["NodeId"] == leader_id


def test_node_list_reads_a_standalone_nodes_data_directory(standalone: Node) -> None:
    standalone.start()
    standalone.stop()
    done = run_seqfast("node", "list", "--data", str(standalone.data), "--json")
    assert done.returncode == 0, done.stderr
    (member,) = json.loads(done.stdout)["Members"]
    assert member["NodeId"] == standalone.node_id()
    assert member["Role"] == "stopped"


def test_node_list_explains_a_missing_or_unreachable_database(tmp_path: Path) -> None:
    missing = run_seqfast("node", "list", "--data", str(tmp_path / "never-ran"))
    assert missing.returncode == 1
    assert "no cluster database" in missing.stderr
    assert "Traceback" not in missing.stderr
    unreachable = run_seqfast(
        "node", "list", "--cluster-db", "postgresql+psycopg://postgres@127.0.0.1:1/test"
    )
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("seqfast: ")
    assert "Traceback" not in unreachable.stderr
    bad = run_seqfast("node", "list", "--cluster-db", "not a url")
    assert bad.returncode == 2
    assert "cluster_db" in bad.stderr


# -- exit statuses against stand-in servers ------------------------------------------------------


class _Canned(http.server.BaseHTTPRequestHandler):
    status = 503
    body = b""

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[tuple[type[_Canned], str]]:
    handler = type("Handler", (_Canned,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_an_unhealthy_cluster_exits_1_also_after_waiting(
    canned: tuple[type[_Canned], str],
) -> None:
    handler, url = canned
    handler.status = 503
    handler.body = json.dumps({"Leader": None, "Members": [], "Healthy": False}).encode()
    done = run_seqfast("cluster", "health", "--server", url)
    assert done.returncode == 1
    assert done.stdout.splitlines()[:2] == ["not healthy", "leader: none"]
    assert "not healthy" in done.stderr
    waited = run_seqfast(
        "cluster", "health", "--server", url, "--wait-until-healthy", "--timeout", "1"
    )
    assert waited.returncode == 1
    assert "after waiting 1 s" in waited.stderr


def test_an_answer_that_is_not_a_cluster_document_exits_3(
    canned: tuple[type[_Canned], str],
) -> None:
    handler, url = canned
    handler.status = 200
    handler.body = b"<html>a load balancer's page</html>"
    done = run_seqfast("cluster", "health", "--server", url)
    assert done.returncode == 3
    assert "without a cluster health document" in done.stderr


def test_an_unreachable_node_exits_3() -> None:
    done = run_seqfast("cluster", "health", "--server", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 3
    assert "cannot be reached" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("--server", "not-a-url"),
        ("--server", "ftp://127.0.0.1:21"),
        ("--server", "http://127.0.0.1:1", "--wait-until-healthy", "--timeout", "0"),
        ("--server", "http://127.0.0.1:1", "--timeout", "soon"),
    ],
)
def test_bad_arguments_exit_2_with_a_sentence(args: tuple[str, ...]) -> None:
    done = run_seqfast("cluster", "health", *args)
    assert done.returncode == 2
    assert done.stderr.strip()
    assert "Traceback" not in done.stderr
