"""Lease timing: how long a lease lasts, how often it is renewed, when a leader must stop.

All durations are seconds.  The lease expires by the *database's* clock, `lease` after the
statement that granted or renewed it ran.  A node judges its own leadership from its monotonic
clock, counted from when the renewal that succeeded was *sent* (never from when the reply came
back: every delay on the way would otherwise extend the node's belief past the database's).
With L = `lease`, R = `renew_every`, J = `renew_jitter`, D = `step_down_after`,
Tq = `call_timeout`, K = `monitor_kill_after` and ρ = `max_clock_rate_error`, `validate()`
refuses a combination unless:

1. R·(1 + J) + Tq < D: a renewal sent as late as the jittered period allows still has its whole
   call timeout to be answered before the leader steps down.
2. ⌊(D − Tq) / R⌋ ≥ `min_renew_attempts` (3): a leader is deposed only after several renewals in
   a row have failed, never by one slow statement.
3. D < K: a leader that steps down is given G = K − D to stop its leader-only work before the
   monitor kills the process.
4. K·(1 + ρ) < L: the node is dead before the database could give its lease to another node,
   even if the node's clock runs slower than the database's by ρ.

Together they give renew + timeout < step-down < kill < lease, with margins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from seqfast.errors import SeqfastError

__all__ = ["DEFAULT", "TEST", "Timing", "TimingError"]

# ⌊(D − Tq) / R⌋ is computed in floating point, where (0.7 − 0.1) / 0.2 is 2.9999999999999996;
# this much slack keeps an exact quotient from being counted one attempt short.
_QUOTIENT_SLACK = 1e-9


class TimingError(SeqfastError, ValueError):
    """The lease settings cannot keep one leader at a time; the node refuses to start.

    `problems` holds one complete sentence per broken rule.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__(" ".join(problems))
        self.problems = tuple(problems)


@dataclass(frozen=True, slots=True)
class Timing:
    lease: float
    """L: how long the database keeps a lease after granting or renewing it (database clock)."""
    renew_every: float
    """R: the period between renewal attempts of the leader (and acquisition attempts of others)."""
    step_down_after: float
    """D: a leader steps down when no renewal sent within this long has succeeded."""
    call_timeout: float
    """Tq: the bound on one database call (client timeout and statement timeout)."""
    monitor_kill_after: float
    """K: the monitor kills the process if leader-only work has not stopped this long after the
    last successful renewal was sent."""
    renew_jitter: float = 0.2
    """J: renewals are spaced up to R·(1 + J) apart, so that nodes do not move in lockstep."""
    max_clock_rate_error: float = 0.2
    """ρ: the largest relative difference in rate between a node's clock and the database's."""
    min_renew_attempts: int = 3
    """How many renewal attempts must fit between the last success and the step-down."""

    @property
    def deactivation_grace(self) -> float:
        """G = K − D: how long a leader has to stop once it steps down on its own deadline."""
        return self.monitor_kill_after - self.step_down_after

    @property
    def renew_attempts(self) -> int:
        """⌊(D − Tq) / R⌋: renewals a leader can try before it must step down."""
        return math.floor(
            (self.step_down_after - self.call_timeout) / self.renew_every + _QUOTIENT_SLACK
        )

    def validate(self) -> None:
        """Raise `TimingError` naming every broken rule (see the module docstring)."""
        problems = self._bad_values()
        if not problems:
            problems = self._broken_rules()
        if problems:
            raise TimingError(problems)

    def _bad_values(self) -> list[str]:
        problems = []
        for name in ("lease", "renew_every", "step_down_after", "call_timeout"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                problems.append(f"{name} must be a positive number of seconds, not {value!r}.")
        if not (math.isfinite(self.monitor_kill_after) and self.monitor_kill_after > 0):
            problems.append(
                "monitor_kill_after must be a positive number of seconds, "
                f"not {self.monitor_kill_after!r}."
            )
        for name in ("renew_jitter", "max_clock_rate_error"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                problems.append(f"{name} must be a fraction in [0, 1), not {value!r}.")
        if self.min_renew_attempts < 1:
            problems.append(
                f"min_renew_attempts must be at least 1, not {self.min_renew_attempts!r}."
            )
        return problems

    def _broken_rules(self) -> list[str]:
        L, R, D, K = self.lease, self.renew_every, self.step_down_after, self.monitor_kill_after
        Tq, J, rho = self.call_timeout, self.renew_jitter, self.max_clock_rate_error
        problems = []
        if not R * (1 + J) + Tq < D:
            problems.append(
                f"step_down_after ({D:g} s) must be greater than renew_every × (1 + renew_jitter)"
                f" + call_timeout ({R:g} × {1 + J:g} + {Tq:g} = {R * (1 + J) + Tq:g} s), so that"
                " a renewal sent at the end of a jittered period can still be answered before"
                " the leader steps down."
            )
        if self.renew_attempts < self.min_renew_attempts:
            problems.append(
                f"step_down_after − call_timeout ({D:g} − {Tq:g} = {D - Tq:g} s) leaves room for"
                f" only {self.renew_attempts} renewal attempt(s) every renew_every ({R:g} s);"
                f" at least {self.min_renew_attempts} are needed so that a leader is not deposed"
                " by one or two slow renewals."
            )
        if not D < K:
            problems.append(
                f"monitor_kill_after ({K:g} s) must be greater than step_down_after ({D:g} s):"
                " the difference is the time a leader is given to stop its leader-only work."
            )
        if not K * (1 + rho) < L:
            problems.append(
                f"monitor_kill_after × (1 + max_clock_rate_error) ({K:g} × {1 + rho:g} ="
                f" {K * (1 + rho):g} s) must be less than lease ({L:g} s), so that a leader that"
                " cannot stop is killed before the database can give its lease to another node,"
                " even when its clock runs slow."
            )
        return problems


# The production figures: client-go's 15 s lease, 10 s renew deadline and 2 s retry period, a
# 2 s bound on each database call, and 2 s for leader-only work to stop.
DEFAULT = Timing(lease=15, renew_every=2, step_down_after=10, call_timeout=2, monitor_kill_after=12)

# The same rules at about a quarter of the scale, for tests and simulations that run real or
# mock clocks: failover in about 5 s instead of 20.
TEST = Timing(lease=4, renew_every=0.5, step_down_after=2.5, call_timeout=0.5, monitor_kill_after=3)
