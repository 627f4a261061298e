"""The node state machine: when this node leads, when it must stop, and when it must die.

Theory of operation
===================

`NodeMachine` is pure: no trio, no SQL, no `time`.  The runtime around it turns lease replies,
clock ticks, completions of its own commands and the shutdown signal into *triggers*, calls
`handle(trigger, now)` with the current monotonic time, and carries out the *commands* it gets
back, in order.  Everything that decides the node's role lives in this file; the runtime makes
no decision of its own.

Leadership rests on a lease row in the database (`cluster/lease.py`).  Each acquisition gives a
new, larger *epoch*; the leader keeps renewing it.  The database judges expiry by its own clock;
this machine judges the node's own lease conservatively, from the moment the last successful
acquisition or renewal was *sent*: leader duty ends at `sent_at + step_down_after` (D), whether
or not the database has answered anything since.  A leader that steps down gets until
`sent_at + monitor_kill_after` (K), and at most K − D from the order, to stop its leader-only
work; past that the machine orders `Terminate`, and the monitor kills the process on the same
deadline independently.  `timing.py` checks that K, with margin for clock-rate error, ends
before the database could hand the lease to someone else.

States and the main transitions (the table below has every one)::

    STARTING ─┬─ OtherLeaderSeen, LeaseAcquired too late to lead ──▶ FOLLOWER
              └─ LeaseAcquired ──▶ ACTIVATING ◀── LeaseAcquired ── FOLLOWER
    ACTIVATING ── ActivationDone ──▶ LEADER
    ACTIVATING, LEADER ── deadline, LeaseLost, newer epoch ──▶ DEACTIVATING
    DEACTIVATING ── DeactivationDone ─┬─ a newer lease is pending ──▶ ACTIVATING
                                      └─ otherwise ──────────────────▶ FOLLOWER
    STARTING, FOLLOWER ── ShutdownRequested ──▶ STOPPED
    ACTIVATING, LEADER, DEACTIVATING ── ShutdownRequested ──▶ STOPPING
    STOPPING ── DeactivationDone (ReleaseLease) ──▶ STOPPED
    DEACTIVATING, STOPPING ── deactivation deadline (Terminate) ──▶ STOPPED

Invariants (checked by `tests/cluster/test_machine_stateful.py` after every step):

- Never two leader activations live at once.  An activation of epoch e is live from
  `ActivateLeader(e)` until `DeactivationDone(e)`, and no `ActivateLeader` is issued while one
  is live.
- `ActivateLeader(e + 1)` only after `DeactivationDone(e)`: a lease acquired while the previous
  epoch is still deactivating waits (DEACTIVATING keeps it *pending*, and keeps renewing it),
  and is activated only if it is still inside its own step-down deadline when that is done.
- No leader duty after the step-down deadline: every trigger first lets time pass exactly as a
  `Tick` at the same instant would, so the first `handle` at or past
  `last successful sent_at + step_down_after` orders `DeactivateLeader` before anything else,
  the machine is ACTIVATING or LEADER after `handle(…, now)` only if `now` is before that
  deadline, and `is_leader_at(t)` is never true at or past it.
- `Terminate` is ordered exactly when a deactivation in progress reaches its deadline.
- Epochs only increase: `epoch` never goes down; `ActivateLeader` epochs strictly increase and
  each epoch is activated at most once; every command carries the epoch it is about.

Transitions live in one table, `TRANSITIONS`: (state, trigger type) → handler.  A pair missing
from the table is illegal.  The runtime delivers triggers from independent sources (the lease
loop, the dispatcher, the membership watcher, the clock), so stale, late and repeated triggers
are normal and are no-ops: a reply for an epoch the node no longer leads, a `Tick` in any state,
an `OtherLeaderSeen` with an epoch not newer than the newest seen, a second `ActivationDone`,
anything at all once STOPPED.  A trigger is *illegal* only where no correct runtime could
produce it, which means a bug worth stopping for; `handle` then raises `IllegalTrigger` and
leaves the machine exactly as it was:

- in STARTING, `LeaseRenewed` and `LeaseLost` (nothing was acquired yet) and `ActivationDone`
  and `DeactivationDone` (nothing was ordered yet);
- in any state, `LeaseRenewed`/`LeaseLost` for an epoch newer than any this node acquired,
  `ActivationDone`/`DeactivationDone` for an epoch newer than any activation/deactivation
  ordered (so `DeactivationDone` for the epoch being led), a lease reply sent after `now`, an
  epoch below 1, and `now` earlier than the previous call's.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeAlias

from seqfast.cluster.timing import Timing
from seqfast.errors import SeqfastError

__all__ = [
    "TRANSITIONS",
    "ActivateLeader",
    "ActivationDone",
    "Command",
    "DeactivateLeader",
    "DeactivationDone",
    "Follow",
    "IllegalTrigger",
    "LeaseAcquired",
    "LeaseLost",
    "LeaseRenewed",
    "LeaseUnreachable",
    "NodeMachine",
    "OtherLeaderSeen",
    "ReleaseLease",
    "ShutdownRequested",
    "State",
    "Terminate",
    "Tick",
    "Trigger",
]


class State(enum.Enum):
    STARTING = "starting"
    """No lease reply and no leader seen yet."""
    FOLLOWER = "follower"
    """Another node leads (or none is known); this node tries to acquire the lease."""
    ACTIVATING = "activating"
    """This node holds the lease; its leader-only work is starting."""
    LEADER = "leader"
    """This node holds the lease and its leader-only work runs."""
    DEACTIVATING = "deactivating"
    """Leader-only work is stopping; a newly acquired lease may wait for it."""
    STOPPING = "stopping"
    """Shutting down: leader-only work is stopping, then the lease is released."""
    STOPPED = "stopped"
    """Final: shut down, or terminated."""


# ---------------------------------------------------------------------------------------------
# Triggers: what happened.  Frozen so that the runtime can queue and repeat them safely.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeaseAcquired:
    """An acquisition succeeded with a new `epoch`; the statement was sent at `sent_at`."""

    epoch: int
    sent_at: float


@dataclass(frozen=True, slots=True)
class LeaseRenewed:
    """A renewal of `epoch`, sent at `sent_at`, succeeded."""

    epoch: int
    sent_at: float


@dataclass(frozen=True, slots=True)
class LeaseLost:
    """The database rejected a renewal of `epoch`: it expired, or another node holds the lease."""

    epoch: int


@dataclass(frozen=True, slots=True)
class LeaseUnreachable:
    """A lease call failed or timed out.  Not itself a loss: the deadline decides that."""


@dataclass(frozen=True, slots=True)
class OtherLeaderSeen:
    """Node `node_id`, reachable at `address`, holds the lease with `epoch`."""

    node_id: str
    address: str
    epoch: int


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed (`now` is the argument of `handle`)."""


