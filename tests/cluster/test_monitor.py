"""The monitor kills a stuck node, and only a stuck node.

Every case runs a real node process (`NODE` below) that starts a `Monitor` and then misbehaves
in one way; the test watches how and when it dies, and what its stderr says.  Nothing here is
mocked: the point is that the kill comes from outside the stuck process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from seqfast.cluster.monitor import Monitor, MonitorClosed, boottime

# How late after its deadline a node may die: the watchdog wakes within a millisecond of it, the
# rest is the scheduler of a busy two-core test machine.
MARGIN = 0.5

NODE = r"""
import os, re, sys, threading, time
from seqfast.cluster.monitor import Monitor, boottime

mode = sys.argv[1]
monitor = Monitor(alive_within=float(sys.argv[2]))

def say(*words):
    print(*words, flush=True)

def beat(stop):
    # Stands in for the trio task: beats from a thread, so that only a held GIL can stop it.
    while not stop.is_set():
        monitor.loop_alive()
        time.sleep(0.05)

stop = threading.Event()
threading.Thread(target=beat, args=(stop,), daemon=True).start()
say("watchdog", monitor.pid)

if mode == "gil":
    deadline = boottime() + 0.5
    monitor.watch_command("deactivate", deadline, 7)
    say("deadline", repr(deadline))
    # Catastrophic backtracking: sre runs for minutes without releasing the GIL, so no Python
    # thread of this process (the beater included) runs until it returns.
    re.match(r"(a+)+$", "a" * 40 + "b")
    say("returned")
elif mode == "in-time":
    deadline = boottime() + 0.5
    monitor.watch_command("deactivate", deadline, 7)
    time.sleep(0.1)
    monitor.command_done("deactivate")
    time.sleep(0.8)  # well past the old deadline
    monitor.close()
    say("closed")
elif mode == "queue":
    monitor.queue_depth(3, 4)
    time.sleep(0.3)
    say("full", repr(boottime()))
    monitor.queue_depth(4, 4)
    time.sleep(5)
    say("returned")
elif mode == "loop":
    import trio

    async def main():
        async def beater():
            while True:
                monitor.loop_alive()
                await trio.sleep(0.05)

        async with trio.open_nursery() as nursery:
            stop.set()  # from here on only the trio task beats
            nursery.start_soon(beater)
            await trio.sleep(0.3)
            say("blocked", repr(boottime()))
            time.sleep(10)  # blocks the event loop: the beater never runs again
            say("returned")
            nursery.cancel_scope.cancel()

    trio.run(main)
elif mode == "close":
    monitor.close()
    monitor.close()
    say("closed", monitor._process.returncode)
elif mode == "exit":
    say("exiting")
elif mode == "hang":
    deadline = boottime() + 30
    monitor.watch_command("lead", deadline, 3)
    say("hanging")
    time.sleep(30)
elif mode == "watchdog-killed":
    stop.set()
    time.sleep(0.1)
    os.kill(monitor.pid, 9)
    time.sleep(0.3)
    say("killed")
    monitor.loop_alive()
    say("returned")
"""


class Node:
    def __init__(self, mode: str, alive_within: float = 5.0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", NODE, mode, str(alive_within)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        self.watchdog = int(self.expect("watchdog")[0])

    def expect(self, word: str) -> list[str]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        assert line and line[0] == word, (line, self.finish())
        return line[1:]

    def finish(self, timeout: float = 15) -> tuple[int, str, list[dict[str, Any]]]:
        """Wait for the node to end; its exit status, its stdout and its CLEF lines on stderr."""
        out, err = self.process.communicate(timeout=timeout)
        events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        return self.process.returncode, out, events


def running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie is dead: it only waits to be reaped)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return "zombie" not in state and "dead" not in state


def gone_within(pid: int, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while running(pid):
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def only_kill(events: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(events) == 1, events
    assert events[0]["@l"] == "Fatal"
    return events[0]


def test_a_native_call_that_holds_the_gil_past_a_deadline_is_killed() -> None:
    node = Node("gil", alive_within=30)
    deadline = float(node.expect("deadline")[0])
    status, out, events = node.finish()
    died = boottime()
    assert status == -signal.SIGKILL
    assert "returned" not in out
    assert deadline <= died < deadline + MARGIN
    event = only_kill(events)
    assert event["Reason"].startswith("command deactivate of epoch 7 is not done")
    assert event["NodePid"] == node.process.pid
    assert gone_within(node.watchdog, 2)


def test_a_command_done_in_time_is_not_killed() -> None:
    node = Node("in-time")
    status, out, events = node.finish()
    assert (status, out.split(), events) == (0, ["closed"], [])
    assert not running(node.watchdog)


def test_a_full_command_queue_is_killed_at_once() -> None:
    node = Node("queue")
    full = float(node.expect("full")[0])
    status, _, events = node.finish()
    assert status == -signal.SIGKILL
    assert boottime() < full + MARGIN
    assert only_kill(events)["Reason"] == "the command queue is full (4 of 4)"
    assert gone_within(node.watchdog, 2)


def test_an_event_loop_that_stops_beating_is_killed() -> None:
    node = Node("loop", alive_within=0.5)
    blocked = float(node.expect("blocked")[0])
    status, out, events = node.finish()
    died = boottime()
    assert status == -signal.SIGKILL
    assert "returned" not in out
    # The last beat came at most one beat period (0.05 s) before `blocked`.
    assert blocked + 0.5 - 0.1 <= died < blocked + 0.5 + MARGIN
    assert only_kill(events)["Reason"].startswith("the event loop has not reported alive for")


def test_close_stops_the_watchdog_and_a_closed_monitor_refuses_work() -> None:
    node = Node("close")
    status, out, events = node.finish()
    assert (status, out.split(), events) == (0, ["closed", "0"], [])
    assert not running(node.watchdog)


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_the_watchdog_never_outlives_its_node(how: str) -> None:
    node = Node("exit" if how == "exit" else "hang")
    if how == "sigkill":
        node.expect("hanging")
        node.process.send_signal(signal.SIGKILL)
    status, _, events = node.finish()
    assert status == (0 if how == "exit" else -signal.SIGKILL)
    assert events == []
    assert gone_within(node.watchdog, 2)


def test_a_node_whose_watchdog_died_kills_itself() -> None:
    node = Node("watchdog-killed")
    node.expect("killed")
    status, out, events = node.finish()
    assert status == -signal.SIGKILL
    assert "returned" not in out
    assert only_kill(events)["Reason"].startswith("the monitor process is gone or not reading")


def test_the_watchdog_ignores_the_signals_meant_for_the_node() -> None:
    node = Node("hang")
    node.expect("hanging")
    for sig in (signal.SIGINT, signal.SIGTERM):
        os.kill(node.watchdog, sig)
    time.sleep(0.2)
    assert running(node.watchdog)
    node.process.kill()
    node.finish()
    assert gone_within(node.watchdog, 2)


def test_arguments_are_checked_before_anything_is_sent() -> None:
    with pytest.raises(ValueError):
        Monitor(alive_within=0)
    with pytest.raises(ValueError):
        Monitor(alive_within=float("nan"))
    with Monitor(alive_within=60) as monitor:
        for name in ("", "two words", " padded"):
            with pytest.raises(ValueError):
                monitor.watch_command(name, boottime() + 60, 1)
        with pytest.raises(ValueError):
            monitor.watch_command("lead", float("inf"), 1)
        monitor.watch_command("lead", boottime() + 60, 1)
        monitor.command_done("lead")
    with pytest.raises(MonitorClosed):
        monitor.loop_alive()
