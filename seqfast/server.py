"""`seqfast serve`: one process on trio serving the store over HTTP.

Start: open the store and the metadata database (in worker threads: both touch the disk), bind
the listener, log "Listening".  SIGTERM or SIGINT: stop accepting, let in-flight requests finish
their commits (a commit running in a worker thread is never abandoned), close idle connections,
then close the store (its head is flushed into a segment) and the metadata database.  Nothing
that was acknowledged is lost, and a second signal does not cut the shutdown short.
"""

from __future__ import annotations

import signal
from functools import partial
from pathlib import Path
from typing import Any

import trio

from seqfast import logs
from seqfast.api.app import build_app
from seqfast.api.cluster_routes import ClusterHealth, cluster_routes
from seqfast.api.http import HttpServer, Limits
from seqfast.api.ingest import Ingestion, IngestLimits
from seqfast.api.proxy import LeaderForwarding, Proxy
from seqfast.api.signal_routes import apply_retention, signal_routes, tell_saved_filters
from seqfast.cluster import test_hooks
from seqfast.cluster.clock import BoottimeClock
from seqfast.cluster.dispatcher import LeaderContext
from seqfast.cluster.lease import Lease, NodeInfo
from seqfast.cluster.monitor import Monitor
from seqfast.cluster.node_identity import advertise_url, node_id_for
from seqfast.cluster.runtime import NodeRuntime
from seqfast.cluster.timing import Timing
from seqfast.config import Config
from seqfast.errors import SeqfastError
from seqfast.meta.apikeys import ApiKeys
from seqfast.meta.db import open_metadata
from seqfast.meta.retention_policies import RetentionPolicies
from seqfast.meta.signals import Signals
from seqfast.storage.store import Store, StoreOptions

# How long in-flight requests may take to finish after a shutdown signal.
SHUTDOWN_GRACE_SECONDS = 30.0


async def serve(config: Config, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    log = logs.log
    data = Path(config.data)
    store = await trio.to_thread.run_sync(
        lambda: Store(
            data,
            StoreOptions(
                max_event_bytes=config.event_limit_bytes,
                query_cache_bytes=config.query_cache_mb << 20,
            ),
        )
    )
    engine = await trio.to_thread.run_sync(open_metadata, config.metadata_url)
    keys = ApiKeys(engine)
    saved_signals = Signals(engine)
    policies = RetentionPolicies(engine)
    handlers: dict[int, Any] = {}
    lease: Lease | None = None
    monitor: Monitor | None = None
    try:
        # Identity, lease and runtime come first: for every request the HTTP layer asks the
        # runtime whether this node leads, and the advertised URL needs the bound port.
        node_id = node_id_for(data, config.node_id)
        timing = config.timing
        lease = await trio.to_thread.run_sync(
            partial(
                Lease,
                config.cluster_url,
                cluster=config.cluster_name,
                call_timeout=timing.call_timeout,
            )
        )
        if not config.cluster_db:
            await trio.to_thread.run_sync(_end_own_lease, lease, node_id)
        listeners = await trio.open_tcp_listeners(
            config.listen_port, host=config.listen_host or None
        )
        bound = listeners[0].socket.getsockname()
        api_url = advertise_url(config.advertise, bound[0], bound[1])
        if config.cluster_db:
            # Only in a shared database can the lease pass to another node, so only there must
            # a node whose event loop or shutdown hangs be killed before that can happen (a
            # cluster of one is kept single by the data directory's lock).  A leader's safety
            # rests on the watchdog's lease deadline (K after the last renewal was sent), which
            # a stuck loop cannot move; the liveness bound only has to catch a hung loop on any
            # node, so it is K too rather than a tighter bound that a loaded machine's
            # scheduling delays would trip.
            monitor = await trio.to_thread.run_sync(
                partial(Monitor, alive_within=timing.monitor_kill_after)
            )
        runtime = NodeRuntime(
            lease,
            NodeInfo(node_id=node_id, api_url=api_url, internal_url=api_url),
            timing,
            monitor=monitor,
            log=log,
        )
        test_hooks.install(runtime, log)  # fault tests only: inert unless its variable is set
        # Retention is a leader duty: it runs while this node leads and is cancelled when it
        # stops leading.
        runtime.add_leader_duty(
            "retention",
            partial(
                _apply_retention_periodically,
                store,
                saved_signals,
                policies,
                config.retention_interval_seconds,
            ),
        )
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
            may_acknowledge=runtime.may_acknowledge,
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
            build_app(
                ingestion,
                keys,
                config.require_api_key,
                healthy,
                extra_routes=signal_routes(
                    store=store,
                    signals=saved_signals,
                    policies=policies,
                    keys=keys,
                    require_api_key=config.require_api_key,
                )
                + cluster_routes(ClusterHealth(lease, timing.lease, log)),
                resolve_signals=saved_signals.resolve,
                query_timeout_seconds=config.query_timeout_seconds,
                tail_buffer_events=config.tail_buffer_events,
            ),
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
            forwarding=LeaderForwarding(runtime, Proxy(node_id, log)),
        )
        # Signals after the first must not cut the shutdown short, closing the store included;
        # the receiver below restores the handlers it found when it closes, so make those
        # "ignore" until the store is closed (then the originals come back).
        handlers = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGTERM, signal.SIGINT)}
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as background:
                background.start_soon(ingestion.watch_disk)
                background.start_soon(_flush_metrics_periodically, keys)
                background.start_soon(_tell_saved_filters_periodically, store, saved_signals)
                node_done = trio.Event()
                background.start_soon(_run_node, runtime, monitor, node_done)
                if not config.cluster_db:
                    # A cluster of one leads before it reports listening, as a standalone
                    # server would serve at once.
                    await _until_leading(runtime, timing, log)
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
                # Drained, so every write this node acknowledged is in: now step down and
                # release the lease, so that another node takes over at once.
                runtime.shutdown()
                with trio.move_on_after(timing.monitor_kill_after + 2 * timing.call_timeout):
                    await node_done.wait()
                background.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(store.close)
            await trio.to_thread.run_sync(keys.flush_metrics)
            engine.dispose()
            if monitor is not None:
                await trio.to_thread.run_sync(monitor.close)
            if lease is not None:
                lease.close()
        log("Information", "Stopped; the store is closed")
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


