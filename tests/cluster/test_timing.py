import dataclasses

import pytest

from seqfast.cluster.timing import DEFAULT, TEST, Timing, TimingError
from seqfast.errors import SeqfastError


def problems(timing: Timing) -> tuple[str, ...]:
    with pytest.raises(TimingError) as caught:
        timing.validate()
    return caught.value.problems


def test_the_shipped_profiles_are_valid() -> None:
    DEFAULT.validate()
    TEST.validate()
    assert (DEFAULT.lease, DEFAULT.renew_every, DEFAULT.step_down_after) == (15, 2, 10)
    assert (DEFAULT.call_timeout, DEFAULT.monitor_kill_after) == (2, 12)
    assert Timing(15, 2, 10, 2, 12) == DEFAULT


@pytest.mark.parametrize("timing", [DEFAULT, TEST], ids=["DEFAULT", "TEST"])
def test_the_shipped_profiles_keep_the_ordering_with_margins(timing: Timing) -> None:
    # renew + timeout < step-down < kill < lease, and room for at least 3 renewals.
    assert timing.renew_every + timing.call_timeout < timing.step_down_after
    assert timing.step_down_after < timing.monitor_kill_after < timing.lease
    assert timing.renew_attempts >= 3
    assert timing.deactivation_grace == timing.monitor_kill_after - timing.step_down_after


def test_the_test_profile_is_faster() -> None:
    assert TEST.lease < DEFAULT.lease / 2
    assert TEST.step_down_after < DEFAULT.step_down_after / 2


def test_a_step_down_too_close_to_the_renewal_period() -> None:
    # With three attempts required this rule follows from the next one; alone with one attempt.
    timing = dataclasses.replace(DEFAULT, step_down_after=4.4, min_renew_attempts=1)
    (message,) = problems(timing)
    assert message == (
        "step_down_after (4.4 s) must be greater than renew_every × (1 + renew_jitter)"
        " + call_timeout (2 × 1.2 + 2 = 4.4 s), so that a renewal sent at the end of a jittered"
        " period can still be answered before the leader steps down."
    )


def test_too_few_renewal_attempts_before_the_step_down() -> None:
    timing = dataclasses.replace(DEFAULT, renew_every=3, call_timeout=1, step_down_after=9)
    (message,) = problems(timing)
    assert message == (
        "step_down_after − call_timeout (9 − 1 = 8 s) leaves room for only 2 renewal attempt(s)"
        " every renew_every (3 s); at least 3 are needed so that a leader is not deposed by one"
        " or two slow renewals."
    )


def test_an_exact_number_of_attempts_counts_despite_floating_point() -> None:
    # (0.7 − 0.1) / 0.2 is 2.9999999999999996 in binary floating point.
    timing = Timing(lease=2, renew_every=0.2, step_down_after=0.7, call_timeout=0.1,
                    monitor_kill_after=0.9)  # fmt: skip
    assert timing.renew_attempts == 3
    timing.validate()


def test_no_grace_between_step_down_and_kill() -> None:
    (message,) = problems(dataclasses.replace(DEFAULT, monitor_kill_after=10))
    assert message == (
        "monitor_kill_after (10 s) must be greater than step_down_after (10 s): the difference"
        " is the time a leader is given to stop its leader-only work."
    )


def test_a_kill_deadline_without_margin_for_clock_rate_error() -> None:
    # 12 s is below the 15 s lease, but not once a 30 % slow clock is allowed for.
    (message,) = problems(dataclasses.replace(DEFAULT, max_clock_rate_error=0.3))
    assert message == (
        "monitor_kill_after × (1 + max_clock_rate_error) (12 × 1.3 = 15.6 s) must be less than"
        " lease (15 s), so that a leader that cannot stop is killed before the database can"
        " give its lease to another node, even when its clock runs slow."
    )


def test_a_lease_shorter_than_the_step_down_breaks_the_kill_rule() -> None:
    (message,) = problems(dataclasses.replace(DEFAULT, lease=9))
    assert message.startswith("monitor_kill_after × (1 + max_clock_rate_error) (12 × 1.2 = 14.4 s)")


def test_every_broken_rule_is_reported_at_once() -> None:
    timing = Timing(lease=5, renew_every=4, step_down_after=6, call_timeout=3, monitor_kill_after=6)
    found = problems(timing)
    assert [p.split(" ")[0] for p in found] == [
        "step_down_after",
        "step_down_after",
        "monitor_kill_after",
        "monitor_kill_after",
    ]
    with pytest.raises(TimingError) as caught:
        timing.validate()
    assert str(caught.value) == " ".join(found)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lease": 0}, "lease must be a positive number of seconds, not 0."),
        ({"renew_every": -1.0}, "renew_every must be a positive number of seconds, not -1.0."),
        (
            {"call_timeout": float("nan")},
            "call_timeout must be a positive number of seconds, not nan.",
        ),
        (
            {"monitor_kill_after": float("inf")},
            "monitor_kill_after must be a positive number of seconds, not inf.",
        ),
        ({"renew_jitter": 1.0}, "renew_jitter must be a fraction in [0, 1), not 1.0."),
        (
            {"max_clock_rate_error": -0.1},
            "max_clock_rate_error must be a fraction in [0, 1), not -0.1.",
        ),
        ({"min_renew_attempts": 0}, "min_renew_attempts must be at least 1, not 0."),
    ],
)
def test_values_out_of_range(change: dict[str, float], message: str) -> None:
    assert problems(dataclasses.replace(DEFAULT, **change)) == (message,)  # type: ignore[arg-type]


def test_the_error_is_a_seqfast_error_and_a_value_error() -> None:
    with pytest.raises(SeqfastError):
        dataclasses.replace(DEFAULT, lease=1).validate()
    assert issubclass(TimingError, ValueError)


def test_timing_is_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT.lease = 1  # type: ignore[misc]