@dataclass(frozen=True, slots=True)
class ActivationDone:
    """The leader-only work of `epoch` is running."""

    epoch: int


@dataclass(frozen=True, slots=True)
class DeactivationDone:
    """The leader-only work of `epoch` has stopped, all of it."""

    epoch: int


@dataclass(frozen=True, slots=True)
class ShutdownRequested:
    """The process was asked to stop (signal, `seqfast serve` exit)."""


Trigger: TypeAlias = (
    LeaseAcquired
    | LeaseRenewed
    | LeaseLost
    | LeaseUnreachable
    | OtherLeaderSeen
    | Tick
    | ActivationDone
    | DeactivationDone
    | ShutdownRequested
)

# ---------------------------------------------------------------------------------------------
# Commands: what the runtime must do.  Each carries the epoch it is about, so that a command
# that arrives after the world moved on can be recognised as stale.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActivateLeader:
    """Start the leader-only work of `epoch`; it must not act at or after `deadline` unless
    renewals have moved `NodeMachine.leader_deadline` later."""

    epoch: int
    deadline: float


@dataclass(frozen=True, slots=True)
class DeactivateLeader:
    """Stop the leader-only work of `epoch` (including an activation still starting), and
    report `DeactivationDone` before `deadline`, else the process is killed."""

    epoch: int
    deadline: float


