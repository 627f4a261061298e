"""Reading events over HTTP, as Seq's API does: `GET /api/events`, `GET /api/events/{id}` and
`GET|POST /api/data` (SQL-style queries, JSON or CSV), plus the live tail on
`/api/events/stream` (a WebSocket, in `seqfast.api.tail`).

Every parameter is checked before any work starts, and a bad one is a 400 naming the parameter
and what was expected.  Searches and queries run in a worker thread (a bounded number at once)
so that the event loop keeps serving ingestion meanwhile; each has the server's
`query_timeout_seconds` (a query's own `timeoutMS` may ask for less), after which it stops and
the answer is a 503 saying so.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import parse_qsl

import orjson
import trio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from seqfast import _native
from seqfast.errors import SeqfastError
from seqfast.events.clef import dumps_json
from seqfast.events.seq_shape import to_seq_event
from seqfast.query.errors import QuerySyntaxError
from seqfast.query.execute import QueryResult, QueryTimeout, SearchResult
from seqfast.query.values import QueryError
from seqfast.storage.batch import Batch
from seqfast.storage.ids import parse_event_id

DEFAULT_COUNT: Final = 30
MAX_COUNT: Final = 10_000
# Searches and queries running at once; more wait their turn (the machine has few cores, and
# ingestion must keep one).
MAX_CONCURRENT_QUERIES: Final = 4
_WHOLE: Final = re.compile(r"[0-9]{1,9}")

Authorise = Callable[[Request, str], Response | None]
SignalResolver = Callable[[str], list[str]]


class QueryableStore(Protocol):
    """What the read API needs of `seqfast.storage.store.Store`."""

    def search(
        self,
        filter: str | None,
        *,
        start: str | int | None = None,
        end: str | int | None = None,
        after_id: str | None = None,
        start_at_id: str | None = None,
        limit: int = 30,
        timeout: float | None = None,
        extra_filters: Sequence[str] = (),
    ) -> SearchResult: ...

    def query(
        self,
        sql: str,
        *,
        start: str | int | None = None,
        end: str | int | None = None,
        timeout: float | None = None,
        extra_filters: Sequence[str] = (),
    ) -> QueryResult: ...

    def get(self, event_id: str) -> dict[str, Any] | None: ...

    def add_listener(self, fn: Callable[[Batch], None]) -> Callable[[], None]: ...


class BadParameter(SeqfastError, ValueError):
    """A request parameter that is missing, malformed or out of range (a 400)."""


class UnknownSignal(SeqfastError, LookupError):
    """A `signal` parameter naming no signal (a 400)."""


def no_signals(expression: str) -> list[str]:
    """The resolver used when signals are not configured: every signal is unknown."""
    raise UnknownSignal(f"unknown signal {expression!r}")


# --- parameters (pure) --------------------------------------------------------------------------


def _timestamp(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if _native.parse_timestamp_text(value) is None:
        raise BadParameter(
            f"{name} {value!r} is not a timestamp: use ISO-8601, such as 2024-05-01T12:00:00Z"
        )
    return value


def _event_id(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        parse_event_id(value)
    except ValueError as exc:
        raise BadParameter(f"{name}: {exc}") from None
    return value


def boolean_param(params: Mapping[str, str], name: str, default: bool = False) -> bool:
    value = params.get(name)
    if value is None or value == "":
        return default
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise BadParameter(f"{name} must be true or false, not {value!r}")


def _count(params: Mapping[str, str]) -> int:
    value = params.get("count")
    if value is None or value == "":
        return DEFAULT_COUNT
    if not _WHOLE.fullmatch(value) or int(value) > MAX_COUNT:
        raise BadParameter(f"count must be a whole number from 0 to {MAX_COUNT}, not {value!r}")
    return int(value)


def _range(params: Mapping[str, str], start: str, end: str) -> tuple[str | None, str | None]:
    lo, hi = _timestamp(params, start), _timestamp(params, end)
    if lo is not None and hi is not None:
        lo_ticks, hi_ticks = _native.parse_timestamp_text(lo), _native.parse_timestamp_text(hi)
        if lo_ticks is not None and hi_ticks is not None and lo_ticks > hi_ticks:
            raise BadParameter(f"{start} ({lo}) is later than {end} ({hi})")
    return lo, hi


@dataclass(frozen=True)
class SearchParams:
    filter: str | None
    count: int
    after_id: str | None
    start_at_id: str | None
    start: str | None
    end: str | None
    render: bool
    signal: str | None


def search_params(params: Mapping[str, str]) -> SearchParams:
    """`GET /api/events` parameters, checked; BadParameter names the first bad one."""
    start, end = _range(params, "fromDateUtc", "toDateUtc")
    after_id = _event_id(params, "afterId")
    start_at_id = _event_id(params, "startAtId")
    if after_id is not None and start_at_id is not None:
        raise BadParameter("give afterId or startAtId, not both")
    return SearchParams(
        filter=params.get("filter") or None,
        count=_count(params),
        after_id=after_id,
        start_at_id=start_at_id,
        start=start,
        end=end,
        render=boolean_param(params, "render"),
        signal=params.get("signal") or None,
    )


@dataclass(frozen=True)
class DataParams:
    q: str
    start: str | None
    end: str | None
    timeout: float | None  # the query's own timeoutMS, in seconds
    csv: bool
    signal: str | None = None  # a signal expression whose filters are `and`ed to `where`


def data_params(params: Mapping[str, str]) -> DataParams:
    """`/api/data` parameters, checked."""
    q = params.get("q", "")
    if not q.strip():
        raise BadParameter("q is required: the query to run, such as select count(*) from stream")
    start, end = _range(params, "rangeStartUtc", "rangeEndUtc")
    timeout: float | None = None
    raw_timeout = params.get("timeoutMS")
    if raw_timeout:
        if not _WHOLE.fullmatch(raw_timeout) or int(raw_timeout) == 0:
            raise BadParameter(f"timeoutMS must be a positive whole number, not {raw_timeout!r}")
        timeout = int(raw_timeout) / 1000
    fmt = params.get("format", "")
    if fmt not in ("", "json", "application/json", "text/csv", "csv"):
        raise BadParameter(f"format must be text/csv or application/json, not {fmt!r}")
    return DataParams(
        q=q,
        start=start,
        end=end,
        timeout=timeout,
        csv=fmt in ("text/csv", "csv"),
        signal=params.get("signal") or None,
    )


# --- answers (pure) ----------------------------------------------------------------------------


def json_response(value: Any, status: int = 200) -> Response:
    # dumps_json keeps integers beyond 64 bits exact (orjson alone refuses them).
    return Response(dumps_json(value), status_code=status, media_type="application/json")


def error_response(status: int, message: str, **extra: Any) -> Response:
    return json_response({"Error": message, **extra}, status)


def syntax_error_body(exc: QuerySyntaxError, text: str) -> dict[str, Any]:
    """Seq's error shape for a query it cannot run: `Error`, `Reasons`, `Suggestion` (the
    corrected text, when the fix is mechanical), plus where (`Position`, 0-based) and what was
    expected there."""
    body: dict[str, Any] = {
        "Error": f"{exc.message} (at character {exc.position + 1})",
        "Position": exc.position,
        "Expected": exc.expected,
        "Reasons": [exc.suggestion] if exc.suggestion else [],
    }
    if exc.corrected is not None:
        body["Suggestion"] = exc.corrected
    elif exc.suggestion:
        body["Suggestion"] = exc.suggestion
    body["Caret"] = caret(text, exc.position)
    return body


def caret(text: str, position: int) -> str:
    """The line of `text` holding `position`, and a caret under that character."""
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    line = text[start : len(text) if end < 0 else end]
    return f"{line}\n{' ' * (position - start)}^"


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return dumps_json(value).decode("utf-8")


def result_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A query result as CSV: a header, then one line per row (for `group by time`, the
    rows of every slice, the time in the first column)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(list(columns))
    for row in rows:
        writer.writerow([_csv_cell(v) for v in row])
    return out.getvalue()


def result_json(result: QueryResult, elapsed_ms: float) -> dict[str, Any]:
    """Seq's `QueryResultPart`: `Columns`, then `Rows` or (for `group by time`) `Slices`."""
    body: dict[str, Any] = {"Columns": list(result.columns)}
    if result.slices is not None:
        # Rows inside a slice do not repeat the slice's time: the columns they line up with
        # are the ones after `time`.
        body["Columns"] = list(result.columns[1:])
        body["Slices"] = result.slices
    else:
        body["Rows"] = result.rows
    body["Statistics"] = {"ElapsedMilliseconds": round(elapsed_ms, 3)}
    return body


