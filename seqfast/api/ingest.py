"""Seq's ingestion endpoints: CLEF, Seq's JSON and OTLP (protobuf and JSON), on the lean path.

A request is answered only after its batch is durable (201, or 200 with the OTLP response
message), or rejected whole with a precise reason (400/413/415) and nothing stored.  Overload is
answered promptly with 503 and `Retry-After`: when the bytes queued between HTTP and the store
pass `queue_limit_bytes`, or free disk drops below the reserve.  Decoding and committing run in
worker threads (the native shredder and zstd release the GIL), so both cores work and the event
loop stays responsive.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import trio

from seqfast.api.bodies import BodyError, BodyTooLarge, decode_body
from seqfast.api.http import Request, Response, error_response, json_response
from seqfast.errors import CommitRefused, InvalidEvents, SeqfastError
from seqfast.events import otlp, seqjson
from seqfast.events.apply import KeySettings
from seqfast.storage.store import Store

CLEF_PATHS = ("/api/events/raw", "/ingest/clef")
OTLP_LOGS_PATHS = ("/ingest/otlp/v1/logs", "/v1/logs")
OTLP_TRACES_PATHS = ("/ingest/otlp/v1/traces", "/v1/traces")
INGEST_PATHS = frozenset(CLEF_PATHS + OTLP_LOGS_PATHS + OTLP_TRACES_PATHS)
CLEF_CONTENT_TYPE = "application/vnd.serilog.clef"


class Key(Protocol):
    """What ingestion needs to know of an API key."""

    @property
    def id(self) -> str: ...
    @property
    def minimum_level(self) -> str | None: ...
    @property
    def applied_properties(self) -> tuple[tuple[str, Any], ...]: ...
    def allows(self, permission: str) -> bool: ...


class Keys(Protocol):
    def authenticate(self, token: str | None) -> Key | None: ...
    def record(self, key_id: str | None, events: int, bytes: int, rejected: bool) -> None: ...


@dataclass(frozen=True)
class IngestLimits:
    payload_limit_bytes: int
    queue_limit_bytes: int
    free_disk_reserve_bytes: int
    retry_after_seconds: int
    require_api_key: bool


def api_key_of(request: Request) -> str | None:
    """The key from `X-Seq-ApiKey` (any case; it wins) or `?apiKey=`; the literal "null" is none."""
    token = request.header("x-seq-apikey")
    if token is None:
        token = request.query_params().get("apiKey")
    if token is None or token.strip() in ("", "null"):
        return None
    return token.strip()


class Ingestion:
    """The ingestion endpoints, bound to a store and the API keys."""

    def __init__(
        self,
        store: Store,
        keys: Keys,
        limits: IngestLimits,
        data_dir: Path,
        threads: int,
        log: Callable[..., None],
        may_acknowledge: Callable[[], bool] = lambda: True,
    ) -> None:
        self.store = store
        # Asked twice per batch: right before it enters the log (a node that no longer leads
        # stores nothing), and once it is durable, before its 201 (leadership may have lapsed
        # during the fsync: then the client is told to retry).  See the cluster runtime.
        self.may_acknowledge = may_acknowledge
        self.keys = keys
        self.limits = limits
        self.data_dir = data_dir
        self.log = log
        self.workers = trio.CapacityLimiter(threads)
        self.queued_bytes = 0
        self.disk_ok = True

    async def watch_disk(self, period: float = 1.0) -> None:
        """Keeps `disk_ok` current (cheap: one statvfs a second)."""
        while True:
            free = shutil.disk_usage(self.data_dir).free
            ok = free >= self.limits.free_disk_reserve_bytes
            if ok != self.disk_ok:
                self.log(
                    "Warning" if not ok else "Information",
                    "Free disk {Free} bytes is {State} the reserve {Reserve}",
                    Free=free,
                    State="below" if not ok else "back above",
                    Reserve=self.limits.free_disk_reserve_bytes,
                )
            self.disk_ok = ok
            await trio.sleep(period)

    def _unavailable(self, reason: str) -> Response:
        retry = [("Retry-After", str(self.limits.retry_after_seconds))]
        return error_response(503, reason, retry)

    async def handle(self, request: Request) -> Response | None:
        """Answers ingestion requests; returns None for every other path."""
        if request.path not in INGEST_PATHS:
            return None
        if request.method != "POST":
            return error_response(405, f"{request.path} accepts POST only", [("Allow", "POST")])
        key = self.keys.authenticate(api_key_of(request))
        if key is None and self.limits.require_api_key:
            return error_response(401, "an API key is required: send it in X-Seq-ApiKey")
        if key is not None and not key.allows("ingest"):
            return error_response(403, "the API key does not have the Ingest permission")
        key_id = key.id if key is not None else None
        declared = request.content_length
        if declared is not None and declared > self.limits.payload_limit_bytes:
            self.keys.record(key_id, 0, 0, rejected=True)
            return _too_large(self.limits.payload_limit_bytes)
        if not self.disk_ok:
            return self._unavailable("free disk space is below the reserve; retry later")
        if self.queued_bytes + (declared or 0) > self.limits.queue_limit_bytes:
            return self._unavailable("the server is busy; retry later")
        # The declared size is reserved before the body is read, so that bodies still arriving
        # count against the queue too: many connections admitted at once cannot overshoot it.
        reserved = declared or 0
        self.queued_bytes += reserved
        try:
            body = await request.read_body(self.limits.payload_limit_bytes)
            if body is None:
                self.keys.record(key_id, 0, 0, rejected=True)
                return _too_large(self.limits.payload_limit_bytes)
            if declared is None and self.queued_bytes + len(body) > self.limits.queue_limit_bytes:
                return self._unavailable("the server is busy; retry later")
            self.queued_bytes += len(body) - reserved
            reserved = len(body)
            settings = KeySettings(
                minimum_level=key.minimum_level if key else None,
                properties=dict(key.applied_properties) if key else {},
            )
            response, events = await trio.to_thread.run_sync(
                self._commit, request, body, settings, limiter=self.workers
            )
        finally:
            self.queued_bytes -= reserved
        if response.status < 300 and not self.may_acknowledge():
            # Durable in this node's log, but its leadership may have lapsed while committing:
            # only a current leader acknowledges, so the client retries against the new one.
            self.log(
                "Warning", "Not acknowledging {Events} events: no longer the leader", Events=events
            )
            return _not_leader()
        self.keys.record(key_id, events, len(body), rejected=response.status >= 400)
        if response.status == 201 and key is not None:
            response = json_response(201, {"MinimumLevelAccepted": key.minimum_level})
        return response

    def _commit(self, request: Request, body: bytes, settings: KeySettings) -> tuple[Response, int]:
        """Decode and commit (in a worker thread); returns the response and events stored."""
        content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
        unit = "event"  # what an error's number counts
        try:
            data = decode_body(
                body, request.header("content-encoding") or "", self.limits.payload_limit_bytes
            )
            if request.path in OTLP_LOGS_PATHS or request.path in OTLP_TRACES_PATHS:
                return self._commit_otlp(
                    request.path in OTLP_LOGS_PATHS, data, content_type, settings
                )
            if request.path == "/ingest/clef" or _is_clef(request, content_type):
                clef, unit = data, "line"
            else:
                clef = seqjson.decode_seq_json(data)
            events = self.store.ingest_clef(clef, settings, may_commit=self.may_acknowledge)
        except BodyTooLarge:
            return _too_large(self.limits.payload_limit_bytes), 0
        except BodyError as exc:
            return error_response(400, str(exc)), 0
        except InvalidEvents as exc:
            message = f"invalid events, nothing was stored: {unit} {exc.line}: {exc.reason}"
            return error_response(400, message), 0
        except UnsupportedMedia as exc:
            return error_response(415, str(exc)), 0
        except CommitRefused:
            return _not_leader(), 0
        except SeqfastError as exc:
            self.log("Error", "Ingestion failed: {Error}", Error=str(exc))
            return self._unavailable(f"the store cannot accept events: {exc}"), 0
        return json_response(201, {"MinimumLevelAccepted": None}), events

    def _commit_otlp(
        self, logs: bool, data: bytes, content_type: str, settings: KeySettings
    ) -> tuple[Response, int]:
        if content_type not in (
            "application/x-protobuf",
            "application/protobuf",
            "application/json",
        ):
            raise UnsupportedMedia(
                f"OTLP bodies must be application/x-protobuf or application/json, not "
                f"{content_type or 'unspecified'}"
            )
        decode = otlp.decode_logs if logs else otlp.decode_traces
        result = decode(data, content_type, max_event_bytes=self.store.options.max_event_bytes)
        events = (
            self.store.ingest_clef(result.clef, settings, may_commit=self.may_acknowledge)
            if result.accepted
            else 0
        )
        encode = otlp.encode_logs_response if logs else otlp.encode_traces_response
        return Response(200, encode(result, content_type), content_type=content_type), events


class UnsupportedMedia(Exception):
    """A body in a format the endpoint does not take (HTTP 415)."""


def _is_clef(request: Request, content_type: str) -> bool:
    if content_type.startswith(CLEF_CONTENT_TYPE):
        return True
    # `?clef` with or without a value, as Seq's clients send it.
    return any(part.split("=", 1)[0] == "clef" for part in request.query.split("&"))


def _not_leader() -> Response:
    # Nothing of the batch is acknowledged by this node: the client retries, and the retry
    # reaches the new leader (through this node's forwarding, once it knows who that is).
    return error_response(
        503, "this node is no longer the leader; retry shortly", [("Retry-After", "1")]
    )


def _too_large(limit: int) -> Response:
    return error_response(
        413, f"the request body exceeds the payload limit of {limit} bytes; nothing was stored"
    )
