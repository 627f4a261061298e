"""Time for the node runtime: every instant comes from trio's clock.

The runtime reads time only through `now()` (`trio.current_time()`), so that tests can run it
under `trio.testing.MockClock` and see lease deadlines, step-downs and kills happen at exact
virtual instants.  `Ticker` is the task that turns the passing of time into `Tick` triggers:
periodically, and *exactly* at each deadline the node state machine names, so that a leader
steps down at its deadline and not up to a period later.

Two other clocks meet trio's here:

- The monitor (`monitor.py`) is a separate process and counts on `CLOCK_BOOTTIME`;
  `to_boottime` maps a trio instant onto it (by the distance from now, so it is right whatever
  clock trio runs on).
- Threads cannot read trio's clock (`trio.current_time()` needs the event loop's thread), so a
  deadline that a thread must check is handed over on `CLOCK_BOOTTIME` too.

`BoottimeClock` is a trio clock on `CLOCK_BOOTTIME`, for `trio.run(..., clock=BoottimeClock())`:
trio's default clock is `CLOCK_MONOTONIC`, which stops while the machine is suspended or the VM
paused, so a leader resumed after a pause would believe that little time had passed.  On
BOOTTIME the pause counts, and deadlines that passed during it are seen as passed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import trio

from seqfast.cluster.monitor import boottime

__all__ = ["BoottimeClock", "Ticker", "boottime", "now", "to_boottime"]

# BoottimeClock never sleeps longer than this: the kernel measures sleeps on CLOCK_MONOTONIC,
# which stands still during a suspend, so a long sleep would end late by the suspend's length.
_MAX_SLEEP = 0.25


def now() -> float:
    """The current instant on trio's clock (the event loop's thread only)."""
    return trio.current_time()


def to_boottime(instant: float) -> float:
    """`instant` (trio's clock) as a `CLOCK_BOOTTIME` reading (the event loop's thread only)."""
    return boottime() + (instant - trio.current_time())


class BoottimeClock(trio.abc.Clock):
    """trio's clock on `CLOCK_BOOTTIME`: it keeps counting while the machine is suspended."""

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        return boottime()

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return min(max(0.0, deadline - boottime()), _MAX_SLEEP)


class Ticker:
    """Calls `tick()` every `period` seconds and at each instant `deadlines()` returns.

    `deadlines()` is asked again after every tick and after every `replan()`; call `replan()`
    whenever it may have an earlier answer than before (a new activation, a new deactivation).
    The tick at a deadline comes at exactly that instant on trio's clock.
    """

    def __init__(
        self,
        period: float,
        deadlines: Callable[[], Iterable[float | None]],
        tick: Callable[[], None],
    ) -> None:
        if not (math.isfinite(period) and period > 0):
            raise ValueError(
                f"the tick period must be a positive number of seconds, not {period!r}"
            )
        self._period = period
        self._deadlines = deadlines
        self._tick = tick
        self._replan = trio.Event()
        self._last_tick = -math.inf

    def replan(self) -> None:
        self._replan.set()

    def _next_wake(self) -> float:
        wake = now() + self._period
        for deadline in self._deadlines():
            # A deadline already ticked at is in the machine's hands: ticking again at the same
            # instant would spin without letting time pass.
            if deadline is not None and self._last_tick < deadline < wake:
                wake = deadline
        return wake

    async def run(self) -> None:
        """Tick until cancelled."""
        while True:
            self._replan = trio.Event()
            with trio.move_on_at(self._next_wake()):
                await self._replan.wait()
                continue  # woken to look at the deadlines again, not by the time
            self._last_tick = now()
            self._tick()