@dataclass(frozen=True, slots=True)
class Follow:
    """Replicate from, and proxy leader-only calls to, the leader of `epoch` at `address`."""

    address: str
    epoch: int


@dataclass(frozen=True, slots=True)
class ReleaseLease:
    """End the lease of `epoch` now, so that another node can take over without waiting."""

    epoch: int


@dataclass(frozen=True, slots=True)
class Terminate:
    """Kill the process at once: leader-only work may still be running past its safe end."""

    reason: str


Command: TypeAlias = ActivateLeader | DeactivateLeader | Follow | ReleaseLease | Terminate


class IllegalTrigger(SeqfastError):
    """A trigger no correct runtime can produce in this state; the machine did not change."""

    def __init__(self, state: State, trigger: Trigger, why: str) -> None:
        super().__init__(f"{trigger!r} cannot happen in state {state.name}: {why}.")
        self.state = state
        self.trigger = trigger


# ---------------------------------------------------------------------------------------------
# The machine's variables, and the handlers that change them.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Lease:
    epoch: int
    sent_at: float  # of the newest successful acquisition or renewal of `epoch`


@dataclass(frozen=True, slots=True)
class _Leader:
    node_id: str
    address: str
    epoch: int


@dataclass(slots=True)
class _Vars:
    """Everything the machine knows.  Copied before each trigger so that an illegal one can be
    undone whole."""

    timing: Timing
    state: State = State.STARTING
    now: float = -math.inf
    epoch: int = 0  # newest epoch seen, this node's or another's
    acquired: int = 0  # newest epoch this node was granted
    activated: int = 0  # newest epoch an ActivateLeader was ordered for
    deactivated: int = 0  # newest epoch a DeactivateLeader was ordered for
    active: int | None = None  # the live activation: ordered, DeactivationDone not yet seen
    # ACTIVATING, LEADER: the lease being led.  DEACTIVATING: a newer lease waiting for the
    # deactivation, or None.  STOPPING: the lease to release at the end, or None.
    lease: _Lease | None = None
    deactivation_deadline: float | None = None  # DEACTIVATING, STOPPING
    leader: _Leader | None = None  # the other node holding `epoch`, if that is who holds it


Handler: TypeAlias = Callable[[_Vars, Any, float], list[Command]]


def _ignore(v: _Vars, t: Trigger, now: float) -> list[Command]:
    return []


def _led_lease(v: _Vars) -> _Lease:
    # ACTIVATING and LEADER always have the lease they lead; a failure here is a bug in this file.
    assert v.lease is not None and v.lease.epoch == v.active, v
    return v.lease


def _fresh(v: _Vars, lease: _Lease, now: float) -> bool:
    """Whether leader duty under `lease` may still go on (or start) at `now`."""
    return now < lease.sent_at + v.timing.step_down_after


def _activate(v: _Vars, lease: _Lease) -> list[Command]:
    v.state, v.active, v.activated, v.lease = State.ACTIVATING, lease.epoch, lease.epoch, lease
    return [ActivateLeader(lease.epoch, lease.sent_at + v.timing.step_down_after)]


