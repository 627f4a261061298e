"""The fault harness's judge: leadership intervals from self-log lines and the overlap check.

These are pure functions; the fault tests trust them to call an overlap an overlap and nothing
else, so they are checked against generated histories whose truth is known by construction."""

from __future__ import annotations

import math
from dataclasses import dataclass

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqfast.testing.cluster_harness import (
    Freeze,
    Interval,
    Transition,
    assert_no_overlap,
    leader_intervals,
    overlaps,
    parse_transition,
)


def line(node: str, epoch: int, transition: str, at: float, **extra: object) -> str:
    verb = "started" if transition == "activated" else "stopped"
    event = {
        "@t": "2026-11-26T03:00:00.000000Z",
        "@mt": f"Leader duties {verb} for epoch {{Epoch}}",
        "@l": "Information",
        "NodeId": node,
        "Epoch": epoch,
        "Transition": transition,
        "Monotonic": at,
        **extra,
    }
    return orjson.dumps(event).decode()


def act(node: str, epoch: int, at: float) -> Transition:
    return Transition(node, epoch, True, at)


def deact(node: str, epoch: int, at: float) -> Transition:
    return Transition(node, epoch, False, at)


# -- parsing -------------------------------------------------------------------------------------


@given(
    node=st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1),
    epoch=st.integers(1, 2**62),
    activated=st.booleans(),
    at=st.floats(0, 1e9, allow_nan=False),
)
def test_a_transition_line_parses_to_what_it_says(
    node: str, epoch: int, activated: bool, at: float
) -> None:
    kind = "activated" if activated else "deactivated"
    parsed = parse_transition(line(node, epoch, kind, at))
    assert parsed is not None
    assert (parsed.node_id, parsed.epoch, parsed.activated, parsed.monotonic) == (
        node,
        epoch,
        activated,
        at,
    )


def test_stepped_down_counts_as_a_deactivation() -> None:
    text = orjson.dumps(
        {
            "@mt": "Stepped down: {Reason}",
            "@l": "Warning",
            "Reason": "no renewal",
            "NodeId": "n1",
            "Epoch": 4,
            "Transition": "deactivated",
            "Monotonic": 12.5,
        }
    ).decode()
    assert parse_transition(text) == Transition("n1", 4, False, 12.5, "Stepped down: {Reason}")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Traceback (most recent call last):",
        '{"@mt": "seqfast listening", "Transition": 3',
        '{"@mt": "Listening on {Address}", "Address": "http://127.0.0.1:1"}',
        '{"@mt": "x", "Transition": "renewed", "NodeId": "n1", "Epoch": 1, "Monotonic": 1}',
        '["Transition"]',
    ],
)
def test_other_lines_are_not_transitions(text: str) -> None:
    assert parse_transition(text) is None


@pytest.mark.parametrize(
    "props",
    [
        {"Epoch": 1, "Monotonic": 1.0},
        {"NodeId": "n1", "Monotonic": 1.0},
        {"NodeId": "n1", "Epoch": "1", "Monotonic": 1.0},
        {"NodeId": "n1", "Epoch": True, "Monotonic": 1.0},
        {"NodeId": "n1", "Epoch": 1},
        {"NodeId": "", "Epoch": 1, "Monotonic": 1.0},
    ],
)
def test_a_transition_missing_what_the_contract_promises_is_an_error(
    props: dict[str, object],
) -> None:
    with pytest.raises(ValueError, match="transition event"):
        parse_transition(orjson.dumps({"@mt": "x", "Transition": "activated", **props}).decode())


# -- intervals of one life ---------------------------------------------------------------------


def test_activation_to_the_last_deactivation_of_its_epoch() -> None:
    history = [act("n1", 3, 1.0), deact("n1", 3, 2.0), deact("n1", 3, 2.25), act("n1", 5, 4.0)]
    assert leader_intervals(history) == [
        Interval("n1", 3, 1.0, 2.25, "deactivated"),
        Interval("n1", 5, 4.0, math.inf, "open"),
    ]


def test_an_interval_open_at_death_ends_there() -> None:
    assert leader_intervals([act("n1", 1, 1.0)], death=3.5) == [Interval("n1", 1, 1.0, 3.5, "died")]
    # Dying after stepping down changes nothing.
    assert leader_intervals([act("n1", 1, 1.0), deact("n1", 1, 2.0)], death=3.5) == [
        Interval("n1", 1, 1.0, 2.0, "deactivated")
    ]


def test_a_deactivation_without_activation_is_ignored() -> None:
    assert leader_intervals([deact("n1", 7, 1.0)]) == []


def test_a_long_freeze_ends_leadership_at_the_step_down_deadline() -> None:
    history = [act("n1", 2, 1.0), deact("n1", 2, 20.0)]
    frozen = [Freeze(5.0, 19.9)]
    assert leader_intervals(history, freezes=frozen, step_down_after=2.5) == [
        Interval("n1", 2, 1.0, 7.5, "froze")
    ]
    # A freeze shorter than D: the node may have renewed after it; nothing is assumed.
    short = [Freeze(5.0, 6.0)]
    assert leader_intervals(history, freezes=short, step_down_after=2.5) == [
        Interval("n1", 2, 1.0, 20.0, "deactivated")
    ]
    # A freeze after the interval changes nothing; nor does omitting D.
    assert leader_intervals(history, freezes=[Freeze(30.0, 40.0)], step_down_after=2.5)[0].end == 20
    assert leader_intervals(history, freezes=frozen)[0].end == 20.0