async def _apply_retention_periodically(
    store: Store,
    signals: Signals,
    policies: RetentionPolicies,
    period: float,
    leadership: LeaderContext,
) -> None:
    """Applies the retention policies every `period` seconds while this node leads; a failed
    pass is logged and the next one tried as usual (a pass that stopped part-way left every
    segment whole)."""
    del leadership  # retention changes this node's own store only: nothing to fence
    log = logs.log
    while True:
        await trio.sleep(period)
        try:
            # Abandoned, not awaited, on cancellation: deactivation must finish before the
            # lease could lapse, and a pass stopped anywhere leaves every segment whole.
            report = await trio.to_thread.run_sync(
                apply_retention, store, signals, policies, abandon_on_cancel=True
            )
        except (SeqfastError, OSError, ValueError) as exc:  # MetadataError is a SeqfastError
            log("Error", "Retention was not applied: {Reason}", Reason=str(exc))
            continue
        if report.events_removed or report.segments_dropped:
            log(
                "Information",
                "Retention removed {EventsRemoved} events ({SegmentsDropped} segments dropped, "
                "{SegmentsRewritten} rewritten)",
                EventsRemoved=report.events_removed,
                SegmentsDropped=report.segments_dropped,
                SegmentsRewritten=report.segments_rewritten,
            )


async def _run_node(runtime: NodeRuntime, monitor: Monitor | None, done: trio.Event) -> None:
    """Runs the node runtime until it has shut down, then stops its watchdog: from then on
    nothing tells the watchdog that the event loop runs, and closing the store may take a
    while."""
    try:
        await runtime.run()
    finally:
        done.set()
        if monitor is not None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(monitor.close)


async def _until_leading(runtime: NodeRuntime, timing: Timing, log: Any) -> None:
    """Waits (briefly: the lease is free, or this node's own) until the node leads."""
    with trio.move_on_after(timing.lease + 2 * timing.renew_every) as waited:
        while runtime.role != "leader":
            await trio.sleep(0.005)
    if waited.cancelled_caught:
        log(
            "Warning",
            "Not leading {Seconds} s after start: another node id holds the lease",
            Seconds=timing.lease,
        )


def _end_own_lease(lease: Lease, node_id: str) -> None:
    """Ends a lease this node id still holds from a previous run (one that was killed): in a
    cluster of one the data directory's lock, held now, proves that run is over, so waiting
    for the lease to lapse would only delay the start."""
    row = lease.current()
    if row is not None and row.node_id == node_id and not row.expired:
        lease.release(node_id, row.epoch)


async def _flush_metrics_periodically(keys: ApiKeys, period: float = 30.0) -> None:
    while True:
        await trio.sleep(period)
        await trio.to_thread.run_sync(keys.flush_metrics)


async def _tell_saved_filters_periodically(
    store: Store, signals: Signals, period: float = 60.0
) -> None:
    """Gives the store the signals' filters at start, then every `period` seconds (the
    signal routes also do at each change; this catches changes made through another node)."""
    while True:
        try:
            await trio.to_thread.run_sync(tell_saved_filters, store, signals)
        except SeqfastError as exc:  # the metadata database failed: keep the filters known
            logs.log("Warning", "Saved filters not refreshed: {Reason}", Reason=str(exc))
        await trio.sleep(period)


def _version() -> str:
    import seqfast

    return seqfast.__version__


def run(config: Config) -> int:
    logs.set_minimum_level(config.log_level)
    # On CLOCK_BOOTTIME, time spent suspended counts: a leader resumed after a pause sees its
    # lease deadline as passed (see seqfast.cluster.clock).
    trio.run(serve, config, clock=BoottimeClock())
    return 0
