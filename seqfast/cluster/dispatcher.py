"""The dispatcher: carries out the node state machine's commands, one at a time, in order.

`ActivateLeader(epoch, deadline)` opens the *leader nursery* of that epoch inside a cancel
scope and starts every registered leader duty in it (the committer, retention, the query
coordinator, the replication server: whatever the application registered with
`add_duty`).  The scope's deadline is the lease's local deadline, moved on by every renewal
(`extend`), so trio itself cancels the duties at the instant the lease can no longer be trusted,
even before the machine has been told that time passed.  `DeactivateLeader` cancels the scope
and reports `DeactivationDone` only when every task in the nursery has returned: a duty that
ignores cancellation (blocked in a worker thread, say) holds it back, the machine's deactivation
deadline passes, and the node is terminated.  `Follow` and `ReleaseLease` are handed to the
runtime, which owns the leader's address and the database; `Terminate` too, though the runtime
carries it out the moment the machine orders it rather than queueing it.

Commands are executed in the order the machine gave them, never concurrently: the dispatcher
only *starts* long work (an activation, the wait for a deactivation) in tasks of its own, so that
the next command is never held up behind it.

Every activation and deactivation is logged as a self-log event ("Leader duties started for
epoch {Epoch}", "Leader duties stopped for epoch {Epoch}") with `NodeId`, `Epoch`, `Transition`
and `Monotonic` (`time.monotonic()`, comparable between processes of one machine).  "started" is
logged before the first duty can run and "stopped" after the last has returned, so that the
interval between the two covers every instant at which leader work could run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from seqfast.cluster.commands import CommandQueue
from seqfast.cluster.machine import (
    ActivateLeader,
    ActivationDone,
    Command,
    DeactivateLeader,
    DeactivationDone,
    Follow,
    ReleaseLease,
    Terminate,
    Trigger,
)

__all__ = ["Dispatcher", "LeaderContext", "LeaderDuty"]


@dataclass(frozen=True)
class LeaderContext:
    """What a leader duty knows about the leadership it runs under."""

    epoch: int
    """The epoch this node leads under: pass it to every fenced write (`Lease.commit_fenced`)."""
    deadline: Callable[[], float]
    """The lease's local deadline on trio's clock, moved on by each renewal: leader work must not
    act at or after it (the duty is cancelled then anyway)."""


LeaderDuty = Callable[[LeaderContext], Awaitable[None]]


@dataclass(eq=False)
class _Activation:
    epoch: int
    scope: trio.CancelScope
    stopped: trio.Event = field(default_factory=trio.Event)
    deactivating: bool = False


class Dispatcher:
    """Executes commands from `queue` (see the module docstring).

    The callbacks connect it to the runtime: `report` feeds a trigger back to the machine;
    `follow`, `release` and `terminate` carry out those commands; `duty_failed` hears of a duty
    that raised; `on_start` / `on_done` bracket each command (for the monitor); `log` is the
    self-log, `log(level, template, **properties)`.
    """

    def __init__(
        self,
        queue: CommandQueue,
        *,
        node_id: str,
        log: Callable[..., None],
        report: Callable[[Trigger], None],
        follow: Callable[[Follow], None],
        release: Callable[[ReleaseLease], Awaitable[None]],
        terminate: Callable[[str], None],
        duty_failed: Callable[[str, int, Exception], None],
        on_start: Callable[[Command], None] | None = None,
        on_done: Callable[[Command], None] | None = None,
    ) -> None:
        self._queue = queue
        self._node_id = node_id
        self._log = log
        self._report = report
        self._follow = follow
        self._release = release
        self._terminate = terminate
        self._duty_failed = duty_failed
        self._on_start = on_start
        self._on_done = on_done
        self._duties: dict[str, LeaderDuty] = {}
        self._live: _Activation | None = None
        self._latest: tuple[int, float] = (0, -math.inf)  # the newest deadline, by epoch
        self._nursery: trio.Nursery | None = None

    def add_duty(self, name: str, duty: LeaderDuty) -> None:
        """Register a leader duty; it starts with the next activation."""
        if not name or name in self._duties:
            raise ValueError(f"leader duty names must be unique and non-empty, not {name!r}")
        self._duties[name] = duty

    @property
    def duties(self) -> tuple[str, ...]:
        return tuple(self._duties)

    @property
    def live_epoch(self) -> int | None:
        """The epoch whose leader nursery exists (starting, running or stopping), or None."""
        return None if self._live is None else self._live.epoch

    def extend(self, epoch: int, deadline: float) -> None:
        """Move the leader nursery's deadline of `epoch` (a renewal succeeded)."""
        # Kept for an activation of `epoch` still in the queue, whose command carries the
        # deadline as it was when the machine ordered it.
        self._latest = (epoch, deadline)
        live = self._live
        if live is not None and live.epoch == epoch and not live.deactivating:
            live.scope.deadline = deadline

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Take and execute commands until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            while True:
                command = await self._queue.get()
                if self._on_start is not None:
                    self._on_start(command)
                await self._execute(command, nursery)
                if self._on_done is not None:
                    self._on_done(command)

    async def _execute(self, command: Command, nursery: trio.Nursery) -> None:
        match command:
            case ActivateLeader(epoch=epoch, deadline=deadline):
                if self._live is not None:
                    # The machine activates only after DeactivationDone, which is reported only
                    # once the previous nursery is gone: two would be a bug, and a dangerous one.
                    raise RuntimeError(
                        f"activation of epoch {epoch} ordered while epoch {self._live.epoch}"
                        " still has a leader nursery"
                    )
                if self._latest[0] == epoch:
                    deadline = max(deadline, self._latest[1])
                self._live = _Activation(epoch, trio.CancelScope(deadline=deadline))
                nursery.start_soon(self._lead, self._live, name=f"leader epoch {epoch}")
            case DeactivateLeader(epoch=epoch):
                live = self._live
                if live is None or live.epoch != epoch:
                    self._report(DeactivationDone(epoch))  # nothing of that epoch runs
                    return
                live.deactivating = True
                live.scope.cancel()
                nursery.start_soon(self._finish, live, name=f"deactivation epoch {epoch}")
            case Follow():
                self._follow(command)
            case ReleaseLease():
                await self._release(command)
            case Terminate(reason=reason):
                self._terminate(reason)

    async def _lead(self, activation: _Activation) -> None:
        epoch = activation.epoch
        context = LeaderContext(epoch, lambda: activation.scope.deadline)
        self._transition(epoch, "activated")
        try:
            with activation.scope:
                async with trio.open_nursery() as duties:
                    for name, duty in self._duties.items():
                        duties.start_soon(self._guard, name, duty, context, name=f"leader {name}")
                    self._report(ActivationDone(epoch))
                    await trio.sleep_forever()  # the nursery lives until the scope is cancelled
        finally:
            self._transition(epoch, "deactivated")
            activation.stopped.set()

    async def _guard(self, name: str, duty: LeaderDuty, context: LeaderContext) -> None:
        try:
            await duty(context)
        except Exception as exc:
            # Cancellation is a BaseException and passes; anything else is the duty's failure,
            # which the runtime answers (it must not take the other duties down unannounced).
            self._duty_failed(name, context.epoch, exc)

    async def _finish(self, activation: _Activation) -> None:
        await activation.stopped.wait()
        if self._live is activation:
            self._live = None
        self._report(DeactivationDone(activation.epoch))

    def _transition(self, epoch: int, transition: str) -> None:
        verb = "started" if transition == "activated" else "stopped"
        properties: dict[str, Any] = {
            "NodeId": self._node_id,
            "Epoch": epoch,
            "Transition": transition,
            "Monotonic": time.monotonic(),
        }
        self._log("Information", f"Leader duties {verb} for epoch {{Epoch}}", **properties)
