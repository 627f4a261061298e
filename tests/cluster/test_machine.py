"""The node state machine, one transition at a time: every row of the table, every illegal
trigger, and the timing edges (all times are seconds on the node's monotonic clock)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from seqfast.cluster.machine import (
    TRANSITIONS,
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
from seqfast.cluster.timing import TEST, TimingError

D = TEST.step_down_after  # 2.5
K = TEST.monitor_kill_after  # 3.0
G = TEST.deactivation_grace  # 0.5
B = "http://b:5341"
C = "http://c:5341"

# Every builder leaves a machine at time 10 whose epoch-1 lease (if any) was sent at 10, so
# the step-down deadline is 12.5 and the kill deadline 13.


def starting() -> NodeMachine:
    m = NodeMachine(TEST)
    m.handle(Tick(), 10.0)
    return m


def run(m: NodeMachine, *steps: tuple[Trigger, float]) -> NodeMachine:
    for trigger, now in steps:
        m.handle(trigger, now)
    return m


def activating() -> NodeMachine:
    return run(starting(), (LeaseAcquired(1, 10.0), 10.0))


def leader() -> NodeMachine:
    return run(activating(), (ActivationDone(1), 10.0))


def deactivating() -> NodeMachine:
    """Lost epoch 1 at 10: deactivation deadline 10.5."""
    return run(leader(), (LeaseLost(1), 10.0))


def deactivating_with_pending() -> NodeMachine:
    """As `deactivating`, with epoch 2 acquired at 10 and waiting."""
    return run(deactivating(), (LeaseAcquired(2, 10.0), 10.0))


def deactivating_with_other_leader() -> NodeMachine:
    return run(deactivating(), (OtherLeaderSeen("b", B, 2), 10.0))


def former_leader() -> NodeMachine:
    """Led epoch 1, deactivated it, now a follower of nobody yet."""
    return run(deactivating(), (DeactivationDone(1), 10.0))


def follower() -> NodeMachine:
    """Led epoch 1 once; follows b, which leads epoch 2."""
    return run(former_leader(), (OtherLeaderSeen("b", B, 2), 10.0))


def activating_second() -> NodeMachine:
    """Activating epoch 2 after deactivating epoch 1."""
    return run(deactivating_with_pending(), (DeactivationDone(1), 10.0))


def leader_second() -> NodeMachine:
    return run(activating_second(), (ActivationDone(2), 10.0))


def stopping() -> NodeMachine:
    """A leader asked to stop at 10: deactivation deadline 10.5, then release epoch 1."""
    return run(leader(), (ShutdownRequested(), 10.0))


def stopped() -> NodeMachine:
    """Led epoch 1, stopped, released it."""
    return run(stopping(), (DeactivationDone(1), 10.0))


Builder = Callable[[], NodeMachine]
BUILDERS: dict[State, Builder] = {
    State.STARTING: starting,
    State.FOLLOWER: follower,
    State.ACTIVATING: activating,
    State.LEADER: leader,
    State.DEACTIVATING: deactivating,
    State.STOPPING: stopping,
    State.STOPPED: stopped,
}


def test_the_builders_reach_their_states() -> None:
    for state, build in BUILDERS.items():
        assert build().state is state
    assert activating_second().state is State.ACTIVATING
    assert leader_second().state is State.LEADER


@dataclass(frozen=True)
class Case:
    id: str
    build: Builder
    trigger: Trigger
    now: float
    state: State
    commands: list[Command]
    after: dict[str, Any] = field(default_factory=dict)  # NodeMachine properties afterwards

    def param(self) -> Any:
        return pytest.param(self, id=self.id)


def terminate(epoch: int, deadline: float) -> Terminate:
    return Terminate(
        f"the deactivation of epoch {epoch} did not finish by its deadline {deadline:.3f}"
    )


S = State
CASES = [
    # STARTING -----------------------------------------------------------------------------
    Case("starting-acquire", starting, LeaseAcquired(1, 10.0), 10.2, S.ACTIVATING,
         [ActivateLeader(1, 12.5)], {"epoch": 1, "leader_deadline": 12.5, "lease_epoch": 1}),
    Case("starting-acquire-too-late-to-lead", starting, LeaseAcquired(1, 7.0), 10.0, S.FOLLOWER,
         [], {"epoch": 1, "lease_epoch": None}),
    Case("starting-unreachable", starting, LeaseUnreachable(), 10.0, S.STARTING, []),
    Case("starting-other-leader", starting, OtherLeaderSeen("b", B, 3), 10.0, S.FOLLOWER,
         [Follow(B, 3)], {"epoch": 3}),
    Case("starting-tick", starting, Tick(), 10.0, S.STARTING, []),
    Case("starting-shutdown", starting, ShutdownRequested(), 10.0, S.STOPPED, []),
    # FOLLOWER -----------------------------------------------------------------------------
    Case("follower-acquire", follower, LeaseAcquired(3, 10.0), 10.1, S.ACTIVATING,
         [ActivateLeader(3, 12.5)], {"epoch": 3}),
    Case("follower-acquire-not-newer-than-leader", follower, LeaseAcquired(2, 10.0), 10.1,
         S.FOLLOWER, [], {"epoch": 2}),
    Case("follower-late-renewal", follower, LeaseRenewed(1, 10.0), 10.1, S.FOLLOWER, []),
    Case("follower-late-loss", follower, LeaseLost(1), 10.1, S.FOLLOWER, []),
    Case("follower-unreachable", follower, LeaseUnreachable(), 10.1, S.FOLLOWER, []),
    Case("follower-newer-leader", follower, OtherLeaderSeen("c", C, 3), 10.1, S.FOLLOWER,
         [Follow(C, 3)], {"epoch": 3}),
    Case("follower-same-leader-again", follower, OtherLeaderSeen("b", B, 2), 10.1, S.FOLLOWER,
         []),
    Case("follower-older-leader", follower, OtherLeaderSeen("a", C, 1), 10.1, S.FOLLOWER, [],
         {"epoch": 2}),
    Case("follower-tick", follower, Tick(), 100.0, S.FOLLOWER, []),
    Case("follower-late-activation", follower, ActivationDone(1), 10.1, S.FOLLOWER, []),
    Case("follower-repeated-deactivation", follower, DeactivationDone(1), 10.1, S.FOLLOWER, []),
    Case("follower-shutdown", follower, ShutdownRequested(), 10.1, S.STOPPED, []),
    # ACTIVATING (epoch 1, deadline 12.5) ----------------------------------------------------
    Case("activating-newer-epoch", activating, LeaseAcquired(2, 11.0), 11.0, S.DEACTIVATING,
         [DeactivateLeader(1, 11.5)], {"lease_epoch": 2, "deactivation_deadline": 11.5}),
    Case("activating-same-epoch-again", activating, LeaseAcquired(1, 10.0), 11.0, S.ACTIVATING,
         []),
    Case("activating-renewed", activating, LeaseRenewed(1, 11.0), 11.2, S.ACTIVATING, [],
         {"leader_deadline": 13.5}),
    Case("activating-renewal-sent-earlier", activating, LeaseRenewed(1, 9.0), 11.2,
         S.ACTIVATING, [], {"leader_deadline": 12.5}),
    Case("activating-lost", activating, LeaseLost(1), 11.0, S.DEACTIVATING,
         [DeactivateLeader(1, 11.5)], {"leader_deadline": None, "lease_epoch": None}),
    Case("activating-older-epoch-lost", activating_second, LeaseLost(1), 10.1, S.ACTIVATING, []),
    Case("activating-unreachable", activating, LeaseUnreachable(), 12.4, S.ACTIVATING, []),
    Case("activating-other-leader", activating, OtherLeaderSeen("b", B, 2), 11.0,
         S.DEACTIVATING, [DeactivateLeader(1, 11.5)], {"epoch": 2}),
    Case("activating-older-leader", activating_second, OtherLeaderSeen("b", B, 1), 11.0,
         S.ACTIVATING, []),
    Case("activating-tick-before-deadline", activating, Tick(), 12.4, S.ACTIVATING, []),
    Case("activating-tick-at-deadline", activating, Tick(), 12.5, S.DEACTIVATING,
         [DeactivateLeader(1, 13.0)], {"deactivation_deadline": 13.0}),
    Case("activating-done", activating, ActivationDone(1), 11.0, S.LEADER, []),
    Case("activating-older-activation-done", activating_second, ActivationDone(1), 10.1,
         S.ACTIVATING, []),
    Case("activating-repeated-deactivation", activating_second, DeactivationDone(1), 10.1,
         S.ACTIVATING, []),
    Case("activating-shutdown", activating, ShutdownRequested(), 11.0, S.STOPPING,
         [DeactivateLeader(1, 11.5)], {"lease_epoch": 1}),
    # LEADER (epoch 1, deadline 12.5, kill at 13) --------------------------------------------
    Case("leader-newer-epoch", leader, LeaseAcquired(2, 11.0), 11.0, S.DEACTIVATING,
         [DeactivateLeader(1, 11.5)], {"lease_epoch": 2}),
    Case("leader-renewed", leader, LeaseRenewed(1, 11.0), 11.2, S.LEADER, [],
         {"leader_deadline": 13.5}),
    Case("leader-renewal-after-the-deadline", leader, LeaseRenewed(1, 12.0), 12.6,
         S.DEACTIVATING, [DeactivateLeader(1, 13.0)], {"lease_epoch": None}),
    Case("leader-lost", leader, LeaseLost(1), 11.0, S.DEACTIVATING,
         [DeactivateLeader(1, 11.5)]),
    Case("leader-lost-late-in-the-lease", leader, LeaseLost(1), 12.8, S.DEACTIVATING,
         [DeactivateLeader(1, 13.0)]),
    Case("leader-unreachable", leader, LeaseUnreachable(), 11.0, S.LEADER, []),
    Case("leader-other-leader", leader, OtherLeaderSeen("b", B, 2), 11.0, S.DEACTIVATING,
         [DeactivateLeader(1, 11.5)]),
    Case("leader-tick-before-deadline", leader, Tick(), 12.4, S.LEADER, []),
    Case("leader-tick-at-deadline", leader, Tick(), 12.5, S.DEACTIVATING,
         [DeactivateLeader(1, 13.0)]),
    Case("leader-tick-past-kill-deadline", leader, Tick(), 13.0, S.STOPPED,
         [DeactivateLeader(1, 13.0), terminate(1, 13.0)]),
    Case("leader-repeated-activation-done", leader, ActivationDone(1), 11.0, S.LEADER, []),
    Case("leader-repeated-deactivation", leader_second, DeactivationDone(1), 10.1, S.LEADER, []),
    Case("leader-shutdown", leader, ShutdownRequested(), 11.0, S.STOPPING,
         [DeactivateLeader(1, 11.5)], {"deactivation_deadline": 11.5}),
    # DEACTIVATING (epoch 1, deadline 10.5) --------------------------------------------------
    Case("deactivating-acquire-waits", deactivating, LeaseAcquired(2, 10.1), 10.2,
         S.DEACTIVATING, [], {"lease_epoch": 2, "epoch": 2}),
    Case("deactivating-acquire-too-late-to-lead", deactivating, LeaseAcquired(2, 7.0), 10.2,
         S.DEACTIVATING, [], {"lease_epoch": 2, "epoch": 2}),
    Case("deactivating-renew-pending", deactivating_with_pending, LeaseRenewed(2, 10.2), 10.3,
         S.DEACTIVATING, [], {"lease_epoch": 2}),
    Case("deactivating-pending-lost", deactivating_with_pending, LeaseLost(2), 10.2,
         S.DEACTIVATING, [], {"lease_epoch": None}),
    Case("deactivating-late-loss", deactivating, LeaseLost(1), 10.2, S.DEACTIVATING, []),
    Case("deactivating-unreachable", deactivating, LeaseUnreachable(), 10.2, S.DEACTIVATING, []),
    Case("deactivating-other-leader", deactivating_with_pending, OtherLeaderSeen("b", B, 3),
         10.2, S.DEACTIVATING, [], {"lease_epoch": None, "epoch": 3}),
    Case("deactivating-tick", deactivating, Tick(), 10.4, S.DEACTIVATING, []),
    Case("deactivating-tick-at-deadline", deactivating, Tick(), 10.5, S.STOPPED,
         [terminate(1, 10.5)], {"deactivation_deadline": None, "lease_epoch": None}),
    Case("deactivating-late-activation-done", deactivating, ActivationDone(1), 10.2,
         S.DEACTIVATING, []),
    Case("deactivating-done", deactivating, DeactivationDone(1), 10.2, S.FOLLOWER, [],
         {"deactivation_deadline": None}),
    Case("deactivating-done-then-activate-pending", deactivating_with_pending,
         DeactivationDone(1), 10.2, S.ACTIVATING, [ActivateLeader(2, 12.5)]),
    Case("deactivating-done-then-follow", deactivating_with_other_leader, DeactivationDone(1),
         10.2, S.FOLLOWER, [Follow(B, 2)]),
    Case("deactivating-shutdown", deactivating_with_pending, ShutdownRequested(), 10.2,
         S.STOPPING, [], {"deactivation_deadline": 10.5, "lease_epoch": 2}),
    # STOPPING (epoch 1, deadline 10.5, then release) ----------------------------------------
    Case("stopping-acquire", stopping, LeaseAcquired(2, 10.1), 10.2, S.STOPPING, [],
         {"lease_epoch": 2}),
    Case("stopping-renewed", stopping, LeaseRenewed(1, 10.1), 10.2, S.STOPPING, []),
    Case("stopping-lost", stopping, LeaseLost(1), 10.2, S.STOPPING, [], {"lease_epoch": None}),
    Case("stopping-unreachable", stopping, LeaseUnreachable(), 10.2, S.STOPPING, []),
    Case("stopping-other-leader", stopping, OtherLeaderSeen("b", B, 2), 10.2, S.STOPPING, [],
         {"lease_epoch": None}),
    Case("stopping-tick", stopping, Tick(), 10.4, S.STOPPING, []),
    Case("stopping-tick-at-deadline", stopping, Tick(), 10.5, S.STOPPED, [terminate(1, 10.5)]),
    Case("stopping-late-activation-done", stopping, ActivationDone(1), 10.2, S.STOPPING, []),
    Case("stopping-done", stopping, DeactivationDone(1), 10.2, S.STOPPED, [ReleaseLease(1)],
         {"lease_epoch": None, "deactivation_deadline": None}),
    Case("stopping-shutdown-again", stopping, ShutdownRequested(), 10.2, S.STOPPING, []),
    # STOPPED (after leading epoch 1) --------------------------------------------------------
    Case("stopped-acquire", stopped, LeaseAcquired(2, 10.1), 10.2, S.STOPPED, []),
    Case("stopped-renewed", stopped, LeaseRenewed(1, 10.1), 10.2, S.STOPPED, []),
    Case("stopped-lost", stopped, LeaseLost(1), 10.2, S.STOPPED, []),
    Case("stopped-unreachable", stopped, LeaseUnreachable(), 10.2, S.STOPPED, []),
    Case("stopped-other-leader", stopped, OtherLeaderSeen("b", B, 2), 10.2, S.STOPPED, []),
    Case("stopped-tick", stopped, Tick(), 1000.0, S.STOPPED, []),
    Case("stopped-activation-done", stopped, ActivationDone(1), 10.2, S.STOPPED, []),
    Case("stopped-deactivation-done", stopped, DeactivationDone(1), 10.2, S.STOPPED, []),
    Case("stopped-shutdown", stopped, ShutdownRequested(), 10.2, S.STOPPED, []),
]  # fmt: skip


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_transition(case: Case) -> None:
    m = case.build()
    assert m.handle(case.trigger, case.now) == case.commands
    assert m.state is case.state
    for name, expected in case.after.items():
        assert getattr(m, name) == expected, name


def test_every_row_of_the_table_has_a_case() -> None:
    covered = {(c.build().state, type(c.trigger)) for c in CASES}
    assert covered == set(TRANSITIONS)


TRIGGER_OF_EACH_TYPE: list[Trigger] = [
    LeaseAcquired(5, 10.0),
    LeaseRenewed(1, 10.0),
    LeaseLost(1),
    LeaseUnreachable(),
    OtherLeaderSeen("b", B, 5),
    Tick(),
    ActivationDone(1),
    DeactivationDone(1),
    ShutdownRequested(),
]


def test_the_table_knows_every_state_and_trigger_type() -> None:
    assert {s for s, _ in TRANSITIONS} == set(State)
    assert {t for _, t in TRANSITIONS} == {type(t) for t in TRIGGER_OF_EACH_TYPE}


def observable(m: NodeMachine) -> tuple[object, ...]:
    return (
        m.state,
        m.epoch,
        m.leader_deadline,
        m.deactivation_deadline,
        m.lease_epoch,
        m.is_leader_at(10.0),
        repr(m),
    )


def assert_illegal_and_unchanged(build: Builder, trigger: Trigger, now: float) -> None:
    m, twin = build(), build()
    with pytest.raises(IllegalTrigger) as caught:
        m.handle(trigger, now)
    assert caught.value.state is twin.state
    assert caught.value.trigger == trigger
    assert observable(m) == observable(twin)
    # Nothing hidden moved either (the clock included): both go on identically.
    for later in (Tick(), ShutdownRequested(), Tick()):
        assert m.handle(later, 10.0) == twin.handle(later, 10.0)
        assert observable(m) == observable(twin)


MISSING = [
    pytest.param(state, trigger, id=f"{state.name}-{type(trigger).__name__}")
    for state in State
    for trigger in TRIGGER_OF_EACH_TYPE
    if (state, type(trigger)) not in TRANSITIONS
]


def test_only_starting_has_missing_rows() -> None:
    assert {p.values[0] for p in MISSING} == {State.STARTING}
    assert {type(p.values[1]) for p in MISSING} == {
        LeaseRenewed,
        LeaseLost,
        ActivationDone,
        DeactivationDone,
    }


@pytest.mark.parametrize(("state", "trigger"), MISSING)
def test_a_trigger_missing_from_the_table_is_illegal(state: State, trigger: Trigger) -> None:
    assert_illegal_and_unchanged(BUILDERS[state], trigger, 10.0)


# Impossible in any state: each would take a runtime bug to produce.
IMPOSSIBLE: list[tuple[str, Trigger, float]] = [
    ("renewal-of-an-epoch-never-acquired", LeaseRenewed(9, 10.0), 10.0),
    ("loss-of-an-epoch-never-acquired", LeaseLost(9), 10.0),
    ("activation-never-ordered", ActivationDone(9), 10.0),
    ("deactivation-never-ordered", DeactivationDone(9), 10.0),
    ("acquisition-sent-in-the-future", LeaseAcquired(9, 10.5), 10.0),
    ("renewal-sent-in-the-future", LeaseRenewed(1, 10.5), 10.0),
    ("epoch-zero-acquired", LeaseAcquired(0, 10.0), 10.0),
    ("epoch-zero-leader", OtherLeaderSeen("b", B, 0), 10.0),
    ("time-going-backwards", Tick(), 9.0),
]


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.name)
@pytest.mark.parametrize(("trigger", "now"), [pytest.param(t, n, id=i) for i, t, n in IMPOSSIBLE])
def test_an_impossible_trigger_is_illegal_in_every_state(
    state: State, trigger: Trigger, now: float
) -> None:
    assert_illegal_and_unchanged(BUILDERS[state], trigger, now)


@pytest.mark.parametrize("build", [activating, leader], ids=["ACTIVATING", "LEADER"])
def test_deactivation_done_for_the_epoch_being_led_is_illegal(build: Builder) -> None:
    assert_illegal_and_unchanged(build, DeactivationDone(1), 10.0)


def test_an_illegal_trigger_past_the_deadline_undoes_the_step_down_too() -> None:
    m = leader()
    with pytest.raises(IllegalTrigger, match="never acquired epoch 9"):
        m.handle(LeaseLost(9), 20.0)
    assert m.state is State.LEADER and m.leader_deadline == 12.5
    assert m.handle(Tick(), 12.5) == [DeactivateLeader(1, 13.0)]


def test_the_error_says_what_and_why() -> None:
    with pytest.raises(IllegalTrigger) as caught:
        starting().handle(ActivationDone(1), 10.0)
    assert str(caught.value) == (
        "ActivationDone(epoch=1) cannot happen in state STARTING:"
        " no activation of epoch 1 was ordered (newest: 0)."
    )


# ---------------------------------------------------------------------------------------------
# Sequences
# ---------------------------------------------------------------------------------------------


def test_a_leader_steps_down_on_its_own_clock_without_any_answer() -> None:
    m = leader()
    assert m.handle(LeaseRenewed(1, 11.0), 11.1) == []  # deadline 13.5, kill 14
    for now in (11.5, 12.0, 13.0, 13.49):
        assert m.handle(LeaseUnreachable(), now) == []
        assert m.handle(Tick(), now) == []
        assert m.is_leader_at(now)
    assert not m.is_leader_at(13.5)
    assert m.handle(Tick(), 13.5) == [DeactivateLeader(1, 14.0)]
    assert m.state is State.DEACTIVATING and m.leader_deadline is None
    assert not m.is_leader_at(13.5)


def test_any_trigger_past_the_deadline_steps_down_first() -> None:
    m = leader()
    assert m.handle(LeaseUnreachable(), 12.5) == [DeactivateLeader(1, 13.0)]
    # A success that was sent in time but answered late does not bring leadership back.
    assert m.handle(LeaseRenewed(1, 12.4), 12.6) == []
    assert m.state is State.DEACTIVATING and m.lease_epoch is None


def test_a_stepped_down_leader_is_never_reactivated_with_the_same_epoch() -> None:
    m = deactivating()
    assert m.handle(LeaseAcquired(1, 10.1), 10.2) == []
    assert m.handle(DeactivationDone(1), 10.3) == []
    assert m.state is State.FOLLOWER
    assert m.handle(LeaseAcquired(1, 10.3), 10.4) == []


def test_reacquisition_waits_for_the_deactivation() -> None:
    m = leader()
    assert m.handle(Tick(), 12.5) == [DeactivateLeader(1, 13.0)]
    assert m.handle(LeaseAcquired(2, 12.6), 12.7) == []
    assert m.handle(LeaseRenewed(2, 12.8), 12.9) == []
    assert m.handle(ActivationDone(1), 12.9) == []  # the old activation, finishing late
    assert m.state is State.DEACTIVATING and m.lease_epoch == 2
    assert m.handle(DeactivationDone(1), 12.95) == [ActivateLeader(2, 12.8 + D)]
    assert m.handle(ActivationDone(2), 13.0) == []
    assert m.is_leader_at(13.0) and m.leader_deadline == 12.8 + D


def test_a_pending_lease_too_old_when_the_deactivation_ends_is_not_activated() -> None:
    m = deactivating()  # deadline 10.5
    assert m.handle(LeaseAcquired(2, 7.9), 10.0) == []  # could be led until 10.4
    assert m.handle(Tick(), 10.4) == []
    assert m.lease_epoch == 2  # still renewed: a success would make it usable again
    assert m.handle(DeactivationDone(1), 10.45) == []
    assert m.state is State.FOLLOWER and m.lease_epoch is None


def test_a_renewal_revives_a_pending_lease_that_had_grown_too_old() -> None:
    m = deactivating()
    assert m.handle(LeaseAcquired(2, 7.9), 10.0) == []
    assert m.handle(LeaseRenewed(2, 10.3), 10.42) == []
    assert m.handle(DeactivationDone(1), 10.45) == [ActivateLeader(2, 10.3 + D)]


def test_a_newer_leader_seen_while_leading_is_followed_after_the_deactivation() -> None:
    m = leader()
    assert m.handle(OtherLeaderSeen("b", B, 2), 11.0) == [DeactivateLeader(1, 11.5)]
    assert m.handle(OtherLeaderSeen("c", C, 3), 11.1) == []
    assert m.handle(DeactivationDone(1), 11.2) == [Follow(C, 3)]
    assert m.state is State.FOLLOWER and m.epoch == 3


def test_an_acquisition_older_than_a_seen_leader_is_stale() -> None:
    m = run(starting(), (OtherLeaderSeen("b", B, 7), 10.0))
    assert m.handle(LeaseAcquired(5, 10.0), 10.1) == []
    assert m.state is State.FOLLOWER and m.epoch == 7
    # It was granted, though, so replies about it are legal (and ignored).
    assert m.handle(LeaseRenewed(5, 10.1), 10.2) == []
    assert m.handle(LeaseLost(5), 10.3) == []


def test_a_deactivation_that_overruns_terminates() -> None:
    m = leader()
    assert m.handle(LeaseLost(1), 11.0) == [DeactivateLeader(1, 11.5)]
    assert m.handle(Tick(), 11.49) == []
    assert m.handle(DeactivationDone(1), 11.5) == [terminate(1, 11.5)]
    assert m.state is State.STOPPED
    assert m.handle(Tick(), 12.0) == []


def test_the_deactivation_deadline_never_passes_the_kill_deadline() -> None:
    m = leader()
    assert m.handle(ShutdownRequested(), 12.9) == [DeactivateLeader(1, 13.0)]


def test_a_leader_shuts_down_by_deactivating_then_releasing() -> None:
    m = leader()
    assert m.handle(ShutdownRequested(), 11.0) == [DeactivateLeader(1, 11.5)]
    assert m.handle(LeaseRenewed(1, 11.1), 11.2) == []
    assert m.handle(DeactivationDone(1), 11.3) == [ReleaseLease(1)]
    assert m.state is State.STOPPED


def test_a_leader_asked_to_stop_past_its_deadline_has_already_given_the_lease_up() -> None:
    m = leader()
    assert m.handle(ShutdownRequested(), 12.5) == [DeactivateLeader(1, 13.0)]
    assert (m.state, m.lease_epoch) == (State.STOPPING, None)
    assert m.handle(DeactivationDone(1), 12.6) == []
    assert m.state is State.STOPPED


def test_shutdown_during_a_wait_releases_the_waiting_lease() -> None:
    m = deactivating_with_pending()
    assert m.handle(ShutdownRequested(), 10.1) == []
    assert m.handle(DeactivationDone(1), 10.2) == [ReleaseLease(2)]
    assert m.state is State.STOPPED


def test_a_follower_just_stops() -> None:
    m = follower()
    assert m.handle(ShutdownRequested(), 11.0) == []
    assert m.state is State.STOPPED
    assert m.handle(LeaseAcquired(3, 11.0), 11.1) == []
    assert m.state is State.STOPPED


def test_activating_is_not_yet_leading() -> None:
    m = activating()
    assert m.leader_deadline == 12.5
    assert not m.is_leader_at(10.0)
    m.handle(ActivationDone(1), 10.0)
    assert m.is_leader_at(12.49) and not m.is_leader_at(12.5)


def test_the_machine_refuses_bad_timing() -> None:
    with pytest.raises(TimingError):
        NodeMachine(dataclasses.replace(TEST, monitor_kill_after=TEST.step_down_after))


def test_triggers_and_commands_are_values() -> None:
    assert LeaseAcquired(1, 2.0) == LeaseAcquired(1, 2.0)
    assert len({Tick(), Tick(), DeactivateLeader(1, 2.0), DeactivateLeader(1, 2.0)}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        LeaseAcquired(1, 2.0).epoch = 3  # type: ignore[misc]
