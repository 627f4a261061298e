"""Hostile and broken requests against a real server.

Every case checks the exact status and Seq's `{"Error": "…"}` body, that the server stays
healthy (`GET /health` answers 200 and a good batch is still accepted afterwards), and, reading
the data directory once the server has stopped, that nothing of the hostile request was stored:
only the good batches are there.
"""

from __future__ import annotations

import gzip
import http.client
import select
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import zstandard

from .conftest import (
    ParsedResponse,
    Server,
    ServerFactory,
    clef,
    parse_responses,
    raw_exchange,
    read_until_closed,
    run_seqfast,
)

MiB = 1 << 20
KiB = 1 << 10
CLEF_TYPE = "application/vnd.serilog.clef"


# -- helpers -------------------------------------------------------------------------------------


def good_batch(tag: str, n: int = 3) -> bytes:
    return clef(
        *({"@t": "2024-05-01T10:00:00Z", "@mt": "good {Tag}", "Tag": tag, "I": i} for i in range(n))
    )


def assert_error(response: requests.Response | ParsedResponse, status: int) -> str:
    """The response has `status` and Seq's error body; returns the message."""
    code = response.status_code if isinstance(response, requests.Response) else response.status
    body = response.content if isinstance(response, requests.Response) else response.body
    assert code == status, f"expected {status}, got {code}: {body[:300]!r}"
    document = orjson.loads(body)
    assert isinstance(document, dict) and set(document) == {"Error"}, document
    assert isinstance(document["Error"], str) and document["Error"], document
    return str(document["Error"])


def assert_healthy(server: Server, tag: str) -> None:
    """`/health` answers 200 and a good batch (tagged `tag`) is accepted."""
    health = requests.get(server.url + "/health", timeout=10)
    assert health.status_code == 200, health.text
    accepted = post(server, good_batch(tag))
    assert accepted.status_code == 201, accepted.text


def assert_only_good_stored(server: Server, tags: list[str], n: int = 3) -> None:
    """Stops the server; the stored events are exactly the good batches tagged `tags`."""
    server.stop()
    stored = server.events()
    found = sorted((e.get("Tag"), e.get("I")) for e in stored)
    assert found == sorted((tag, i) for tag in tags for i in range(n)), stored[:5]


def post(
    server: Server,
    body: bytes,
    headers: dict[str, str] | None = None,
    path: str = "/api/events/raw",
) -> requests.Response:
    return requests.post(
        server.url + path,
        data=body,
        headers={"Content-Type": CLEF_TYPE, **(headers or {})},
        timeout=30,
    )


def head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def one_response(data: bytes) -> ParsedResponse:
    responses = parse_responses(data)
    assert len(responses) == 1, data[:500]
    return responses[0]


def padded_clef(size: int) -> bytes:
    """Valid CLEF of exactly `size` bytes (events of about 64 KiB)."""
    lines = []
    total = 0
    while total < size:
        line = orjson.dumps({"@t": "2024-05-01T10:00:00Z", "@mt": "pad", "P": ""}) + b"\n"
        room = size - total - len(line)
        pad = min(room, 64 * KiB)
        if 0 < room - pad < len(line) + 1:  # leave no remainder too small for a line
            pad = room
        line = line.replace(b'"P":""', b'"P":"' + b"x" * pad + b'"', 1)
        lines.append(line)
        total += len(line)
    body = b"".join(lines)
    assert len(body) == size
    return body


# -- size limits ---------------------------------------------------------------------------------


def test_payload_limit_with_content_length(serve: ServerFactory) -> None:
    server = serve("--payload-limit-bytes", "1MiB")
    exact = post(server, padded_clef(MiB))
    assert exact.status_code == 201, exact.text  # the limit itself is allowed
    too_large = post(server, padded_clef(MiB + 1))
    message = assert_error(too_large, 413)
    assert "1048576" in message
    # Told by Content-Length alone: answered at once, before any of the body is sent.
    started = time.monotonic()
    early = one_response(
        raw_exchange(server, head("/ingest/clef", {"Content-Length": str(MiB + 1)}))
    )
    assert_error(early, 413)
    assert time.monotonic() - started < 3
    assert_healthy(server, "after")
    server.stop()
    stored = server.events()
    assert {e.get("Tag") for e in stored} == {None, "after"}
    assert sum(1 for e in stored if e.get("Tag") is None) == len(padded_clef(MiB).splitlines())


