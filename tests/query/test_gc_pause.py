"""The collector pause around queries restores the collector's state, whatever overlaps."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from seqfast.query.gc_pause import gc_paused


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_paused_inside_and_back_on_after() -> None:
    gc.enable()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()


def test_a_collector_switched_off_by_the_application_stays_off() -> None:
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()


def test_overlapping_pauses_in_threads_end_with_the_last() -> None:
    gc.enable()
    inside = threading.Barrier(2)
    first_done = threading.Event()

    def first() -> None:
        with gc_paused():
            inside.wait()
        first_done.set()

    thread = threading.Thread(target=first)
    thread.start()
    with gc_paused():
        inside.wait()
        first_done.wait(10)
        assert not gc.isenabled()  # the other query ended; this one still runs
    thread.join(10)
    assert gc.isenabled()


def test_an_exception_ends_the_pause() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("query failed")
    assert gc.isenabled()