def test_a_freeze_still_going_on_counts_as_long() -> None:
    result = leader_intervals([act("n1", 2, 1.0)], freezes=[Freeze(5.0)], step_down_after=2.5)
    assert result == [Interval("n1", 2, 1.0, 7.5, "froze")]


@pytest.mark.parametrize(
    ("history", "death", "message"),
    [
        ([act("n1", 1, 1.0), act("n1", 2, 2.0)], None, "still active"),
        ([act("n1", 2, 1.0), deact("n1", 2, 2.0), act("n1", 2, 3.0)], None, "activated after"),
        ([act("n1", 3, 1.0), deact("n1", 3, 2.0), act("n1", 2, 3.0)], None, "activated after"),
        ([act("n1", 1, 2.0), deact("n1", 1, 1.0)], None, "logged after"),
        ([act("n1", 1, 1.0), deact("n1", 1, 5.0)], 4.0, "after the process died"),
    ],
)
def test_what_no_correct_node_logs_is_an_error(
    history: list[Transition], death: float | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        leader_intervals(history, death=death)


# -- the overlap check against generated cluster histories --------------------------------------


@dataclass(frozen=True)
class Term:
    node: str
    epoch: int
    start: float
    end: float  # inf: still leading at the end of the history
    stepped_down_first: bool  # a "Stepped down" logged before "Leader duties stopped"


@st.composite
def disjoint_terms(draw: st.DrawFn) -> list[Term]:
    """Leadership terms one after another, each of a random node, with gaps (possibly zero)."""
    count = draw(st.integers(0, 12))
    terms: list[Term] = []
    now = draw(st.floats(0, 100))
    epoch = 0
    for index in range(count):
        now += draw(st.floats(0, 5))
        epoch += draw(st.integers(1, 3))
        length = draw(st.floats(0.001, 10))
        last = index == count - 1
        end = math.inf if last and draw(st.booleans()) else now + length
        terms.append(
            Term(draw(st.sampled_from(["n1", "n2", "n3"])), epoch, now, end, draw(st.booleans()))
        )
        now = end
    return terms


def intervals_of(terms: list[Term]) -> list[Interval]:
    found: list[Interval] = []
    for node in ("n1", "n2", "n3"):
        history: list[Transition] = []
        for term in (t for t in terms if t.node == node):
            history.append(act(node, term.epoch, term.start))
            if term.end != math.inf:
                if term.stepped_down_first:
                    history.append(deact(node, term.epoch, (term.start + term.end) / 2))
                history.append(deact(node, term.epoch, term.end))
        found += leader_intervals(history)
    return found


@given(disjoint_terms())
def test_disjoint_terms_give_their_intervals_and_no_overlap(terms: list[Term]) -> None:
    found = intervals_of(terms)
    assert sorted((i.node_id, i.epoch, i.start, i.end) for i in found) == sorted(
        (t.node, t.epoch, t.start, t.end) for t in terms
    )
    assert overlaps(found) == []
    assert_no_overlap(found)


@given(disjoint_terms(), st.data())
def test_a_term_that_starts_before_the_previous_one_ends_is_an_overlap(
    terms: list[Term], data: st.DataObject
) -> None:
    finite = [i for i in range(1, len(terms)) if terms[i - 1].end - terms[i - 1].start > 0.01]
    if not finite:
        return
    i = data.draw(st.sampled_from(finite))
    before = terms[i - 1]
    # Move term i to start inside term i-1, keeping its node's own history well formed.
    start = data.draw(st.floats(before.start + 0.001, before.end - 0.001))
    if before.node == terms[i].node:
        return  # one node cannot lead twice at once; that is a different error
    moved = Term(terms[i].node, terms[i].epoch, start, terms[i].end, terms[i].stepped_down_first)
    changed = [*terms[:i], moved, *terms[i + 1 :]]
    if any(
        t.node == moved.node and t is not moved and t.start < moved.end and moved.start < t.end
        for t in changed
    ):
        return
    found = intervals_of(changed)
    pairs = overlaps(found)
    assert any({a.epoch, b.epoch} == {before.epoch, moved.epoch} for a, b in pairs)
    with pytest.raises(AssertionError, match="two nodes acted as leader at once"):
        assert_no_overlap(found)


@given(
    st.lists(
        st.tuples(st.floats(0, 50), st.floats(0, 10) | st.just(math.inf)),
        max_size=15,
    )
)
def test_overlaps_finds_exactly_the_pairs_that_share_an_instant(
    spans: list[tuple[float, float]],
) -> None:
    intervals = [
        Interval(f"n{k}", k, start, start + length, "deactivated")
        for k, (start, length) in enumerate(spans)
    ]
    expected = {
        frozenset((a.epoch, b.epoch))
        for x, a in enumerate(intervals)
        for b in intervals[x + 1 :]
        if a.start < b.end and b.start < a.end
    }
    assert {frozenset((a.epoch, b.epoch)) for a, b in overlaps(intervals)} == expected


def test_touching_intervals_do_not_overlap() -> None:
    first = Interval("n1", 1, 0.0, 2.0, "deactivated")
    second = Interval("n2", 2, 2.0, 3.0, "deactivated")
    assert overlaps([second, first]) == []
    assert not first.overlaps(second)