def _step_down(v: _Vars, now: float, into: State) -> list[Command]:
    """Order the deactivation of the live epoch (ACTIVATING or LEADER).

    The deadline is K after the last successful send, the bound that keeps the node's leader
    work inside the database's lease, and never more than the grace K − D from now, so that
    a leader that loses its lease early stops early too.
    """
    led = _led_lease(v)
    timing = v.timing
    deadline = min(led.sent_at + timing.monitor_kill_after, now + timing.deactivation_grace)
    v.state, v.deactivated, v.deactivation_deadline = into, led.epoch, deadline
    if into is State.DEACTIVATING:
        v.lease = None  # never led again: an epoch is activated at most once
    commands: list[Command] = [DeactivateLeader(led.epoch, deadline)]
    if now >= deadline:  # time jumped past K (a stalled event loop): too late to stop gently
        commands += _terminate(v)
    return commands


def _terminate(v: _Vars) -> list[Command]:
    reason = (
        f"the deactivation of epoch {v.deactivated} did not finish by its deadline"
        f" {v.deactivation_deadline:.3f}"
    )
    v.state, v.lease, v.deactivation_deadline = State.STOPPED, None, None
    return [Terminate(reason)]


def _newer_leader(v: _Vars, t: OtherLeaderSeen) -> bool:
    """Record `t` if it is news.  Whoever holds a newer epoch, every lease of ours is over."""
    if t.epoch <= v.epoch:
        return False
    v.epoch, v.leader = t.epoch, _Leader(t.node_id, t.address, t.epoch)
    return True


def _newer_lease(v: _Vars, t: LeaseAcquired) -> _Lease | None:
    """Record `t` if it is news and return its lease; an older epoch was superseded."""
    if t.epoch <= v.epoch:
        return None
    v.epoch, v.leader = t.epoch, None
    return _Lease(t.epoch, t.sent_at)


# STARTING, FOLLOWER ---------------------------------------------------------------------------


def _acquire_idle(v: _Vars, t: LeaseAcquired, now: float) -> list[Command]:
    # Even a reply too late to lead with ends STARTING: replies about its epoch may follow.
    v.state = State.FOLLOWER
    lease = _newer_lease(v, t)
    if lease is None or not _fresh(v, lease, now):
        return []
    return _activate(v, lease)


def _follow(v: _Vars, t: OtherLeaderSeen, now: float) -> list[Command]:
    if not _newer_leader(v, t):
        return []
    v.state = State.FOLLOWER
    return [Follow(t.address, t.epoch)]


def _stop_idle(v: _Vars, t: ShutdownRequested, now: float) -> list[Command]:
    v.state = State.STOPPED
    return []


# ACTIVATING, LEADER ---------------------------------------------------------------------------


def _tick_leading(v: _Vars, t: Tick, now: float) -> list[Command]:
    if _fresh(v, _led_lease(v), now):
        return []
    return _step_down(v, now, State.DEACTIVATING)


def _supersede(v: _Vars, t: LeaseAcquired, now: float) -> list[Command]:
    # A newer epoch for this node means the database let the led one expire: stop leading it,
    # and keep the new lease until that has finished.
    if t.epoch <= v.epoch:
        return []
    return _step_down(v, now, State.DEACTIVATING) + _keep_lease(v, t, now)


def _renew(v: _Vars, t: LeaseRenewed, now: float) -> list[Command]:
    # Renewals of the lease kept (led, pending or to be released) move its deadline; replies
    # may come back out of order, so only a later send counts.
    if v.lease is not None and v.lease.epoch == t.epoch and t.sent_at > v.lease.sent_at:
        v.lease = _Lease(t.epoch, t.sent_at)
    return []


def _lose_leading(v: _Vars, t: LeaseLost, now: float) -> list[Command]:
    if t.epoch != v.active:
        return []  # an older epoch's late reply
    return _step_down(v, now, State.DEACTIVATING)


def _other_leader_leading(v: _Vars, t: OtherLeaderSeen, now: float) -> list[Command]:
    # Following starts once the deactivation is done, so that the two roles never overlap.
    if not _newer_leader(v, t):
        return []
    return _step_down(v, now, State.DEACTIVATING)