# --- routes -------------------------------------------------------------------------------------


class QueryApi:
    """The read side of the HTTP API over one store."""

    def __init__(
        self,
        store: QueryableStore,
        authorise: Authorise,
        *,
        resolve_signals: SignalResolver = no_signals,
        timeout_seconds: float | None = None,
        tail_buffer_events: int = 100_000,
    ) -> None:
        self.store = store
        self.authorise = authorise
        self.resolve_signals = resolve_signals
        self.timeout_seconds = timeout_seconds
        self.tail_buffer_events = tail_buffer_events
        self._limiter: trio.CapacityLimiter | None = None

    def _timeout(self, requested: float | None = None) -> float | None:
        limits = [t for t in (self.timeout_seconds, requested) if t is not None]
        return min(limits) if limits else None

    def signal_filters(self, signal: str | None) -> list[str]:
        """The filters a `signal` parameter stands for; BadParameter for an unknown one."""
        if signal is None:
            return []
        try:
            return list(self.resolve_signals(signal))
        except (LookupError, ValueError) as exc:
            raise BadParameter(str(exc) or f"unknown signal {signal!r}") from None

    async def _run(self, fn: Callable[[], Any]) -> Any:
        if self._limiter is None:
            self._limiter = trio.CapacityLimiter(MAX_CONCURRENT_QUERIES)
        return await trio.to_thread.run_sync(fn, limiter=self._limiter)

    def _failure(self, exc: Exception, text: str, timeout: float | None) -> Response:
        """The answer to an error raised by a search or query."""
        if isinstance(exc, QuerySyntaxError):
            return json_response(syntax_error_body(exc, text), 400)
        if isinstance(exc, QueryError):
            return error_response(400, str(exc))
        if isinstance(exc, QueryTimeout):
            limit = f" ({timeout:g} s)" if timeout is not None else ""
            return error_response(
                503,
                f"the query did not finish within its time limit{limit}: narrow the time "
                "range or the filter, or raise query_timeout_seconds",
            )
        if isinstance(exc, BadParameter | ValueError):
            return error_response(400, str(exc))
        raise exc

    async def events(self, request: Request) -> Response:
        if (denied := self.authorise(request, "read")) is not None:
            return denied
        try:
            p = search_params(request.query_params)
            # Signals live in the metadata database: look them up off the event loop.
            extra = await trio.to_thread.run_sync(self.signal_filters, p.signal)
        except BadParameter as exc:
            return error_response(400, str(exc))
        if p.count == 0:
            return json_response([])
        timeout = self._timeout()
        try:
            result = await self._run(
                lambda: self.store.search(
                    p.filter,
                    start=p.start,
                    end=p.end,
                    after_id=p.after_id,
                    start_at_id=p.start_at_id,
                    limit=p.count,
                    timeout=timeout,
                    extra_filters=extra,
                )
            )
        except Exception as exc:
            return self._failure(exc, p.filter or "", timeout)
        return json_response([to_seq_event(e, render=p.render) for e in result.events])

    async def event(self, request: Request) -> Response:
        if (denied := self.authorise(request, "read")) is not None:
            return denied
        event_id = request.path_params["id"]
        try:
            parse_event_id(event_id)
            render = boolean_param(request.query_params, "render")
        except ValueError as exc:
            return error_response(400, str(exc))
        found = await self._run(lambda: self.store.get(event_id))
        if found is None:
            return error_response(404, f"there is no event {event_id}")
        return json_response(to_seq_event(found, render=render))

    async def stream_without_upgrade(self, request: Request) -> Response:
        return error_response(
            400, "/api/events/stream is a WebSocket: connect with an Upgrade: websocket request"
        )

    async def data(self, request: Request) -> Response:
        if (denied := self.authorise(request, "read")) is not None:
            return denied
        params = dict(request.query_params)
        if request.method == "POST":
            try:
                params = {**await _body_params(request), **params}
            except BadParameter as exc:
                return error_response(400, str(exc))
        try:
            p = data_params(params)
            # Signals live in the metadata database: look them up off the event loop.
            extra = await trio.to_thread.run_sync(self.signal_filters, p.signal)
        except BadParameter as exc:
            return error_response(400, str(exc))
        timeout = self._timeout(p.timeout)
        started = time.perf_counter()
        try:
            result = await self._run(
                lambda: self.store.query(
                    p.q, start=p.start, end=p.end, timeout=timeout, extra_filters=extra
                )
            )
        except Exception as exc:
            return self._failure(exc, p.q, timeout)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if p.csv:
            text = result_csv(result.columns, result.rows)
            return Response(text, media_type="text/csv; charset=utf-8")
        return json_response(result_json(result, elapsed_ms))

    def routes(self) -> list[BaseRoute]:
        from seqfast.api.tail import Tail

        tail = Tail(self)
        return [
            Route("/api/events", self.events, methods=["GET"]),
            Route("/api/events/", self.events, methods=["GET"]),
            WebSocketRoute("/api/events/stream", tail.endpoint),
            Route("/api/events/stream", self.stream_without_upgrade, methods=["GET"]),
            Route("/api/events/{id}", self.event, methods=["GET"]),
            Route("/api/data", self.data, methods=["GET", "POST"]),
            Route("/api/data/", self.data, methods=["GET", "POST"]),
        ]


async def _body_params(request: Request) -> dict[str, str]:
    """Parameters from a POST body: a form, or a JSON object (Seq's clients send `q` in the
    query string and an evaluation context in the body; either is accepted)."""
    body = await request.body()
    if not body.strip():
        return {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadParameter("the body must be a JSON object or a form") from None
    if not isinstance(value, dict):
        raise BadParameter("the body must be a JSON object or a form")
    out: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, str):
            out[key] = item
        elif isinstance(item, bool):
            out[key] = "true" if item else "false"
        elif isinstance(item, int | float):
            out[key] = str(item)
    return out


def query_routes(
    store: QueryableStore,
    authorise: Authorise,
    *,
    resolve_signals: SignalResolver = no_signals,
    timeout_seconds: float | None = None,
    tail_buffer_events: int = 100_000,
) -> list[BaseRoute]:
    """The read API's routes, for `build_app`."""
    api = QueryApi(
        store,
        authorise,
        resolve_signals=resolve_signals,
        timeout_seconds=timeout_seconds,
        tail_buffer_events=tail_buffer_events,
    )
    return api.routes()