def chunked(body: bytes, piece: int = 64 * KiB, end: bool = True) -> bytes:
    parts = [
        b"%x\r\n%s\r\n" % (len(body[i : i + piece]), body[i : i + piece])
        for i in range(0, len(body), piece)
    ]
    return b"".join(parts) + (b"0\r\n\r\n" if end else b"")


def test_payload_limit_chunked(serve: ServerFactory) -> None:
    server = serve("--payload-limit-bytes", "1MiB")
    headers = {"Content-Type": CLEF_TYPE, "Transfer-Encoding": "chunked"}
    exact = one_response(
        raw_exchange(
            server,
            head("/api/events/raw", {**headers, "Connection": "close"}) + chunked(padded_clef(MiB)),
        )
    )
    assert exact.status == 201, exact
    # One byte over: the server counts as it reads, and stops at limit + 1 (the client has not
    # even finished the body).
    over = raw_exchange(
        server,
        head("/api/events/raw", headers) + chunked(padded_clef(MiB + 1), end=False),
    )
    assert_error(one_response(over), 413)
    assert_healthy(server, "after")
    server.stop()
    assert sum(1 for e in server.events() if e.get("Tag") is None) == len(
        padded_clef(MiB).splitlines()
    )


def test_oversized_event_in_valid_batch(server: Server) -> None:
    batch = clef(
        {"@t": "2024-05-01T10:00:00Z", "@mt": "small"},
        {"@t": "2024-05-01T10:00:01Z", "@mt": "huge", "Blob": "x" * (256 * KiB)},
        {"@t": "2024-05-01T10:00:02Z", "@mt": "small"},
    )
    message = assert_error(post(server, batch), 400)
    assert "line 2" in message, message
    assert_healthy(server, "after")
    assert_only_good_stored(server, ["after"])


def nested(depth: int) -> Any:
    """A value such that an event holding it as a property nests `depth` levels (the event
    object itself is level 1)."""
    value: Any = "bottom"
    for _ in range(depth - 1):
        value = [value]
    return value


def test_nesting_depth(server: Server) -> None:
    deepest = {"@t": "2024-05-01T10:00:00Z", "@mt": "deep", "D": nested(64), "Tag": "deep64"}
    too_deep = {"@t": "2024-05-01T10:00:00Z", "@mt": "deep", "D": nested(65)}
    started = time.monotonic()
    message = assert_error(post(server, clef(too_deep)), 400)
    assert time.monotonic() - started < 2
    assert "64" in message, message
    legacy = {"Events": [{"Timestamp": "2024-05-01T10:00:00Z", "Properties": {"D": nested(65)}}]}
    assert_error(post(server, orjson.dumps(legacy), {"Content-Type": "application/json"}), 400)
    # A megabyte of "[": refused, not a crash or a stack overflow.
    brackets = b'{"@t":"2024-05-01T10:00:00Z","D":' + b"[" * MiB + b"\n"
    assert_error(post(server, brackets), 400)
    legacy_brackets = b'{"Events":[{"Timestamp":"2024-05-01T10:00:00Z","Properties":{"D":' + (
        b"[" * MiB
    )
    assert_error(post(server, legacy_brackets, {"Content-Type": "application/json"}), 400)
    assert time.monotonic() - started < 5, "refusing deep nesting took seconds"
    # Depth 64 is allowed and round-trips exactly.
    assert post(server, clef(deepest)).status_code == 201
    assert_healthy(server, "after")
    server.stop()
    stored = server.events()
    assert [e["D"] for e in stored if e.get("Tag") == "deep64"] == [nested(64)]
    assert sorted(str(e.get("Tag")) for e in stored) == ["after"] * 3 + ["deep64"]