def _activation_done(v: _Vars, t: ActivationDone, now: float) -> list[Command]:
    if t.epoch == v.active:
        v.state = State.LEADER
    return []


def _shutdown_leading(v: _Vars, t: ShutdownRequested, now: float) -> list[Command]:
    return _step_down(v, now, State.STOPPING)


# DEACTIVATING, STOPPING -----------------------------------------------------------------------


def _tick_deactivating(v: _Vars, t: Tick, now: float) -> list[Command]:
    assert v.deactivation_deadline is not None, v
    return _terminate(v) if now >= v.deactivation_deadline else []


def _keep_lease(v: _Vars, t: LeaseAcquired, now: float) -> list[Command]:
    # Kept even if already too old to lead with: a later renewal may make it usable again
    # (DEACTIVATING), and a stopping node releases it rather than leave it to expire.
    lease = _newer_lease(v, t)
    if lease is not None:
        v.lease = lease
    return []


def _forget_lease(v: _Vars, t: LeaseLost, now: float) -> list[Command]:
    if v.lease is not None and v.lease.epoch == t.epoch:
        v.lease = None
    return []


def _note_other_leader(v: _Vars, t: OtherLeaderSeen, now: float) -> list[Command]:
    # A pending lease will not be led, and a lease to release is no longer ours.
    if _newer_leader(v, t):
        v.lease = None
    return []


def _deactivation_done(v: _Vars, t: DeactivationDone, now: float) -> list[Command]:
    if t.epoch != v.active:
        return []  # a repeat for an earlier epoch
    v.active, v.deactivation_deadline = None, None
    if v.lease is not None and _fresh(v, v.lease, now):
        return _activate(v, v.lease)
    v.state, v.lease = State.FOLLOWER, None  # a follower holds no lease: it acquires anew
    return [] if v.leader is None else [Follow(v.leader.address, v.leader.epoch)]


def _shutdown_deactivating(v: _Vars, t: ShutdownRequested, now: float) -> list[Command]:
    v.state = State.STOPPING  # the pending lease, if any, is released at the end
    return []


def _stopped(v: _Vars, t: DeactivationDone, now: float) -> list[Command]:
    if t.epoch != v.active:
        return []
    release: list[Command] = [] if v.lease is None else [ReleaseLease(v.lease.epoch)]
    v.state, v.active, v.lease, v.deactivation_deadline = State.STOPPED, None, None, None
    return release


# ---------------------------------------------------------------------------------------------
# The table.  Every legal (state, trigger type) pair, and nothing else.
# ---------------------------------------------------------------------------------------------

_S = State

