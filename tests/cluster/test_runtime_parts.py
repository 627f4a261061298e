"""The parts of the node runtime on their own: the command queue, the ticker, the dispatcher.

All under `trio.testing.MockClock(autojump_threshold=0)`, so instants are exact.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from seqfast.cluster.clock import BoottimeClock, Ticker, to_boottime
from seqfast.cluster.commands import CommandQueue, QueueFull
from seqfast.cluster.dispatcher import Dispatcher, LeaderContext
from seqfast.cluster.machine import (
    ActivateLeader,
    ActivationDone,
    DeactivateLeader,
    DeactivationDone,
    Follow,
    ReleaseLease,
    Terminate,
    Trigger,
)
from seqfast.cluster.monitor import boottime


def run(test: Callable[[], Awaitable[None]]) -> None:
    trio.run(test, clock=trio.testing.MockClock(autojump_threshold=0))


# -- the command queue -------------------------------------------------------------------------


def test_the_queue_is_first_in_first_out_and_reports_every_depth() -> None:
    depths: list[tuple[int, int]] = []
    queue = CommandQueue(4, on_depth=lambda depth, capacity: depths.append((depth, capacity)))
    commands = [Follow("http://a", 1), ReleaseLease(1), Follow("http://b", 2)]

    async def main() -> None:
        for command in commands:
            queue.put(command)
        assert [await queue.get() for _ in commands] == commands

    run(main)
    assert [d for d, _ in depths] == [1, 2, 3, 2, 1, 0]
    assert {c for _, c in depths} == {4}


def test_the_put_that_fills_the_queue_raises_and_is_reported_as_full() -> None:
    depths: list[int] = []
    queue = CommandQueue(2, on_depth=lambda depth, _capacity: depths.append(depth))
    queue.put(ReleaseLease(1))
    with pytest.raises(QueueFull, match="2 of 2"):
        queue.put(ReleaseLease(2))
    assert depths == [1, 2]  # the monitor sees depth == capacity: fatal there too


def test_a_get_waits_for_a_put() -> None:
    queue = CommandQueue()

    async def main() -> None:
        got: list[Any] = []

        async def consumer() -> None:
            got.append((await queue.get(), trio.current_time()))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consumer)
            await trio.sleep(5)
            queue.put(ReleaseLease(3))
        assert got == [(ReleaseLease(3), 5.0)]

    run(main)


def test_a_queue_needs_room() -> None:
    with pytest.raises(ValueError):
        CommandQueue(0)


# -- the ticker --------------------------------------------------------------------------------


def test_the_ticker_ticks_every_period_and_exactly_at_each_deadline() -> None:
    ticks: list[float] = []
    deadlines: list[float | None] = [2.25, None, 7.125]

    async def main() -> None:
        ticker = Ticker(1.0, lambda: deadlines, lambda: ticks.append(trio.current_time()))
        with trio.move_on_after(8.5):
            await ticker.run()

    run(main)
    assert ticks == [1.0, 2.0, 2.25, 3.25, 4.25, 5.25, 6.25, 7.125, 8.125]


def test_replanning_brings_a_new_earlier_deadline_forward() -> None:
    ticks: list[float] = []
    deadlines: list[float | None] = []

    async def main() -> None:
        ticker = Ticker(10.0, lambda: deadlines, lambda: ticks.append(trio.current_time()))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker.run)
            await trio.sleep(1)
            deadlines.append(1.5)
            ticker.replan()
            await trio.sleep(2)
            nursery.cancel_scope.cancel()

    run(main)
    assert ticks == [1.5]


def test_the_boottime_clock_reads_boottime_and_never_sleeps_long() -> None:
    clock = BoottimeClock()
    before = boottime()
    assert before <= clock.current_time() <= boottime()
    assert clock.deadline_to_sleep_time(clock.current_time() + 3600) == 0.25
    assert clock.deadline_to_sleep_time(clock.current_time() - 1) == 0.0

    async def main() -> float:
        return to_boottime(trio.current_time() + 10) - boottime()

    assert 9.0 < trio.run(main, clock=BoottimeClock()) <= 10.0


# -- the dispatcher ----------------------------------------------------------------------------


class Harness:
    def __init__(self) -> None:
        self.queue = CommandQueue()
        self.reports: list[tuple[float, Trigger]] = []
        self.followed: list[Follow] = []
        self.released: list[int] = []
        self.terminated: list[str] = []
        self.failures: list[tuple[str, int, str]] = []
        self.events: list[tuple[float, str, dict[str, Any]]] = []
        self.dispatcher = Dispatcher(
            self.queue,
            node_id="n1",
            log=self.log,
            report=lambda trigger: self.reports.append((trio.current_time(), trigger)),
            follow=self.followed.append,
            release=self.release,
            terminate=self.terminated.append,
            duty_failed=lambda name, epoch, exc: self.failures.append((name, epoch, str(exc))),
        )

    def log(self, level: str, template: str, **properties: Any) -> None:
        self.events.append((trio.current_time(), template, properties))

    async def release(self, command: ReleaseLease) -> None:
        await trio.sleep(0.5)
        self.released.append(command.epoch)

    def triggers(self) -> list[Trigger]:
        return [trigger for _, trigger in self.reports]


def test_deactivation_is_done_only_when_every_duty_has_stopped() -> None:
    h = Harness()
    stopped: list[tuple[str, float]] = []

    def duty(name: str, cleanup: float) -> Callable[[LeaderContext], Awaitable[None]]:
        async def work(context: LeaderContext) -> None:
            try:
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    await trio.sleep(cleanup)  # a duty that takes a while to wind down
                stopped.append((name, trio.current_time()))

        return work

    h.dispatcher.add_duty("quick", duty("quick", 0.1))
    h.dispatcher.add_duty("slow", duty("slow", 0.7))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(h.dispatcher.run)
            h.queue.put(ActivateLeader(1, math.inf))
            await trio.sleep(2)
            h.queue.put(DeactivateLeader(1, 10.0))
            await trio.sleep(2)
            assert h.dispatcher.live_epoch is None
            nursery.cancel_scope.cancel()

    run(main)
    assert sorted(stopped) == [("quick", 2.1), ("slow", 2.7)]
    assert h.reports == [(0.0, ActivationDone(1)), (2.7, DeactivationDone(1))]
    assert [(at, props["Transition"]) for at, _, props in h.events] == [
        (0.0, "activated"),
        (2.7, "deactivated"),
    ]


def test_the_leader_nursery_is_cancelled_at_its_deadline_and_extended_by_renewals() -> None:
    h = Harness()
    ended: list[float] = []
    seen: list[float] = []

    async def duty(context: LeaderContext) -> None:
        try:
            while True:
                seen.append(context.deadline())
                await trio.sleep(0.25)
        finally:
            ended.append(trio.current_time())

    h.dispatcher.add_duty("work", duty)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(h.dispatcher.run)
            # A renewal the machine saw before the queued activation was carried out.
            h.dispatcher.extend(1, 3.0)
            h.queue.put(ActivateLeader(1, 2.5))
            await trio.sleep(1)
            h.dispatcher.extend(1, 4.0)
            await trio.sleep(5)
            nursery.cancel_scope.cancel()

    run(main)
    assert ended == [4.0]
    assert seen[0] == 3.0 and seen[-1] == 4.0
    assert h.triggers() == [ActivationDone(1)]  # DeactivationDone waits for DeactivateLeader


def test_a_deactivation_after_the_deadline_is_done_at_once() -> None:
    h = Harness()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(h.dispatcher.run)
            h.queue.put(ActivateLeader(4, 1.0))
            await trio.sleep(3)
            h.queue.put(DeactivateLeader(4, 5.0))
            await trio.sleep(1)
            nursery.cancel_scope.cancel()

    run(main)
    assert h.reports == [(0.0, ActivationDone(4)), (3.0, DeactivationDone(4))]


def test_commands_run_in_order_and_follow_release_terminate_reach_the_runtime() -> None:
    h = Harness()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(h.dispatcher.run)
            h.queue.put(ReleaseLease(2))
            h.queue.put(Follow("http://b", 3))
            h.queue.put(Terminate("overrun"))
            await trio.sleep(0.1)
            assert h.released == [] and h.followed == []  # the release is still running
            await trio.sleep(1)
            nursery.cancel_scope.cancel()

    run(main)
    assert h.released == [2]
    assert h.followed == [Follow("http://b", 3)]
    assert h.terminated == ["overrun"]


def test_a_duty_that_raises_is_reported_and_the_others_go_on() -> None:
    h = Harness()
    ticks: list[float] = []

    async def broken(context: LeaderContext) -> None:
        await trio.sleep(1)
        raise RuntimeError("boom")

    async def steady(context: LeaderContext) -> None:
        while True:
            ticks.append(trio.current_time())
            await trio.sleep(1)

    h.dispatcher.add_duty("broken", broken)
    h.dispatcher.add_duty("steady", steady)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(h.dispatcher.run)
            h.queue.put(ActivateLeader(1, math.inf))
            await trio.sleep(3.5)
            nursery.cancel_scope.cancel()

    run(main)
    assert h.failures == [("broken", 1, "boom")]
    assert ticks == [0.0, 1.0, 2.0, 3.0]


def test_two_live_activations_are_refused() -> None:
    h = Harness()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(h.dispatcher.run)
            h.queue.put(ActivateLeader(1, math.inf))
            h.queue.put(ActivateLeader(2, math.inf))
            await trio.sleep_forever()

    with pytest.RaisesGroup(
        pytest.RaisesExc(RuntimeError, match="still has a leader"), flatten_subgroups=True
    ):
        run(main)


def test_duty_names_are_unique() -> None:
    h = Harness()

    async def duty(context: LeaderContext) -> None:
        pass

    h.dispatcher.add_duty("a", duty)
    with pytest.raises(ValueError):
        h.dispatcher.add_duty("a", duty)
    assert h.dispatcher.duties == ("a",)