# -- compression ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bombs:
    gzip: bytes
    zstd: bytes


@pytest.fixture(scope="session")
def bombs() -> Bombs:
    """1 GiB of zeros, gzip-compressed (about 1 MB) and zstd-compressed (about 32 KB)."""
    zeros = bytes(MiB)
    # A valid gzip member built quickly: one MiB of zeros deflated up to a full flush (which
    # makes the piece self-contained), repeated 1024 times, then an empty final block, and the
    # trailer with the CRC and size of the whole.
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    piece = deflater.compress(zeros) + deflater.flush(zlib.Z_FULL_FLUSH)
    final = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS).flush()
    crc = 0
    for _ in range(1024):
        crc = zlib.crc32(zeros, crc)
    gz = b"".join(
        [
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff",  # gzip header: deflate, no name, no time
            piece * 1024,
            final,
            struct.pack("<II", crc, (1024 * MiB) & 0xFFFFFFFF),
        ]
    )
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    zs = b"".join([compressor.compress(zeros) for _ in range(1024)] + [compressor.flush()])
    return Bombs(gzip=gz, zstd=zs)


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_decompression_bomb(serve: ServerFactory, bombs: Bombs, encoding: str) -> None:
    server = serve()
    body = bombs.gzip if encoding == "gzip" else bombs.zstd
    assert len(body) < 2 * MiB
    # A first, ordinary request loads everything the ingestion path uses.
    warm = post(server, gzip.compress(good_batch("warm")), {"Content-Encoding": "gzip"})
    assert warm.status_code == 201
    baseline = server.peak_rss_kib()
    started = time.monotonic()
    response = post(server, body, {"Content-Encoding": encoding})
    elapsed = time.monotonic() - started
    message = assert_error(response, 413)
    assert "payload limit" in message
    assert elapsed < 5, f"the bomb took {elapsed:.1f} s to refuse"
    growth_mib = (server.peak_rss_kib() - baseline) / 1024
    # The decoder stops at the 10 MiB limit (+1 byte): nowhere near 1 GiB.
    assert growth_mib < 64, f"peak RSS grew by {growth_mib:.0f} MiB"
    assert_healthy(server, "after")
    assert_only_good_stored(server, ["warm", "after"])


def test_encodings_round_trip(server: Server) -> None:
    """The three supported encodings (and identity) are accepted: the counterpart of the
    refusals below."""
    cases = {
        "gzip": gzip.compress(good_batch("gzip")),
        "deflate": zlib.compress(good_batch("deflate")),
        "zstd": zstandard.ZstdCompressor().compress(good_batch("zstd")),
        "identity": good_batch("identity"),
    }
    for encoding, body in cases.items():
        response = post(server, body, {"Content-Encoding": encoding})
        assert response.status_code == 201, (encoding, response.text)
    raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = raw_deflate.compress(good_batch("raw-deflate")) + raw_deflate.flush()
    assert post(server, body, {"Content-Encoding": "deflate"}).status_code == 201
    assert_only_good_stored(server, [*cases, "raw-deflate"])


