"""`seqfast serve`: one process on trio serving the store over HTTP.

Start: open the store and the metadata database (in worker threads: both touch the disk), bind
the listener, log "Listening".  SIGTERM or SIGINT: stop accepting, let in-flight requests finish
their commits (a commit running in a worker thread is never abandoned), close idle connections,
then close the store (its head is flushed into a segment) and the metadata database.  Nothing
that was acknowledged is lost, and a second signal does not cut the shutdown short.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import trio

from seqfast import logs
from seqfast.api.app import build_app
from seqfast.api.http import HttpServer, Limits
from seqfast.api.ingest import Ingestion, IngestLimits
from seqfast.config import Config
from seqfast.meta.apikeys import ApiKeys
from seqfast.meta.db import open_metadata
from seqfast.storage.store import Store, StoreOptions

# How long in-flight requests may take to finish after a shutdown signal.
SHUTDOWN_GRACE_SECONDS = 30.0


async def serve(config: Config, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    log = logs.log
    data = Path(config.data)
    store = await trio.to_thread.run_sync(
        lambda: Store(data, StoreOptions(max_event_bytes=config.event_limit_bytes))
    )
    engine = await trio.to_thread.run_sync(open_metadata, config.metadata_url)
    keys = ApiKeys(engine)
    handlers: dict[int, Any] = {}
    try:
        ingestion = Ingestion(
            store,
            keys,
            IngestLimits(
                payload_limit_bytes=config.payload_limit_bytes,
                queue_limit_bytes=config.queue_limit_bytes,
                free_disk_reserve_bytes=config.free_disk_reserve_bytes,
                retry_after_seconds=config.retry_after_seconds,
                require_api_key=config.require_api_key,
            ),
            data,
            config.ingest_threads,
            log,
        )
        stopping = False

        def healthy() -> tuple[bool, str]:
            if stopping:
                return False, "shutting down"
            if not ingestion.disk_ok:
                return False, "free disk space is below the reserve"
            return True, "in service"

        server = HttpServer(
            ingestion.handle,
            build_app(ingestion, keys, config.require_api_key, healthy),
            Limits(
                header_timeout=config.header_timeout_seconds,
                keepalive_timeout=config.keepalive_timeout_seconds,
                body_timeout=config.body_timeout_seconds,
                body_total_timeout=config.body_total_timeout_seconds,
                max_header_bytes=config.max_header_bytes,
                max_connections=config.max_connections,
                retry_after_seconds=config.retry_after_seconds,
            ),
            log,
        )
        listeners = await trio.open_tcp_listeners(
            config.listen_port, host=config.listen_host or None
        )
        bound = listeners[0].socket.getsockname()
        # Signals after the first must not cut the shutdown short, closing the store included;
        # the receiver below restores the handlers it found when it closes, so make those
        # "ignore" until the store is closed (then the originals come back).
        handlers = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGTERM, signal.SIGINT)}
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as background:
                background.start_soon(ingestion.watch_disk)
                background.start_soon(_flush_metrics_periodically, keys)
                async with trio.open_nursery() as connections:
                    accept = trio.CancelScope()

                    async def accept_loop() -> None:
                        with accept:
                            await trio.serve_listeners(
                                server.serve_connection, listeners, handler_nursery=connections
                            )

                    connections.start_soon(accept_loop)
                    log(
                        "Information",
                        "seqfast {Version} listening on {Address}, data in {Data}",
                        Version=_version(),
                        Address=f"http://{bound[0]}:{bound[1]}",
                        Data=str(data.resolve()),
                    )
                    task_status.started(bound)
                    async for signum in signals:
                        log(
                            "Information",
                            "Received {Signal}: stopping",
                            Signal=signal.Signals(signum).name,
                        )
                        break
                    stopping = True
                    accept.cancel()
                    for listener in listeners:
                        await listener.aclose()
                    server.drain()
                    # In-flight requests finish (their commits complete); then anything left
                    # (a connection stuck on a slow client) is cancelled.
                    connections.cancel_scope.deadline = trio.current_time() + SHUTDOWN_GRACE_SECONDS
                background.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(store.close)
            await trio.to_thread.run_sync(keys.flush_metrics)
            engine.dispose()
        log("Information", "Stopped; the store is closed")
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


async def _flush_metrics_periodically(keys: ApiKeys, period: float = 30.0) -> None:
    while True:
        await trio.sleep(period)
        await trio.to_thread.run_sync(keys.flush_metrics)


def _version() -> str:
    import seqfast

    return seqfast.__version__


def run(config: Config) -> int:
    logs.set_minimum_level(config.log_level)
    trio.run(serve, config)
    return 0
