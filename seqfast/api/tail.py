"""Live tail: `/api/events/stream` as a WebSocket, sending events as they are committed.

Parameters: `filter` and `signal` (as for `/api/events`), `clef=true` for CLEF documents
(otherwise Seq's event JSON), `render=true` for `RenderedMessage` in event JSON.  Each matching
event is one text message.  A bad parameter or filter is answered with an HTTP 400 before the
upgrade, so a client sees the same error as from `/api/events`.

Flow: the store calls the listener on its committing thread after each commit.  The listener
only schedules the batch onto the event loop (`TrioToken.run_sync_soon`, which never blocks),
so ingestion never waits for a tail.  On the loop the batch joins the session's queue; a
worker thread filters it, encodes the events and frames them, and the session writes the frames
in a few large writes (one write per message would cost a system call and a GIL hand-over per
event, and hold the loop and ingestion back).  The queue is
bounded by events: when more than `tail_buffer_events` events are waiting (the client reads
more slowly than events arrive), the session stops, closes the WebSocket with 1008 and a
reason saying so, and drops what was queued.  The client may reconnect and page back with
`/api/events` to fill the gap.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Final

import numpy as np
import trio
from starlette.requests import Request
from starlette.websockets import WebSocket, WebSocketDisconnect

from seqfast.api.websocket_bridge import FRAMES_EXTENSION, text_frames
from seqfast.events.clef import dumps_json
from seqfast.events.seq_shape import to_seq_event
from seqfast.query import ast, vector
from seqfast.query.errors import QuerySyntaxError
from seqfast.query.parse import parse_filter
from seqfast.query.values import QueryError
from seqfast.storage import batch as batches
from seqfast.storage.batch import Batch

if TYPE_CHECKING:
    from seqfast.api.query_routes import QueryApi

SLOW_CONSUMER: Final = 1008
# How long a closing message may take to write to a client that has stopped reading.
CLOSE_GRACE_SECONDS: Final = 10.0
# Tails filtering and encoding at once (each in a worker thread).
MAX_CONCURRENT_ENCODERS: Final = 2


def compile_filters(text: str | None, extra: Sequence[str]) -> list[ast.Filter]:
    """The filters an event must pass (all of them); QuerySyntaxError/QueryError when one is
    not valid.  An empty filter is left out (it matches everything)."""
    compiled: list[ast.Filter] = []
    for source in [text or "", *extra]:
        parsed = parse_filter(source)
        if parsed.expr is None:
            continue
        vector.check(parsed.expr)
        compiled.append(parsed)
    return compiled


def matching_rows(filters: Sequence[ast.Filter], batch: Batch) -> np.ndarray:
    """Rows of `batch` that every filter selects."""
    if not filters:
        return np.arange(batch.n, dtype=np.int64)
    mask = np.ones(batch.n, dtype=bool)
    for f in filters:
        mask &= np.asarray(vector.filter_mask(f, batch), dtype=bool)
    return np.flatnonzero(mask)


def encode_frames(
    filters: Sequence[ast.Filter], batch: Batch, clef: bool, render: bool
) -> list[bytes]:
    """`encode`, as WebSocket frames ready to write (in chunks of whole frames)."""
    return text_frames(encode(filters, batch, clef, render))


def encode(filters: Sequence[ast.Filter], batch: Batch, clef: bool, render: bool) -> list[str]:
    """The messages for the matching events of a batch, oldest first."""
    rows = matching_rows(filters, batch)
    if rows.size == 0:
        return []
    events = batches.to_events(batch, rows)
    if clef:
        out = []
        for event in events:
            event.pop("@id", None)
            out.append(dumps_json(event).decode("utf-8"))
        return out
    return [dumps_json(to_seq_event(e, render=render)).decode("utf-8") for e in events]


class _Feed:
    """Committed batches, from the committing thread to one session on the event loop."""

    def __init__(self, limit_events: int, on_overflow: Callable[[], None]) -> None:
        self.token = trio.lowlevel.current_trio_token()
        self.limit_events = limit_events
        self.on_overflow = on_overflow
        # Unbounded in slots: the bound is on events, checked in `_deliver`.
        self.send_channel, self.receive_channel = trio.open_memory_channel[Batch](math.inf)
        self.waiting_events = 0  # queued or being written; touched on the event loop only
        self.stopped = False

    def listener(self, batch: Batch) -> None:
        """Runs on the committing thread: must be quick, must not block, must not raise."""
        if self.stopped:
            return
        try:
            self.token.run_sync_soon(self._deliver, batch)
        except Exception:  # the loop has ended (RunFinishedError): nothing to deliver to
            self.stopped = True

    def _deliver(self, batch: Batch) -> None:
        if self.stopped or batch.n == 0:
            return
        if self.waiting_events and self.waiting_events + batch.n > self.limit_events:
            self.stopped = True
            self.on_overflow()
            return
        self.waiting_events += batch.n
        try:
            self.send_channel.send_nowait(batch)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            self.stopped = True

    def done(self, batch: Batch) -> None:
        self.waiting_events -= batch.n


class Tail:
    def __init__(self, api: QueryApi) -> None:
        self.api = api
        self._limiter: trio.CapacityLimiter | None = None

    async def endpoint(self, websocket: WebSocket) -> None:
        from seqfast.api.query_routes import BadParameter, boolean_param, error_response

        # The API key check reads only headers and the query string, as for any request.
        denied = self.api.authorise(Request({**websocket.scope, "type": "http"}), "read")
        if denied is not None:
            await websocket.send_denial_response(denied)
            return
        params = websocket.query_params
        try:
            extra = await trio.to_thread.run_sync(
                self.api.signal_filters, params.get("signal") or None
            )
            filters = compile_filters(params.get("filter"), extra)
            clef = boolean_param(params, "clef")
            render = boolean_param(params, "render")
        except QuerySyntaxError as exc:
            await websocket.send_denial_response(
                error_response(400, exc.message, Position=exc.position, Expected=exc.expected)
            )
            return
        except (BadParameter, QueryError, ValueError) as exc:
            await websocket.send_denial_response(error_response(400, str(exc)))
            return
        if self._limiter is None:
            self._limiter = trio.CapacityLimiter(MAX_CONCURRENT_ENCODERS)
        limiter = self._limiter
        limit = self.api.tail_buffer_events
        send_frames: Callable[[bytes], Awaitable[None]] = websocket.scope["extensions"][
            FRAMES_EXTENSION
        ]["send"]
        await websocket.accept()

        overflowed = False
        with trio.CancelScope() as session:
            waiting = trio.CancelScope()

            def overflow() -> None:
                # Stop at the next message boundary, so that the closing message can follow
                # whole; a write that does not finish within the grace period is abandoned
                # (the client has stopped reading) and the connection simply closed.
                nonlocal overflowed
                overflowed = True
                waiting.cancel()
                session.deadline = trio.current_time() + CLOSE_GRACE_SECONDS

            feed = _Feed(limit, overflow)
            remove = self.api.store.add_listener(feed.listener)
            try:
                async with trio.open_nursery() as nursery:

                    async def watch_client() -> None:
                        # The client sends nothing we need; reading notices it leaving.
                        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                            while (await websocket.receive())["type"] != "websocket.disconnect":
                                pass
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(watch_client)
                    while not overflowed:
                        with waiting:
                            batch = await feed.receive_channel.receive()
                        if overflowed:
                            break
                        waiting = trio.CancelScope()
                        chunks = await trio.to_thread.run_sync(
                            encode_frames, filters, batch, clef, render, limiter=limiter
                        )
                        for chunk in chunks:
                            if overflowed:
                                break
                            await send_frames(chunk)
                        feed.done(batch)
                    nursery.cancel_scope.cancel()
            finally:
                feed.stopped = True
                remove()
        if overflowed:
            with trio.move_on_after(CLOSE_GRACE_SECONDS):
                await websocket.close(
                    SLOW_CONSUMER,
                    f"the client did not keep up: more than {limit} events were waiting "
                    "to be sent; reconnect and page back with /api/events",
                )