TRANSITIONS: Mapping[tuple[State, type[Trigger]], Handler] = MappingProxyType(
    {
        # STARTING: nothing acquired or ordered yet, so no renewal, loss or completion.
        (_S.STARTING, LeaseAcquired): _acquire_idle,
        (_S.STARTING, LeaseUnreachable): _ignore,
        (_S.STARTING, OtherLeaderSeen): _follow,
        (_S.STARTING, Tick): _ignore,
        (_S.STARTING, ShutdownRequested): _stop_idle,
        # FOLLOWER: lease replies and completions are those of an epoch led before.
        (_S.FOLLOWER, LeaseAcquired): _acquire_idle,
        (_S.FOLLOWER, LeaseRenewed): _ignore,
        (_S.FOLLOWER, LeaseLost): _ignore,
        (_S.FOLLOWER, LeaseUnreachable): _ignore,
        (_S.FOLLOWER, OtherLeaderSeen): _follow,
        (_S.FOLLOWER, Tick): _ignore,
        (_S.FOLLOWER, ActivationDone): _ignore,
        (_S.FOLLOWER, DeactivationDone): _ignore,
        (_S.FOLLOWER, ShutdownRequested): _stop_idle,
        # ACTIVATING: leader work is starting; losing the lease stops it even unfinished.
        (_S.ACTIVATING, LeaseAcquired): _supersede,
        (_S.ACTIVATING, LeaseRenewed): _renew,
        (_S.ACTIVATING, LeaseLost): _lose_leading,
        (_S.ACTIVATING, LeaseUnreachable): _ignore,
        (_S.ACTIVATING, OtherLeaderSeen): _other_leader_leading,
        (_S.ACTIVATING, Tick): _tick_leading,
        (_S.ACTIVATING, ActivationDone): _activation_done,
        (_S.ACTIVATING, DeactivationDone): _ignore,
        (_S.ACTIVATING, ShutdownRequested): _shutdown_leading,
        # LEADER
        (_S.LEADER, LeaseAcquired): _supersede,
        (_S.LEADER, LeaseRenewed): _renew,
        (_S.LEADER, LeaseLost): _lose_leading,
        (_S.LEADER, LeaseUnreachable): _ignore,
        (_S.LEADER, OtherLeaderSeen): _other_leader_leading,
        (_S.LEADER, Tick): _tick_leading,
        (_S.LEADER, ActivationDone): _ignore,
        (_S.LEADER, DeactivationDone): _ignore,
        (_S.LEADER, ShutdownRequested): _shutdown_leading,
        # DEACTIVATING: a new lease waits for DeactivationDone; an overrun terminates.
        (_S.DEACTIVATING, LeaseAcquired): _keep_lease,
        (_S.DEACTIVATING, LeaseRenewed): _renew,
        (_S.DEACTIVATING, LeaseLost): _forget_lease,
        (_S.DEACTIVATING, LeaseUnreachable): _ignore,
        (_S.DEACTIVATING, OtherLeaderSeen): _note_other_leader,
        (_S.DEACTIVATING, Tick): _tick_deactivating,
        (_S.DEACTIVATING, ActivationDone): _ignore,
        (_S.DEACTIVATING, DeactivationDone): _deactivation_done,
        (_S.DEACTIVATING, ShutdownRequested): _shutdown_deactivating,
        # STOPPING: as DEACTIVATING, but the end is ReleaseLease and STOPPED.
        (_S.STOPPING, LeaseAcquired): _keep_lease,
        (_S.STOPPING, LeaseRenewed): _renew,
        (_S.STOPPING, LeaseLost): _forget_lease,
        (_S.STOPPING, LeaseUnreachable): _ignore,
        (_S.STOPPING, OtherLeaderSeen): _note_other_leader,
        (_S.STOPPING, Tick): _tick_deactivating,
        (_S.STOPPING, ActivationDone): _ignore,
        (_S.STOPPING, DeactivationDone): _stopped,
        (_S.STOPPING, ShutdownRequested): _ignore,
        # STOPPED: late replies and completions of a node that is gone.
        (_S.STOPPED, LeaseAcquired): _ignore,
        (_S.STOPPED, LeaseRenewed): _ignore,
        (_S.STOPPED, LeaseLost): _ignore,
        (_S.STOPPED, LeaseUnreachable): _ignore,
        (_S.STOPPED, OtherLeaderSeen): _ignore,
        (_S.STOPPED, Tick): _ignore,
        (_S.STOPPED, ActivationDone): _ignore,
        (_S.STOPPED, DeactivationDone): _ignore,
        (_S.STOPPED, ShutdownRequested): _ignore,
    }
)