def test_invalid_bodies(server: Server) -> None:
    good = good_batch("never")
    bad_utf8 = b'{"@t":"2024-05-01T10:00:00Z","@mt":"caf\xe9 \xff"}\n'
    cases: list[tuple[str, bytes, dict[str, str], str]] = [
        ("invalid UTF-8 (CLEF)", good + bad_utf8, {}, "/api/events/raw"),
        ("invalid UTF-8 (CLEF, /ingest/clef)", good + bad_utf8, {}, "/ingest/clef"),
        (
            "invalid UTF-8 (legacy JSON)",
            b'{"Events":[{"Timestamp":"2024-05-01T10:00:00Z","MessageTemplate":"\xc3\x28"}]}',
            {"Content-Type": "application/json"},
            "/api/events/raw",
        ),
        ("truncated gzip", gzip.compress(good)[:-12], {"Content-Encoding": "gzip"}, ""),
        ("corrupt gzip", b"\x1f\x8b" + b"\x00" * 40, {"Content-Encoding": "gzip"}, ""),
        (
            "gzip with trailing data",
            gzip.compress(good) + b"junk",
            {"Content-Encoding": "gzip"},
            "",
        ),
        (
            "truncated zstd",
            zstandard.ZstdCompressor().compress(good)[:-4],
            {"Content-Encoding": "zstd"},
            "",
        ),
        ("unknown encoding", good, {"Content-Encoding": "br"}, ""),
        ("unknown encoding in a list", gzip.compress(good), {"Content-Encoding": "gzip, br"}, ""),
        ("invalid JSON", good + b'{"@t":"2024-05-01T10:00:00Z",\n', {}, ""),
        ("bad timestamp", good + b'{"@t":"yesterday"}\n', {}, ""),
        ("not an object", good + b"[1,2]\n", {}, ""),
        ("legacy JSON without Events", b'{"events":5}', {"Content-Type": "application/json"}, ""),
    ]
    for name, body, headers, path in cases:
        response = post(server, body, headers, path or "/api/events/raw")
        try:
            assert_error(response, 400)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None
    assert_healthy(server, "after")
    assert_only_good_stored(server, ["after"])


def test_otlp_refusals(server: Server) -> None:
    for path in ("/ingest/otlp/v1/logs", "/ingest/otlp/v1/traces"):
        wrong_type = post(server, b"\x0a\x00", {"Content-Type": "text/plain"}, path)
        assert_error(wrong_type, 415)
        missing_type = requests.post(server.url + path, data=b"\x0a\x00", timeout=30)
        assert_error(missing_type, 415)
        garbage = post(
            server,
            b"\xff\xff\xff\xff\xff\xff\xff\xff\x01",
            {"Content-Type": "application/x-protobuf"},
            path,
        )
        assert_error(garbage, 400)
        bad_json = post(server, b'{"resourceLogs": 5', {"Content-Type": "application/json"}, path)
        assert_error(bad_json, 400)
    assert_healthy(server, "after")
    assert_only_good_stored(server, ["after"])


