"""Faults a test can switch on in a real `seqfast serve` process, through its environment.

`SEQFASTTEST_HANG_LEADER_DUTY=<seconds>[:<how>]` adds a leader duty that, `seconds` after each
activation, stops yielding to the event loop for good: the case the monitor exists for (a
leader whose loop is stuck cannot step down, so its watchdog process must kill it before the
lease could pass to another node).  `how` is

* `gil` (the default): a regular expression that backtracks for ever inside the `re` module's C
  code, which holds the GIL throughout, so no Python thread of the process runs either;
* `block`: a blocking sleep on the event loop's thread, which releases the GIL (worker threads
  go on) but stops every trio task.

The variable is deliberately outside the `SEQFAST_` prefix: the configuration refuses unknown
`SEQFAST_*` variables, and a test hook is not a setting.  Unset (always, in production) it
changes nothing.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Final, Protocol

import trio

from seqfast.cluster.dispatcher import LeaderContext, LeaderDuty

__all__ = ["HANG_LEADER_DUTY", "hang_leader_duty", "install"]

HANG_LEADER_DUTY: Final = "SEQFASTTEST_HANG_LEADER_DUTY"
_HOW: Final = ("gil", "block")
# Nested quantifiers against a subject that never matches: 2**64 ways to split it, tried one by
# one in C without releasing the GIL.
_BACKTRACKING: Final = re.compile(r"(a+)+b")
_SUBJECT: Final = "a" * 64


class _DutyRegistry(Protocol):
    def add_leader_duty(self, name: str, duty: LeaderDuty) -> None: ...


def hang_leader_duty(after: float, how: str, log: Callable[..., None]) -> LeaderDuty:
    """The duty: lead normally for `after` seconds, then never yield again."""
    if how not in _HOW:
        raise ValueError(f"{HANG_LEADER_DUTY}: the way to hang is one of {', '.join(_HOW)}")

    async def duty(context: LeaderContext) -> None:
        await trio.sleep(after)
        log(
            "Warning",
            "Test hook: the leader duty of epoch {Epoch} hangs ({How})",
            Epoch=context.epoch,
            How=how,
        )
        if how == "gil":
            while True:
                _BACKTRACKING.fullmatch(_SUBJECT)
        else:
            while True:
                time.sleep(3600)  # blocks the event loop's thread on purpose

    return duty


def _parse(value: str) -> tuple[float, str]:
    seconds, _, how = value.partition(":")
    try:
        after = float(seconds)
    except ValueError:
        after = math.nan
    if not (math.isfinite(after) and after >= 0):
        raise ValueError(
            f"{HANG_LEADER_DUTY} must be a number of seconds (optionally ':gil' or ':block'),"
            f" not {value!r}"
        )
    return after, how or "gil"


def install(
    runtime: _DutyRegistry,
    log: Callable[..., None],
    environ: Mapping[str, str] | None = None,
) -> None:
    """Register the duties the environment (default `os.environ`) asks for: none in production.
    Raises ValueError, naming the variable, for a value it cannot use."""
    if environ is None:
        environ = os.environ
    value = environ.get(HANG_LEADER_DUTY, "").strip()
    if not value:
        return
    after, how = _parse(value)
    log(
        "Warning",
        "Test hook {Variable} is set: the leader duty hangs {After} s after each activation",
        Variable=HANG_LEADER_DUTY,
        After=after,
    )
    runtime.add_leader_duty("test-hang", hang_leader_duty(after, how, log))
