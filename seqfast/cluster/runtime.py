"""The node runtime: runs the node state machine against the lease, the clock and the application.

`NodeMachine` (machine.py) decides everything; this module only carries out.  Its tasks, all in
one trio nursery:

- **lease**: every `renew_every` (plus jitter) it acquires the lease, or renews the one the
  machine holds, and feeds the reply (`LeaseAcquired`, `LeaseRenewed`, `LeaseLost`,
  `LeaseUnreachable`).  When acquiring fails it reads who holds the lease (`Lease.current`) and
  feeds `OtherLeaderSeen`.  Database calls run in worker threads (SQLAlchemy's async modes are
  asyncio-only), each bounded by `call_timeout` and *abandoned* when it runs over: a thread
  cannot be cancelled, so a hung call is left to the database's own timeouts while the node
  goes on.  The node judges its lease from its own clock, from when the renewal was *sent*.
- **clock** (`clock.Ticker`): a `Tick` every `renew_every` and exactly at the machine's
  deadlines, so a leader whose renewals stop succeeding steps down at its deadline whatever the
  lease task is stuck in.
- **dispatcher** (dispatcher.py): executes the machine's commands from the bounded command
  queue (commands.py); the leader duties run in its leader nursery.
- **heartbeat**: every `renew_every`, and at once when the role changes, the node's row in
  `nodes` (addresses, role).
- **alive** (with a monitor): tells the watchdog process that the event loop runs.

The monitor (monitor.py) is told the command queue's depth, each command's start and end (it
must end within `3·renew_every + call_timeout`), the leader's kill deadline (`sent_at + K`,
moved on by each renewal) and the deactivation deadline; it kills the process if any passes.
When the machine orders `Terminate` (a deactivation overran its deadline), the runtime logs why
and kills the process itself, without waiting for the monitor.

Graceful shutdown (`shutdown()`): the machine deactivates the leader duties, the lease is
released so another node can take over at once, the node's row says "stopped", and `run`
returns.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import random
import signal
import time
from collections.abc import Callable
from typing import NoReturn, Protocol, TypeVar

import trio

from seqfast.cluster import clock
from seqfast.cluster.commands import DEFAULT_CAPACITY, CommandQueue, QueueFull
from seqfast.cluster.dispatcher import Dispatcher, LeaderContext, LeaderDuty
from seqfast.cluster.lease import LeaderRow, Lease, NodeInfo
from seqfast.cluster.machine import (
    ActivateLeader,
    Command,
    DeactivateLeader,
    Follow,
    LeaseAcquired,
    LeaseLost,
    LeaseRenewed,
    LeaseUnreachable,
    NodeMachine,
    OtherLeaderSeen,
    ReleaseLease,
    ShutdownRequested,
    State,
    Terminate,
    Tick,
    Trigger,
)
from seqfast.cluster.timing import Timing
from seqfast.errors import SeqfastError
from seqfast.meta.db import MetadataError

__all__ = [
    "LeaderContext",
    "LeaderDuty",
    "LeaderDutyFailed",
    "LeaseCalls",
    "NodeInfo",
    "NodeRuntime",
    "NodeTerminated",
    "ThreadedLease",
    "Watchdog",
]

_T = TypeVar("_T")

_LEADING = (State.ACTIVATING, State.LEADER)
_STOPPING = (State.DEACTIVATING, State.STOPPING)

# Lease calls get threads of their own, so that the application's use of trio's default thread
# pool cannot starve renewals; an abandoned call keeps its thread until the database lets go.
_LEASE_THREADS = 8


class NodeTerminated(SeqfastError):
    """The node was terminated (leader work could not be stopped in time); the process must end."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the node was terminated: {reason}")
        self.reason = reason


class LeaderDutyFailed(SeqfastError):
    """A leader duty raised; the node stepped down, released its lease and stopped."""


