"""The node state machine against a model of its environment, over random trigger sequences.

The environment is a database handing out increasing epochs (to this node, to other nodes, or
lost on the way), a lease loop whose replies come late, twice, out of order or not at all, a
dispatcher whose activations and deactivations finish promptly, late, twice or never, a clock
that jumps arbitrarily (exactly onto each deadline too, and sometimes without a `Tick`, so that
the next trigger of any kind is the first to see the new time), and a supervisor that restarts
a stopped node.  Any trigger a correct runtime could deliver is fair game: the machine's safety
must not depend on the runtime being polite.  Every step checks the commands it produced, and
then the machine's state, against the invariants in `seqfast/cluster/machine.py`.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Sequence
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from seqfast.cluster.machine import (
    ActivateLeader,
    ActivationDone,
    Command,
    DeactivateLeader,
    DeactivationDone,
    Follow,
    IllegalTrigger,
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
from seqfast.cluster.timing import TEST

D = TEST.step_down_after
K = TEST.monitor_kill_after
G = TEST.deactivation_grace
LEADING = (State.ACTIVATING, State.LEADER)

# Times are whole multiples of 1/32 s, which binary floating point adds exactly: a sum of steps
# then lands exactly on a deadline often, as well as on either side of it.  Integer draws are
# also the cheapest that hypothesis makes, which leaves room for more sequences.
TICK = 1 / 32


def seconds(max_seconds: float) -> st.SearchStrategy[float]:
    return st.integers(0, int(max_seconds / TICK)).map(lambda n: n * TICK)


# Time steps are usually shorter than the deactivation grace, so that completions can beat
# their deadlines, and sometimes span several leases.  Lease replies are usually sent within
# the call timeout before they are delivered, sometimes (a reply stuck in a thread) far earlier.
steps = st.one_of(seconds(G), seconds(2 * TEST.lease))
send_delays = st.one_of(seconds(TEST.call_timeout), seconds(2 * K))
other_nodes = st.sampled_from(["b", "c", "d"])
picks = st.integers(0, 255)  # an index into earlier epochs or triggers, newest first

T = TypeVar("T")


def newest(items: Sequence[T], pick: int) -> T:
    return items[-1 - pick % len(items)]


def address(node_id: str) -> str:
    return f"http://{node_id}:5341"


class NodeEnvironment(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 100.0
        self.db_epoch = 0  # the database's epoch sequence
        self.others: dict[int, OtherLeaderSeen] = {}  # epochs held by other nodes
        self.start_process()

    def start_process(self) -> None:
        """A new node process: a new machine, knowing nothing yet; the database remembers."""
        self.m = NodeMachine(TEST)
        self.m.handle(Tick(), self.now)  # the machine's clock starts where the model's does
        self.seen_at = self.now  # the time of the newest trigger the machine was given
        self.delivered: list[Trigger] = []  # every legal trigger handed over, for repeats
        self.granted: set[int] = set()  # epochs this process was told it acquired
        self.lost: set[int] = set()  # epochs reported lost
        self.newest_seen = 0  # the newest epoch delivered in any trigger
        self.last_sent: dict[int, float] = {}  # epoch → newest send of a delivered success
        self.activated: list[int] = []  # ActivateLeader epochs in order
        self.activation_done: set[int] = set()
        self.orders: dict[int, float] = {}  # DeactivateLeader epoch → deadline
        self.deactivation_done: set[int] = set()
        self.live: set[int] = set()  # activated, DeactivationDone not yet delivered
        self.followed: list[int] = []
        self.shutdown_requested = False
        self.terminated = False
        self.released: list[int] = []
        self.release_due: int | None = None  # the lease a stopping node must release

    # -- delivering a trigger and checking what comes back -------------------------------------

    def deliver(self, trigger: Trigger) -> list[Command]:
        before_state, before_epoch = self.m.state, self.m.epoch
        leader_deadline = self.m.leader_deadline
        leading = self.activated[-1] if before_state in LEADING else None
        if leader_deadline is not None and self.now >= leader_deadline:
            leading = None  # it steps down before it looks at the trigger
        pending = self.m.lease_epoch if before_state is State.DEACTIVATING else None
        sent_before = dict(self.last_sent)
        done_before = set(self.deactivation_done)
        was_terminated = self.terminated

        commands = self.m.handle(trigger, self.now)
        self.seen_at = self.now
        self.delivered.append(trigger)
        self.note(trigger)
        # A completion happened before the machine heard of it, so it counts for the commands.
        if isinstance(trigger, DeactivationDone):
            self.deactivation_done.add(trigger.epoch)
            self.live.discard(trigger.epoch)
        if isinstance(trigger, ActivationDone):
            self.activation_done.add(trigger.epoch)

        if before_state is State.STOPPED:
            assert commands == [], "a stopped node ordered something"
        if leader_deadline is not None and self.now >= leader_deadline:
            # Whatever the trigger, a leader past its deadline is told to stop first.
            assert commands and isinstance(commands[0], DeactivateLeader), commands
        if leading is not None and self.must_stop_leading(trigger, leading, before_epoch):
            # A leader told that its lease is over (or to shut down) is told to stop at once.
            stop = [c for c in commands if isinstance(c, DeactivateLeader) and c.epoch == leading]
            assert stop, f"{trigger} left epoch {leading} leading: {commands}"
        for command in commands:
            self.check(command, sent_before)
        held = leading if leading is not None else pending
        self.track_release(trigger, before_state, before_epoch, held, commands)

        # Terminate exactly when a deactivation in progress reached its deadline (the machine
        # lets time pass before it looks at the trigger, so one delivered now is too late).
        overdue = [e for e, dl in self.orders.items() if e not in done_before and self.now >= dl]
        if not was_terminated:
            assert any(isinstance(c, Terminate) for c in commands) == bool(overdue), (
                overdue,
                commands,
            )
        assert self.m.epoch >= before_epoch
        return commands

    def track_release(
        self,
        trigger: Trigger,
        before: State,
        newest_before: int,
        held: int | None,
        commands: list[Command],
    ) -> None:
        """A node that stops while leading, or waiting to, releases the lease it still holds:
        the one it led or waited with, or a newer one acquired meanwhile; not one it lost, one
        that another node's newer epoch superseded, or one it gave up when it stepped down."""
        if isinstance(trigger, ShutdownRequested) and before in (*LEADING, State.DEACTIVATING):
            self.release_due = held
        elif before is State.STOPPING:
            if isinstance(trigger, LeaseAcquired) and trigger.epoch > newest_before:
                self.release_due = trigger.epoch
            elif (isinstance(trigger, LeaseLost) and trigger.epoch == self.release_due) or (
                isinstance(trigger, OtherLeaderSeen) and trigger.epoch > newest_before
            ):
                self.release_due = None
            elif self.m.state is State.STOPPED and not self.terminated:
                released = [c for c in commands if isinstance(c, ReleaseLease)]
                due = self.release_due
                assert released == ([] if due is None else [ReleaseLease(due)]), commands

    @staticmethod
    def must_stop_leading(trigger: Trigger, leading: int, newest_before: int) -> bool:
        """Whether `trigger` tells a leader of epoch `leading` that its lease is over."""
        if isinstance(trigger, LeaseLost):
            return trigger.epoch == leading
        if isinstance(trigger, LeaseAcquired | OtherLeaderSeen):
            return trigger.epoch > newest_before
        return isinstance(trigger, ShutdownRequested)

    def note(self, trigger: Trigger) -> None:
        if isinstance(trigger, LeaseAcquired):
            self.granted.add(trigger.epoch)
        if isinstance(trigger, LeaseAcquired | LeaseRenewed):
            sent = self.last_sent.get(trigger.epoch, -math.inf)
            self.last_sent[trigger.epoch] = max(sent, trigger.sent_at)
        if isinstance(trigger, LeaseLost):
            self.lost.add(trigger.epoch)
        if isinstance(trigger, OtherLeaderSeen):
            self.others.setdefault(trigger.epoch, trigger)
        if isinstance(trigger, LeaseAcquired | OtherLeaderSeen):
            self.newest_seen = max(self.newest_seen, trigger.epoch)

    def check(self, command: Command, sent_before: dict[int, float]) -> None:
        assert not self.terminated, f"{command} after Terminate"
        if isinstance(command, ActivateLeader):
            e = command.epoch
            # Never two live activations; e + 1 only after DeactivationDone(e).
            assert not self.live, f"activate {e} while {self.live} still live"
            assert all(e > a for a in self.activated), "an epoch activated twice or out of order"
            assert e in self.granted and e not in self.lost
            assert e == self.newest_seen, "activated a lease that something newer superseded"
            assert command.deadline == self.last_sent[e] + D
            assert self.now < command.deadline, "activated a lease already past its step-down"
            assert not self.shutdown_requested
            self.activated.append(e)
            self.live.add(e)
        elif isinstance(command, DeactivateLeader):
            e = command.epoch
            assert e in self.live and e not in self.orders, "deactivating what is not leading"
            assert e == self.activated[-1]
            bound = min(sent_before[e] + K, self.now + G)
            assert command.deadline == bound
            self.orders[e] = command.deadline
        elif isinstance(command, Follow):
            seen = self.others[command.epoch]
            assert command.address == seen.address
            assert command.epoch == self.newest_seen
            assert all(command.epoch > f for f in self.followed)
            assert not self.live, "following while leader work still runs"
            self.followed.append(command.epoch)
        elif isinstance(command, ReleaseLease):
            e = command.epoch
            assert self.shutdown_requested and not self.released
            assert e in self.granted and e not in self.lost and e == self.newest_seen
            assert not self.live, "released the lease before leader work stopped"
            self.released.append(e)
        else:
            assert isinstance(command, Terminate)
            self.terminated = True

    # -- the environment ---------------------------------------------------------------------
    #
    # Rules that choose among earlier epochs or triggers draw an index (`picks`) instead of
    # using preconditions and `st.data()`: far less overhead per step, so many more sequences
    # fit in the time budget.  With nothing to choose from, such a rule does nothing.

    @rule(dt=steps, tick=st.booleans())
    def time_passes(self, dt: float, tick: bool) -> None:
        """Time passes, with a `Tick`, or unnoticed until the next trigger of any kind."""
        self.now += dt
        if tick:
            self.deliver(Tick())

    @rule(pick=picks, just_before=st.booleans(), tick=st.booleans())
    def time_reaches_a_deadline(self, pick: int, just_before: bool, tick: bool) -> None:
        """Land exactly on a deadline, or just before it: where off-by-one errors live."""
        deadlines = [d for d in (self.m.leader_deadline, self.m.deactivation_deadline) if d]
        if self.m.lease_epoch is not None:  # when a pending lease grows too old to lead with
            deadlines.append(self.last_sent[self.m.lease_epoch] + D)
        if deadlines:
            target = newest(deadlines, pick)
            if just_before:
                target = math.nextafter(target, -math.inf)
            self.now = max(self.now, target)
        if tick:
            self.deliver(Tick())

    @rule(delay=send_delays, activated_at_once=st.booleans())
    def lease_acquired(self, delay: float, activated_at_once: bool) -> None:
        self.db_epoch += 1
        commands = self.deliver(LeaseAcquired(self.db_epoch, self.now - delay))
        if activated_at_once and commands and isinstance(commands[-1], ActivateLeader):
            self.deliver(ActivationDone(commands[-1].epoch))

    @rule()
    def epoch_granted_elsewhere_or_reply_lost(self) -> None:
        self.db_epoch += 1

    @rule(node=other_nodes)
    def other_leader_elected(self, node: str) -> None:
        self.db_epoch += 1
        self.deliver(OtherLeaderSeen(node, address(node), self.db_epoch))

    @rule(pick=picks, node=other_nodes)
    def other_leader_reported_late(self, pick: int, node: str) -> None:
        if self.db_epoch:
            epoch = self.db_epoch - pick % self.db_epoch
            self.deliver(self.others.get(epoch, OtherLeaderSeen(node, address(node), epoch)))

    @rule(delay=seconds(TEST.call_timeout))
    def lease_loop_renews(self, delay: float) -> None:
        """The lease loop renews what the machine says it holds, and the database agrees."""
        if self.m.lease_epoch is not None:
            self.deliver(LeaseRenewed(self.m.lease_epoch, self.now - delay))

    @rule(pick=picks, delay=send_delays)
    def lease_renewed(self, pick: int, delay: float) -> None:
        if self.granted:
            self.deliver(LeaseRenewed(newest(sorted(self.granted), pick), self.now - delay))

    @rule(pick=picks)
    def lease_lost(self, pick: int) -> None:
        if self.granted:
            self.deliver(LeaseLost(newest(sorted(self.granted), pick)))

    @rule()
    def lease_unreachable(self) -> None:
        self.deliver(LeaseUnreachable())

    @rule()
    def dispatcher_finishes_its_command(self) -> None:
        """The newest activation or deactivation finishes, promptly, once."""
        outstanding = [e for e in self.orders if e not in self.deactivation_done]
        if outstanding:
            self.deliver(DeactivationDone(outstanding[-1]))
        elif self.activated and self.activated[-1] not in self.activation_done:
            self.deliver(ActivationDone(self.activated[-1]))

    @rule(pick=picks)
    def activation_finished(self, pick: int) -> None:
        """Any ordered activation finishes, perhaps late or again."""
        if self.activated:
            self.deliver(ActivationDone(newest(self.activated, pick)))

    @rule(pick=picks)
    def deactivation_finished(self, pick: int) -> None:
        """Any ordered deactivation finishes, perhaps late or again."""
        if self.orders:
            self.deliver(DeactivationDone(newest(sorted(self.orders), pick)))

    @rule()
    def shutdown_requested_(self) -> None:
        self.shutdown_requested = True
        self.deliver(ShutdownRequested())

    @rule(pick=picks)
    def trigger_repeated(self, pick: int) -> None:
        """Any earlier trigger, again: a duplicate, or a reply overtaken by later ones."""
        if self.delivered:
            self.deliver(newest(self.delivered, pick))

    @rule()
    def supervisor_restarts_a_stopped_node(self) -> None:
        """After a shutdown or a kill, the supervisor starts the node again."""
        if self.m.state is State.STOPPED:
            self.start_process()

    @rule(kind=st.integers(0, 5), beyond=st.integers(1, 3))
    def impossible_trigger(self, kind: int, beyond: int) -> None:
        """A trigger no correct runtime produces: refused, and nothing changes."""
        newest_acquired = max(self.granted, default=0)
        impossible: list[tuple[Trigger, float]] = [
            (LeaseRenewed(newest_acquired + beyond, self.now), self.now),
            (LeaseLost(newest_acquired + beyond), self.now),
            (ActivationDone(max(self.activated, default=0) + beyond), self.now),
            (DeactivationDone(max(self.orders, default=0) + beyond), self.now),
            (LeaseAcquired(self.db_epoch + 1, self.now + beyond), self.now),
            (Tick(), self.seen_at - beyond),
        ]
        trigger, now = impossible[kind]
        before = copy.deepcopy(self.m)
        with pytest.raises(IllegalTrigger):
            self.m.handle(trigger, now)
        assert repr(self.m) == repr(before) and self.m.state is before.state
        assert self.m.leader_deadline == before.leader_deadline
        assert self.m.deactivation_deadline == before.deactivation_deadline
        assert self.m.lease_epoch == before.lease_epoch
        probe = copy.deepcopy(self.m)
        assert probe.handle(Tick(), self.seen_at) == before.handle(Tick(), self.seen_at)

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def invariants_hold(self) -> None:
        # One hypothesis invariant calling each check: a sixth of the per-step overhead.
        self.at_most_one_live_activation()
        self.no_leader_duty_past_the_step_down_deadline()
        self.deactivation_deadline_matches_the_order()
        self.epochs_are_consistent()
        self.terminate_means_stopped()
        self.stops_only_when_asked_or_terminated()

    def at_most_one_live_activation(self) -> None:
        assert len(self.live) <= 1

    def no_leader_duty_past_the_step_down_deadline(self) -> None:
        leading = [e for e in self.live if e not in self.orders]
        if self.terminated:
            return
        if self.m.state in LEADING:
            (e,) = leading
            deadline = self.last_sent[e] + D
            assert self.m.leader_deadline == deadline
            assert self.seen_at < deadline
            assert self.m.is_leader_at(self.seen_at) == (self.m.state is State.LEADER)
            assert not self.m.is_leader_at(deadline)
            if self.m.state is State.LEADER:
                assert e in self.activation_done
        else:
            assert not leading, "leader work without an order to stop it, outside LEADER"
            assert self.m.leader_deadline is None
            assert not self.m.is_leader_at(self.seen_at)

    def deactivation_deadline_matches_the_order(self) -> None:
        outstanding = [e for e in self.orders if e not in self.deactivation_done]
        if self.m.state in (State.DEACTIVATING, State.STOPPING):
            (e,) = outstanding
            assert self.m.deactivation_deadline == self.orders[e]
            assert self.seen_at < self.orders[e]
        else:
            assert self.m.deactivation_deadline is None

    def epochs_are_consistent(self) -> None:
        if self.m.state is State.STOPPED:  # a stopped node no longer listens
            assert self.m.epoch <= self.newest_seen
        else:
            assert self.m.epoch == self.newest_seen
        lease = self.m.lease_epoch
        assert lease is None or (lease in self.granted and lease not in self.lost)

    def terminate_means_stopped(self) -> None:
        if self.terminated or self.released:
            assert self.m.state is State.STOPPED

    def stops_only_when_asked_or_terminated(self) -> None:
        if self.m.state in (State.STOPPING, State.STOPPED):
            assert self.shutdown_requested or self.terminated


# About 1 500 sequences of up to 25 steps (about 23 000 triggers) in about 10 s of one core;
# SEQFAST_MACHINE_EXAMPLES raises the count for a longer hunt (reliability.md §7 suggests
# 100 000 nightly).
NodeEnvironment.TestCase.settings = settings(
    max_examples=int(os.environ.get("SEQFAST_MACHINE_EXAMPLES", "1500")),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_machine_against_its_environment = NodeEnvironment.TestCase