def test_unknown_key_when_keys_are_required(serve: ServerFactory, tmp_path: Path) -> None:
    data = tmp_path / "keys"
    created = run_seqfast("apikey", "create", "--data", str(data), "--title", "ok", "--json")
    token = orjson.loads(created.stdout)["Token"]
    server = serve("--require-api-key", data=data)
    unknown = {"X-Seq-ApiKey": token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")}
    for headers in (unknown, {"X-Seq-ApiKey": "0" * 32}, {}):
        assert_error(post(server, good_batch("never"), headers), 401)
        assert_error(post(server, good_batch("never"), headers, "/ingest/clef"), 401)
    health = requests.get(server.url + "/health", timeout=10)
    assert health.status_code == 200
    accepted = post(server, good_batch("after"), {"X-Seq-ApiKey": token})
    assert accepted.status_code == 201, accepted.text
    assert_only_good_stored(server, ["after"])


# -- the HTTP layer ------------------------------------------------------------------------------


def test_slow_header_trickle_is_cut_off(serve: ServerFactory) -> None:
    server = serve("--header-timeout-seconds", "1")
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /api/events/raw HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        closed_after = None
        received = b""
        while time.monotonic() - started < 10:
            try:
                sock.send(b"a")
            except OSError:  # the server has closed the connection (EPIPE / ECONNRESET)
                closed_after = time.monotonic() - started
                break
            readable, _, _ = select.select([sock], [], [], 0.2)
            if readable:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    closed_after = time.monotonic() - started
                    break
                received += chunk
    assert closed_after is not None, "the server kept a trickling client for 10 s"
    assert 0.8 <= closed_after <= 5, f"closed after {closed_after:.2f} s"
    assert received == b"", received  # the head never arrived: no response, just a close
    assert_healthy(server, "after")
    assert_only_good_stored(server, ["after"])


def test_stalled_body_gets_408(serve: ServerFactory) -> None:
    server = serve("--body-timeout-seconds", "1")
    body = good_batch("never")
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(
            head("/api/events/raw", {"Content-Type": CLEF_TYPE, "Content-Length": str(len(body))})
            + body[:10]
        )
        data = read_until_closed(sock, 10)
        elapsed = time.monotonic() - started
    message = assert_error(one_response(data), 408)
    assert "time" in message
    assert 0.8 <= elapsed <= 5, f"answered after {elapsed:.2f} s"
    assert_healthy(server, "after")
    assert_only_good_stored(server, ["after"])


def test_dripping_body_gets_408_at_the_total_deadline(serve: ServerFactory) -> None:
    """A byte every 0.2 s never trips the no-progress timeout, but the whole body must still
    arrive within the total deadline."""
    server = serve("--body-timeout-seconds", "1", "--body-total-timeout-seconds", "1.5")
    body = good_batch("never")
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(
            head("/api/events/raw", {"Content-Type": CLEF_TYPE, "Content-Length": str(len(body))})
        )
        answered = b""
        for byte in body[:-1]:
            sock.sendall(bytes([byte]))
            readable, _, _ = select.select([sock], [], [], 0.2)
            if readable:
                answered = read_until_closed(sock, 5)
                break
        elapsed = time.monotonic() - started
    message = assert_error(one_response(answered), 408)
    assert "time" in message
    assert 1.3 <= elapsed <= 5, f"answered after {elapsed:.2f} s"
    assert_healthy(server, "after")
    assert_only_good_stored(server, ["after"])


def test_header_over_limit_gets_431(serve: ServerFactory) -> None:
    server = serve("--max-header-bytes", "4KiB")
    big = head(
        "/api/events/raw",
        {"Content-Type": CLEF_TYPE, "X-Big": "a" * (8 * KiB), "Content-Length": "0"},
    )
    # All at once, and in small pieces (an incomplete head that grows past the limit).
    assert_error(one_response(raw_exchange(server, big)), 431)
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        try:
            for i in range(0, len(big), 512):
                sock.sendall(big[i : i + 512])
                time.sleep(0.005)
        except OSError:
            pass  # closed early: the response is still readable
        assert_error(one_response(read_until_closed(sock, 10)), 431)
    # Many small headers add up the same way.
    many = {f"X-H{i}": "v" * 40 for i in range(200)}
    assert_error(one_response(raw_exchange(server, head("/health", many))), 431)
    # A head just under the limit is fine.
    fine = head(
        "/ingest/clef", {"X-Pad": "p" * (3 * KiB), "Content-Length": "0", "Connection": "close"}
    )
    assert one_response(raw_exchange(server, fine)).status == 201
    assert_healthy(server, "after")
    assert_only_good_stored(server, ["after"])


def test_expect_100_continue(serve: ServerFactory) -> None:
    """curl sends `Expect: 100-continue` with bodies over 1 MiB and holds the body back until
    told to go on (for a second, else)."""
    server = serve("--payload-limit-bytes", "1MiB")
    body = good_batch("expect")
    headers = {
        "Content-Type": CLEF_TYPE,
        "Content-Length": str(len(body)),
        "Expect": "100-continue",
        "Connection": "close",
    }
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(head("/api/events/raw", headers))
        sock.settimeout(5)  # a client without an answer goes on after about 1 s (curl)
        interim = sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 "), interim
        assert time.monotonic() - started < 1
        sock.sendall(body)
        final = one_response(read_until_closed(sock, 10))
    assert final.status == 201 and final.json() == {"MinimumLevelAccepted": None}
    # Over the limit: the final answer comes at once, and no 100 before it.
    over = raw_exchange(
        server, head("/api/events/raw", {**headers, "Content-Length": str(MiB + 1)})
    )
    assert_error(one_response(over), 413)
    assert_only_good_stored(server, ["expect"])


def test_idle_keep_alive_connection_is_closed(serve: ServerFactory) -> None:
    server = serve("--keepalive-timeout-seconds", "1")
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        data = read_until_closed(sock, 5)
        elapsed = time.monotonic() - started
    assert one_response(data).status == 200
    assert 0.8 <= elapsed <= 3, f"closed after {elapsed:.2f} s"


def test_idle_connections_do_not_hold_up_a_shutdown(serve: ServerFactory) -> None:
    """Connections with no request in progress (a new one that has sent nothing yet, a kept-
    alive one between requests) are closed at once by SIGTERM; the defaults would otherwise
    keep them 10 s (header timeout) and 75 s (keep-alive timeout)."""
    server = serve()
    silent = socket.create_connection((server.host, server.port), timeout=10)
    kept = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        kept.request("POST", "/ingest/clef", body=good_batch("kept"))
        assert kept.getresponse().read() == b'{"MinimumLevelAccepted":null}'
        time.sleep(0.2)
        elapsed = server.stop()
        assert elapsed < 5, f"the shutdown took {elapsed:.1f} s"
        assert read_until_closed(silent, 5) == b""
    finally:
        silent.close()
        kept.close()
    assert_only_good_stored(server, ["kept"])


@pytest.mark.parametrize(
    "request_line",
    [
        b"GARBAGE\r\n\r\n",
        b"POST /api/events raw HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api/events/raw\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\r\n\r\n",
    ],
    ids=["garbage", "space-in-target", "no-version", "tls-hello"],
)
def test_malformed_request_line(server: Server, request_line: bytes) -> None:
    data = raw_exchange(server, request_line)
    assert data.startswith(b"HTTP/1.1 400 "), data
    assert_error(one_response(data), 400)
    assert_healthy(server, "after")
    assert_only_good_stored(server, ["after"])


def test_chunked_and_content_length_conflict(server: Server) -> None:
    body = good_batch("never")
    smuggle = head(
        "/api/events/raw",
        {
            "Content-Type": CLEF_TYPE,
            "Content-Length": str(len(body)),
            "Transfer-Encoding": "chunked",
        },
    ) + chunked(body)
    # Refused, and the connection closed (raw_exchange reads until the server closes it).
    message = assert_error(one_response(raw_exchange(server, smuggle)), 400)
    assert "Transfer-Encoding" in message
    assert_healthy(server, "after")
    assert_only_good_stored(server, ["after"])


@pytest.mark.parametrize(
    "path", ["/api/events/raw", "/ingest/clef", "/ingest/otlp/v1/logs", "/ingest/otlp/v1/traces"]
)
def test_get_on_ingestion_path(server: Server, path: str) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = requests.request(method, server.url + path, timeout=10)
        assert_error(response, 405)
        assert response.headers["Allow"] == "POST"
    assert_healthy(server, "after")
    assert_only_good_stored(server, ["after"])


def test_head_requests(server: Server) -> None:
    """HEAD gets headers only, on any path (a body there would break the connection's framing;
    one HEAD on an ingestion path used to take the whole server down)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        for path, status in [("/health", 200), ("/api/", 200), ("/nowhere", 404)]:
            conn.request("HEAD", path)
            response = conn.getresponse()
            assert response.status == status, path
            assert response.read() == b""
        # Still in step: a GET on the same connection gets its own, whole response.
        conn.request("GET", "/health")
        response = conn.getresponse()
        assert response.status == 200 and orjson.loads(response.read()) == {"status": "in service"}
    finally:
        conn.close()
    for path in ("/api/events/raw", "/ingest/clef", "/ingest/otlp/v1/logs"):
        response = requests.head(server.url + path, timeout=10)
        assert response.status_code == 405 and response.content == b""
        assert response.headers["Allow"] == "POST"
    assert_healthy(server, "after")
    assert not [e for e in server.logs() if e.get("@l") == "Error"], server.stderr_text()
    assert_only_good_stored(server, ["after"])


def test_keep_alive(server: Server) -> None:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        sockets = set()
        for i in range(5):
            conn.request(
                "POST",
                "/api/events/raw",
                body=good_batch(f"k{i}"),
                headers={"Content-Type": CLEF_TYPE},
            )
            response = conn.getresponse()
            assert response.status == 201
            assert orjson.loads(response.read()) == {"MinimumLevelAccepted": None}
            assert response.getheader("Connection") is None
            sockets.add(id(conn.sock))
            conn.request("GET", "/health")
            health = conn.getresponse()
            assert health.status == 200
            health.read()
            sockets.add(id(conn.sock))
        assert len(sockets) == 1, "the connection was not kept alive"
        # An error does not cost the connection either.
        conn.request("POST", "/api/events/raw", body=b"{}\n", headers={"Content-Type": CLEF_TYPE})
        response = conn.getresponse()
        assert response.status == 400
        response.read()
        conn.request("POST", "/ingest/clef", body=good_batch("k5"))
        response = conn.getresponse()
        assert response.status == 201
        response.read()
        sockets.add(id(conn.sock))
        assert len(sockets) == 1
    finally:
        conn.close()
    assert_only_good_stored(server, [f"k{i}" for i in range(6)])


def test_pipelined_requests(server: Server) -> None:
    def request(path: str, body: bytes, method: str = "POST") -> bytes:
        return (
            f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {CLEF_TYPE}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    stream = b"".join(
        [
            request("/api/events/raw", good_batch("p0")),
            request("/ingest/clef", good_batch("p1")),
            request("/api/events/raw", b'{"@t":"never"}\n'),
            request("/health", b"", "GET"),
            request("/api/events/raw", good_batch("p2")),
            request("/health", b"", "GET").replace(b"Host: x", b"Host: x\r\nConnection: close"),
        ]
    )
    responses = parse_responses(raw_exchange(server, stream))
    assert [r.status for r in responses] == [201, 201, 400, 200, 201, 200], responses
    assert_only_good_stored(server, ["p0", "p1", "p2"])


# -- overload ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    batch: int
    status: int | None  # None: failed at the connection level
    seconds: float
    retry_after: str | None
    body: bytes


def test_back_pressure_503_with_retry_after(serve: ServerFactory) -> None:
    server = serve(
        "--payload-limit-bytes", "1MiB", "--queue-limit-bytes", "1MiB", "--retry-after-seconds", "3"
    )
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    counter = iter(range(1_000_000))
    stop = threading.Event()

    def batch_body(batch: int) -> bytes:
        pad = "x" * 700
        return clef(
            *(
                {"@t": "2024-05-01T10:00:00Z", "@mt": "load", "B": batch, "I": i, "Pad": pad}
                for i in range(1000)
            )
        )  # about 760 KB

    def client() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                with lock:
                    batch = next(counter)
                body = batch_body(batch)
                started = time.monotonic()
                try:
                    r = session.post(server.url + "/ingest/clef", data=body, timeout=30)
                    outcome = Outcome(
                        batch,
                        r.status_code,
                        time.monotonic() - started,
                        r.headers.get("Retry-After"),
                        r.content,
                    )
                except requests.ConnectionError:
                    outcome = Outcome(batch, None, time.monotonic() - started, None, b"")
                with lock:
                    outcomes.append(outcome)

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.2)
        with lock:
            statuses = [o.status for o in outcomes]
        if statuses.count(503) >= 3 and statuses.count(201) >= 3:
            break
    stop.set()
    for t in threads:
        t.join()
    busy = [o for o in outcomes if o.status == 503]
    accepted = [o for o in outcomes if o.status == 201]
    assert busy, "no request was turned away with 503"
    assert accepted, "no request was accepted"
    assert {o.status for o in outcomes} <= {201, 503}, [(o.status, o.body[:100]) for o in outcomes]
    for o in busy:
        assert o.retry_after == "3"
        assert "busy" in orjson.loads(o.body)["Error"]
    slowest = max(o.seconds for o in busy)
    assert slowest < 3, f"a 503 took {slowest:.2f} s"
    assert_healthy(server, "after")
    server.stop()
    stored: dict[int, set[int]] = {}
    for e in server.events():
        if "B" in e:
            stored.setdefault(e["B"], set()).add(e["I"])
    assert set(stored) == {o.batch for o in accepted}
    assert all(rows == set(range(1000)) for rows in stored.values())


def test_bodies_still_arriving_count_against_the_queue(serve: ServerFactory) -> None:
    """Five slow uploads of 870 KB start together against a 1 MiB queue: one is admitted, the
    other four are turned away at once, before their bodies are in (bodies being received
    count against the queue, so many connections cannot together buffer past it)."""
    server = serve(
        "--payload-limit-bytes", "1MiB", "--queue-limit-bytes", "1MiB", "--retry-after-seconds", "4"
    )
    body = clef(
        *(
            {"@t": "2024-05-01T10:00:00Z", "@mt": "slow", "Tag": "slow", "I": i, "P": "y" * 1000}
            for i in range(850)
        )
    )
    headers = {"Content-Type": CLEF_TYPE, "Content-Length": str(len(body)), "Connection": "close"}
    half = len(body) // 2
    sockets = [socket.create_connection((server.host, server.port), timeout=10) for _ in range(5)]
    try:
        started = time.monotonic()
        for sock in sockets:
            sock.sendall(head("/ingest/clef", headers) + body[:half])
        answered: list[ParsedResponse] = []
        waiting = list(sockets)
        while len(answered) < 4 and time.monotonic() - started < 5:
            readable, _, _ = select.select(waiting, [], [], 0.1)
            for sock in readable:
                answered.append(one_response(read_until_closed(sock, 10)))
                waiting.remove(sock)
        assert time.monotonic() - started < 3, "the 503s were not prompt"
        time.sleep(0.3)  # time enough for the last one to be answered too, were it refused
        readable, _, _ = select.select(waiting, [], [], 0)
        assert len(answered) == 4 and len(waiting) == 1 and not readable, answered
        for response in answered:
            assert_error(response, 503)
            assert response.headers["retry-after"] == "4"
        waiting[0].sendall(body[half:])
        admitted = one_response(read_until_closed(waiting[0], 10))
        assert admitted.status == 201, admitted
    finally:
        for sock in sockets:
            sock.close()
    assert_healthy(server, "after")
    server.stop()
    assert sorted(str(e["Tag"]) for e in server.events()) == ["after"] * 3 + ["slow"] * 850


def test_low_disk_answers_503(serve: ServerFactory) -> None:
    server = serve("--free-disk-reserve-bytes", "1000TiB", "--retry-after-seconds", "7")
    deadline = time.monotonic() + 5
    while True:
        health = requests.get(server.url + "/health", timeout=10)
        if health.status_code == 503 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert health.status_code == 503
    assert "disk" in health.json()["status"]
    for path in ("/api/events/raw", "/ingest/clef"):
        response = post(server, good_batch("never"), path=path)
        message = assert_error(response, 503)
        assert "disk" in message
        assert response.headers["Retry-After"] == "7"
    server.stop()
    assert server.events() == []


def test_many_idle_connections_do_not_block_others(serve: ServerFactory) -> None:
    server = serve("--header-timeout-seconds", "2")
    idle: list[socket.socket] = []
    try:
        for _ in range(100):
            idle.append(socket.create_connection((server.host, server.port), timeout=10))
        started = time.monotonic()
        assert_healthy(server, "after")
        assert time.monotonic() - started < 5
    finally:
        for sock in idle:
            sock.close()
    assert_only_good_stored(server, ["after"])


def test_connections_past_the_cap_are_refused_with_503(serve: ServerFactory) -> None:
    server = serve("--max-connections", "2")
    held = [socket.create_connection((server.host, server.port), timeout=10) for _ in range(2)]
    try:
        time.sleep(0.3)  # let the server accept both
        refused = one_response(
            raw_exchange(server, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
        )
        assert refused.status == 503
        assert refused.headers["retry-after"] == "2"
        assert "too many open connections" in refused.json()["Error"]
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)  # the freed places are counted down when the server sees the closes
    response = requests.post(f"{server.url}/ingest/clef", data=good_batch("after"), timeout=10)
    assert response.status_code == 201
    assert_only_good_stored(server, ["after"])