class Watchdog(Protocol):
    """What the runtime tells the monitor (`monitor.Monitor` is one)."""

    def watch_command(self, name: str, deadline: float, epoch: int) -> None: ...
    def command_done(self, name: str) -> None: ...
    def loop_alive(self) -> None: ...
    def queue_depth(self, depth: int, capacity: int) -> None: ...


class LeaseCalls(Protocol):
    """The lease as the runtime calls it: awaitable, and abandoned when cancelled."""

    async def acquire(self, node_id: str, lease_seconds: float) -> int | None: ...
    async def renew(self, node_id: str, epoch: int, lease_seconds: float) -> bool: ...
    async def release(self, node_id: str, epoch: int) -> bool: ...
    async def current(self) -> LeaderRow | None: ...
    async def heartbeat(self, node: NodeInfo) -> None: ...


class ThreadedLease:
    """`Lease` calls in worker threads; cancelling the caller abandons the thread at once."""

    def __init__(self, lease: Lease) -> None:
        self._lease = lease
        self._limiter = trio.CapacityLimiter(_LEASE_THREADS)

    async def _call(self, fn: Callable[[], _T]) -> _T:
        return await trio.to_thread.run_sync(fn, abandon_on_cancel=True, limiter=self._limiter)

    async def acquire(self, node_id: str, lease_seconds: float) -> int | None:
        return await self._call(functools.partial(self._lease.acquire, node_id, lease_seconds))

    async def renew(self, node_id: str, epoch: int, lease_seconds: float) -> bool:
        return await self._call(functools.partial(self._lease.renew, node_id, epoch, lease_seconds))

    async def release(self, node_id: str, epoch: int) -> bool:
        return await self._call(functools.partial(self._lease.release, node_id, epoch))

    async def current(self) -> LeaderRow | None:
        return await self._call(self._lease.current)

    async def heartbeat(self, node: NodeInfo) -> None:
        await self._call(functools.partial(self._lease.heartbeat, node))


def kill_process(reason: str) -> NoReturn:
    """The production `terminate`: SIGKILL this process (no cleanup may run: leader work might)."""
    os.kill(os.getpid(), signal.SIGKILL)
    os._exit(3)  # not reached