def _impossible(v: _Vars, t: Trigger, now: float) -> str | None:
    """Why `t` cannot come from a correct runtime in any state, or None."""
    if now < v.now:
        return f"time went backwards from {v.now!r} to {now!r}"
    if isinstance(t, LeaseAcquired | LeaseRenewed) and t.sent_at > now:
        return f"it was sent at {t.sent_at!r}, after now ({now!r})"
    if isinstance(t, OtherLeaderSeen | LeaseAcquired | LeaseRenewed | LeaseLost) and t.epoch < 1:
        return "epochs start at 1"
    if isinstance(t, LeaseRenewed | LeaseLost) and t.epoch > v.acquired:
        return f"this node never acquired epoch {t.epoch} (newest: {v.acquired})"
    if isinstance(t, ActivationDone) and t.epoch > v.activated:
        return f"no activation of epoch {t.epoch} was ordered (newest: {v.activated})"
    if isinstance(t, DeactivationDone) and t.epoch > v.deactivated:
        return f"no deactivation of epoch {t.epoch} was ordered (newest: {v.deactivated})"
    return None


# ---------------------------------------------------------------------------------------------
# The public face.
# ---------------------------------------------------------------------------------------------


class NodeMachine:
    """One node's role in the cluster, as a function of the triggers it was given.

    Args:
        timing: validated here; a combination that cannot keep one leader raises `TimingError`.
    """

    def __init__(self, timing: Timing) -> None:
        timing.validate()
        self._v = _Vars(timing)

    def handle(self, trigger: Trigger, now: float) -> list[Command]:
        """Apply `trigger` at monotonic time `now`; return the commands to carry out, in order.

        Time passes first, exactly as a `Tick` at `now` would (so a leader past its deadline
        steps down before anything else is considered), then the trigger's transition runs.

        Raises:
            IllegalTrigger: the trigger is impossible here; the machine is unchanged.
        """
        before = dataclasses.replace(self._v)
        v = self._v
        try:
            why = _impossible(v, trigger, now)
            if why is not None:
                raise IllegalTrigger(v.state, trigger, why)
            v.now = now
            if isinstance(trigger, LeaseAcquired):
                v.acquired = max(v.acquired, trigger.epoch)
            commands = TRANSITIONS[(v.state, Tick)](v, Tick(), now)
            if isinstance(trigger, Tick):
                return commands
            handler = TRANSITIONS.get((v.state, type(trigger)))
            if handler is None:
                raise IllegalTrigger(v.state, trigger, "no transition is defined for it")
            return commands + handler(v, trigger, now)
        except BaseException:
            self._v = before  # an illegal trigger (or a bug here) must not leave half a step
            raise

    @property
    def timing(self) -> Timing:
        return self._v.timing

    @property
    def state(self) -> State:
        """The state after the last `handle`.  Use `is_leader_at` for a question about time."""
        return self._v.state

    @property
    def epoch(self) -> int:
        """The newest epoch seen, acquired by this node or held by another (0: none yet)."""
        return self._v.epoch

    @property
    def leader_deadline(self) -> float | None:
        """When leader duty must have ended, unless a renewal succeeds first: set while
        ACTIVATING or LEADER, else None."""
        v = self._v
        if v.state is not State.ACTIVATING and v.state is not State.LEADER:
            return None
        return _led_lease(v).sent_at + v.timing.step_down_after

    @property
    def deactivation_deadline(self) -> float | None:
        """When the deactivation in progress must have finished (DEACTIVATING, STOPPING)."""
        return self._v.deactivation_deadline

    @property
    def lease_epoch(self) -> int | None:
        """The epoch whose lease the lease loop should keep renewing, or None.

        None while STARTING, FOLLOWER or DEACTIVATING means: try to acquire.  A lease acquired
        during a deactivation is renewed while it waits; a stopping leader's lease is renewed
        until it is released.
        """
        return None if self._v.lease is None else self._v.lease.epoch

    def is_leader_at(self, now: float) -> bool:
        """Whether this node is the working leader at `now`: activation finished, and `now`
        before the step-down deadline (whatever `state` says, since it is as of the last
        `handle`)."""
        deadline = self.leader_deadline
        return self._v.state is State.LEADER and deadline is not None and now < deadline

    def __repr__(self) -> str:
        v = self._v
        return f"<NodeMachine {v.state.name} epoch={v.epoch} active={v.active} lease={v.lease}>"