class NodeRuntime:
    """One node of a cluster: leads when it holds the lease, follows otherwise.

    Args:
        lease: the cluster's lease; open it with `call_timeout=timing.call_timeout`.
        node: this node's id and advertised addresses.
        timing: validated here (`TimingError` if it cannot keep one leader at a time).
        monitor: the watchdog to keep informed (`monitor.Monitor`), or None.  Its
            `alive_within` must exceed `alive_every` (default `renew_every / 4`) with room for
            scheduling delays; `timing.deactivation_grace` is a good choice.
        log: the self-log, called as `log(level, template, **properties)` (`seqfast.logs.log`).
        calls: how the lease is called; default `ThreadedLease(lease)`.  Tests substitute it.
        terminate: called with the reason when the node must die at once; the default SIGKILLs
            the process.  If it returns, `run` raises `NodeTerminated`.
        queue_capacity: the bound of the command queue.
        rng: the source of renewal jitter.

    Read by the HTTP layer at any time, cheaply: `role`, `leader`, `leader_epoch`, `epoch`,
    `may_acknowledge()` (this one from any thread).
    """

    def __init__(
        self,
        lease: Lease,
        node: NodeInfo,
        timing: Timing,
        *,
        monitor: Watchdog | None,
        log: Callable[..., None],
        calls: LeaseCalls | None = None,
        terminate: Callable[[str], None] = kill_process,
        queue_capacity: int = DEFAULT_CAPACITY,
        alive_every: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._machine = NodeMachine(timing)  # validates the timing
        self._timing = timing
        self._lease = lease
        self._calls: LeaseCalls = calls if calls is not None else ThreadedLease(lease)
        self._node = node
        self._monitor = monitor
        self._log = log
        self._terminate = terminate
        self._alive_every = alive_every if alive_every is not None else timing.renew_every / 4
        self._rng = rng if rng is not None else random.Random()
        self._command_bound = 3 * timing.renew_every + timing.call_timeout
        self._queue = CommandQueue(queue_capacity, on_depth=self._queue_depth)
        self._dispatcher = Dispatcher(
            self._queue,
            node_id=node.node_id,
            log=log,
            report=self._feed,
            follow=self._follow,
            release=self._release,
            terminate=self._die,
            duty_failed=self._duty_failed,
            on_start=self._command_started,
            on_done=self._command_done,
        )
        self._ticker = clock.Ticker(timing.renew_every, self._deadlines, self._tick)
        # Published state: plain attributes, replaced whole, so any thread may read them.
        self._leader: NodeInfo | None = None
        self._leader_epoch: int | None = None
        self._ack: tuple[float, float] | None = None  # (deadline on trio's clock, on BOOTTIME)
        self._seen: dict[int, NodeInfo] = {}  # other leaders by epoch, from Lease.current
        # Monitor deadlines as last sent: name → (deadline on trio's clock, epoch).
        self._watched: dict[str, tuple[float, int]] = {}
        self._led_epoch: int | None = None
        self._in_flight: Command | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._shutdown_requested = False
        self._finished = trio.Event()
        self._lease_loop_done = trio.Event()
        self._terminated: str | None = None
        self._failure: str | None = None
        self._db_trouble: str | None = None
        self._heartbeat_trouble: str | None = None
        # Set when the role differs from the one last recorded, so that the membership shows a
        # new follower or leader at once rather than up to a renewal period later.
        self._role_changed = trio.Event()
        self._recorded_role: str | None = None

    # -- what the HTTP layer reads -----------------------------------------------------------

    @property
    def node(self) -> NodeInfo:
        return self._node

    @property
    def timing(self) -> Timing:
        return self._timing

    @property
    def role(self) -> str:
        """The machine's state: starting, follower, activating, leader, deactivating, stopping,
        stopped."""
        return self._machine.state.value

    @property
    def leader(self) -> NodeInfo | None:
        """Who leads, as last seen: this node while it leads, None while nobody is known."""
        return self._leader

    @property
    def leader_epoch(self) -> int | None:
        """The epoch of `leader`."""
        return self._leader_epoch

    @property
    def epoch(self) -> int | None:
        """The epoch this node leads under (activating or leader), else None."""
        return self._machine.epoch if self._machine.state in _LEADING else None

    def may_acknowledge(self) -> bool:
        """Whether this node is the working leader now: activation finished and its own lease
        deadline not passed.  Safe from any thread."""
        ack = self._ack
        if ack is None:
            return False
        try:
            now = trio.current_time()
        except RuntimeError:  # not the event loop's thread: compare on BOOTTIME
            return clock.boottime() < ack[1]
        return now < ack[0]

    @property
    def duties(self) -> tuple[str, ...]:
        return self._dispatcher.duties

    # -- configuration and control -----------------------------------------------------------

    def add_leader_duty(self, name: str, duty: LeaderDuty) -> None:
        """Run `duty(context)` in the leader nursery of every activation, from the next one on;
        it is cancelled on deactivation.  If it raises, the node steps down, releases the lease,
        and `run` raises `LeaderDutyFailed`."""
        self._dispatcher.add_duty(name, duty)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the node until `shutdown()` has completed (then return), it is terminated
        (`NodeTerminated`) or a leader duty failed (`LeaderDutyFailed`, after stopping)."""
        if self._token is not None:
            raise RuntimeError("a NodeRuntime runs once")
        self._token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            await nursery.start(self._dispatcher.run)
            if self._monitor is not None:
                nursery.start_soon(self._alive, name="cluster alive")
            # Advertise our addresses first, so that whoever sees us lead can reach us.
            await self._heartbeat_once()
            nursery.start_soon(self._ticker.run, name="cluster clock")
            nursery.start_soon(self._lease_loop, name="cluster lease")
            nursery.start_soon(self._heartbeat_loop, name="cluster heartbeat")
            task_status.started()
            if self._shutdown_requested:  # asked before run
                self._feed(ShutdownRequested())
            await self._finished.wait()
            if self._terminated is None:
                # A lease call in flight ends within its timeout; one that acquired the lease
                # releases it again.
                with trio.move_on_after(2 * self._timing.call_timeout):
                    await self._lease_loop_done.wait()
                await self._heartbeat_once()  # state "stopped"
            nursery.cancel_scope.cancel()
        if self._terminated is not None:
            raise NodeTerminated(self._terminated)
        if self._failure is not None:
            raise LeaderDutyFailed(self._failure)

    def shutdown(self) -> None:
        """Ask the node to stop gracefully: deactivate, release the lease, return from `run`.
        Returns at once; safe from any thread, and before `run`."""
        token = self._token
        if token is None:
            self._shutdown_requested = True
            return
        try:
            here = trio.lowlevel.current_trio_token() is token
        except RuntimeError:
            here = False
        if here:
            self._request_shutdown()
        else:
            token.run_sync_soon(self._request_shutdown)

    def _request_shutdown(self) -> None:
        if not self._shutdown_requested:
            self._shutdown_requested = True
            self._feed(ShutdownRequested())

    # -- feeding the machine -----------------------------------------------------------------

    def _tick(self) -> None:
        self._feed(Tick())

    def _deadlines(self) -> tuple[float | None, float | None]:
        return (self._machine.leader_deadline, self._machine.deactivation_deadline)

    def _feed(self, trigger: Trigger) -> None:
        """Hand `trigger` to the machine and set its commands going.  Event loop only."""
        if self._terminated is not None:
            return
        machine = self._machine
        deadline = machine.leader_deadline
        now = clock.now()
        commands = machine.handle(trigger, now)
        self._publish()
        for command in commands:
            if isinstance(command, DeactivateLeader):
                self._stepping_down(command, trigger, deadline, now)
            elif isinstance(command, ActivateLeader):
                self._led_epoch = command.epoch
            if isinstance(command, Terminate):
                self._die(command.reason)
                return
            try:
                self._queue.put(command)
            except QueueFull as exc:
                self._die(str(exc))
                return
        self._keep_watch()
        self._ticker.replan()
        self._maybe_finished()

    def _publish(self) -> None:
        machine = self._machine
        if self.role != self._recorded_role:
            self._role_changed.set()
        deadline = machine.leader_deadline
        if machine.state in _LEADING and deadline is not None:
            self._leader, self._leader_epoch = self._node, machine.epoch
            self._dispatcher.extend(machine.epoch, deadline)
        elif self._leader is self._node:
            self._leader, self._leader_epoch = None, None  # until we learn who follows us
        if machine.state is State.LEADER and deadline is not None:
            self._ack = (deadline, clock.to_boottime(deadline))
        else:
            self._ack = None

    def _stepping_down(
        self, command: DeactivateLeader, trigger: Trigger, deadline: float | None, now: float
    ) -> None:
        if deadline is None or now < deadline:
            return  # the database said so, or a newer leader, or a shutdown: not a deadline
        self._log(
            "Warning",
            "Stepped down: {Reason}",
            Reason=(
                f"no renewal of the lease of epoch {command.epoch} succeeded within"
                f" {self._timing.step_down_after:g} s of being sent"
            ),
            NodeId=self._node.node_id,
            Epoch=command.epoch,
            Transition="deactivated",
            Monotonic=time.monotonic(),
        )

    def _maybe_finished(self) -> None:
        if (
            self._machine.state is State.STOPPED
            and len(self._queue) == 0
            and self._in_flight is None
            and self._dispatcher.live_epoch is None
        ):
            self._finished.set()

    # -- effects -----------------------------------------------------------------------------

    def _follow(self, command: Follow) -> None:
        seen = self._seen.get(command.epoch)
        if seen is None:
            seen = NodeInfo(node_id="", api_url=command.address, internal_url=command.address)
        self._leader, self._leader_epoch = seen, command.epoch
        self._log(
            "Information",
            "Following {LeaderId} at {LeaderUrl} (epoch {Epoch})",
            NodeId=self._node.node_id,
            LeaderId=seen.node_id,
            LeaderUrl=seen.api_url,
            Epoch=command.epoch,
        )

    async def _release(self, command: ReleaseLease) -> None:
        released = False
        with trio.move_on_after(self._timing.call_timeout):
            try:
                released = await self._calls.release(self._node.node_id, command.epoch)
            except MetadataError as exc:
                self._log(
                    "Warning",
                    "Could not release the lease of epoch {Epoch}: {Reason}",
                    NodeId=self._node.node_id,
                    Epoch=command.epoch,
                    Reason=str(exc),
                )
        self._log(
            "Information",
            "Released the lease of epoch {Epoch}"
            if released
            else "The lease of epoch {Epoch} was not released; it expires by itself",
            NodeId=self._node.node_id,
            Epoch=command.epoch,
        )

    def _die(self, reason: str) -> None:
        if self._terminated is not None:
            return
        self._terminated = reason
        self._ack = None
        self._log("Fatal", "Terminating: {Reason}", NodeId=self._node.node_id, Reason=reason)
        self._terminate(reason)
        # Only a test's terminate returns: stop everything that can still be stopped.
        self._finished.set()

    def _duty_failed(self, name: str, epoch: int, error: Exception) -> None:
        self._log(
            "Error",
            "Leader duty {Duty} failed in epoch {Epoch}: {Error}",
            NodeId=self._node.node_id,
            Duty=name,
            Epoch=epoch,
            Error=f"{type(error).__name__}: {error}",
        )
        if self._failure is None:
            self._failure = f"leader duty {name!r} failed in epoch {epoch}: {error}"
        self.shutdown()

    # -- the monitor -------------------------------------------------------------------------

    def _queue_depth(self, depth: int, capacity: int) -> None:
        if self._monitor is not None:
            self._monitor.queue_depth(depth, capacity)

    def _command_started(self, command: Command) -> None:
        self._in_flight = command
        self._watch("command", clock.now() + self._command_bound, self._machine.epoch)

    def _command_done(self, command: Command) -> None:
        self._in_flight = None
        self._watch("command", None, 0)
        self._maybe_finished()

    def _keep_watch(self) -> None:
        """Bring the monitor's leader deadlines in line with the machine's."""
        machine = self._machine
        epoch = self._led_epoch if self._led_epoch is not None else machine.epoch
        lead: float | None = None
        if machine.state in _LEADING and machine.leader_deadline is not None:
            lead = machine.leader_deadline + self._timing.deactivation_grace
        elif machine.state in _STOPPING and "lead" in self._watched:
            lead = self._watched["lead"][0]  # the kill deadline stands while stopping
        self._watch("lead", lead, epoch)
        self._watch("deactivate", machine.deactivation_deadline, epoch)

    def _watch(self, name: str, deadline: float | None, epoch: int) -> None:
        if self._monitor is None:
            return
        if deadline is None:
            if self._watched.pop(name, None) is not None:
                self._monitor.command_done(name)
        elif self._watched.get(name) != (deadline, epoch):
            self._watched[name] = (deadline, epoch)
            self._monitor.watch_command(name, clock.to_boottime(deadline), epoch)

    async def _alive(self) -> None:
        assert self._monitor is not None
        while True:
            self._monitor.loop_alive()
            await trio.sleep(self._alive_every)

    # -- the database ------------------------------------------------------------------------

    async def _lease_loop(self) -> None:
        timing, machine, me = self._timing, self._machine, self._node.node_id
        try:
            while machine.state is not State.STOPPED:
                epoch = machine.lease_epoch
                if epoch is not None or machine.state is not State.STOPPING:
                    sent_at = clock.now()
                    try:
                        with trio.fail_after(timing.call_timeout):
                            if epoch is None:
                                acquired = await self._calls.acquire(me, timing.lease)
                            else:
                                renewed = await self._calls.renew(me, epoch, timing.lease)
                    except (trio.TooSlowError, MetadataError) as exc:
                        self._database_trouble(exc)
                        self._feed(LeaseUnreachable())
                    else:
                        self._database_trouble(None)
                        if epoch is not None:
                            self._feed(
                                LeaseRenewed(epoch, sent_at) if renewed else LeaseLost(epoch)
                            )
                        elif acquired is not None:
                            self._feed(LeaseAcquired(acquired, sent_at))
                            if self.role == State.STOPPED.value and self._terminated is None:
                                # Granted as the node stopped: hand it back rather than make
                                # the others wait for it to expire.
                                await self._release(ReleaseLease(acquired))
                        else:
                            await self._discover()
                pause = timing.renew_every * (1 + timing.renew_jitter * self._rng.random())
                with trio.move_on_after(pause):
                    await self._finished.wait()
                if self._terminated is not None:
                    break
        finally:
            self._lease_loop_done.set()

    async def _discover(self) -> None:
        """Read who holds the lease, and tell the machine if it is another node."""
        try:
            with trio.fail_after(self._timing.call_timeout):
                row = await self._calls.current()
        except (trio.TooSlowError, MetadataError) as exc:
            self._database_trouble(exc)
            return
        if row is None or row.expired or row.node_id == self._node.node_id:
            return
        if row.api_url is None:
            return  # it has not advertised an address yet: nobody could be sent there
        info = NodeInfo(
            node_id=row.node_id,
            api_url=row.api_url,
            internal_url=row.internal_url if row.internal_url is not None else row.api_url,
        )
        self._seen = {e: n for e, n in self._seen.items() if e > row.epoch - 4}
        self._seen[row.epoch] = info
        self._feed(OtherLeaderSeen(row.node_id, row.api_url, row.epoch))

    def _database_trouble(self, error: BaseException | None) -> None:
        """Log when lease calls start failing and when they work again, not every failure."""
        if error is None:
            if self._db_trouble is not None:
                self._log(
                    "Information",
                    "The lease database answers again",
                    NodeId=self._node.node_id,
                )
            self._db_trouble = None
            return
        reason = (
            f"no answer within {self._timing.call_timeout:g} s"
            if isinstance(error, trio.TooSlowError)
            else str(error)
        )
        if self._db_trouble is None:
            self._log(
                "Warning",
                "The lease database does not answer: {Reason}",
                NodeId=self._node.node_id,
                Reason=reason,
            )
        self._db_trouble = reason

    async def _heartbeat_once(self) -> None:
        self._recorded_role = self.role
        self._role_changed = trio.Event()
        info = dataclasses.replace(self._node, state=self.role, version=self._version())
        try:
            with trio.fail_after(self._timing.call_timeout):
                await self._calls.heartbeat(info)
        except (trio.TooSlowError, MetadataError) as exc:
            if self._heartbeat_trouble is None:
                self._log(
                    "Warning",
                    "Could not record this node's heartbeat: {Reason}",
                    NodeId=self._node.node_id,
                    Reason=str(exc) or type(exc).__name__,
                )
            self._heartbeat_trouble = str(exc)
        else:
            self._heartbeat_trouble = None

    async def _heartbeat_loop(self) -> None:
        while True:
            with trio.move_on_after(self._timing.renew_every):
                await self._role_changed.wait()
            await self._heartbeat_once()

    def _version(self) -> str:
        if self._node.version:
            return self._node.version
        from seqfast import __version__

        return __version__
