"""The node runtime with the real monitor, in a real process: it lives while it behaves and dies
when its leader work cannot be stopped.

Each case runs `NODE` in its own process (the monitor kills its node, and the node kills
itself: neither may be the test process): a node on a SQLite lease with the TEST timing and a
`Monitor` watching it leads for a while, then is asked to shut down.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

NODE = r"""
import sys, threading, trio
from seqfast import logs
from seqfast.cluster.lease import Lease, NodeInfo
from seqfast.cluster.monitor import Monitor
from seqfast.cluster.runtime import NodeRuntime
from seqfast.cluster.timing import TEST

url, mode = sys.argv[1], sys.argv[2]
monitor = Monitor(alive_within=TEST.deactivation_grace)
lease = Lease(url, cluster="c1", call_timeout=TEST.call_timeout)
node = NodeInfo(node_id="a", api_url="http://a.test", internal_url="http://a.test")
runtime = NodeRuntime(lease, node, TEST, monitor=monitor, log=logs.log)
never = threading.Event()

async def duty(context):
    if mode == "stubborn":
        # A worker thread cannot be cancelled: this duty outlives its deactivation.
        await trio.to_thread.run_sync(never.wait)
    else:
        await trio.sleep_forever()

runtime.add_leader_duty("work", duty)

async def main():
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        while runtime.role != "leader":
            await trio.sleep(0.05)
        print("leading", flush=True)
        await trio.sleep(6 * TEST.renew_every)  # renewals and kill deadlines, all met
        runtime.shutdown()

trio.run(main)
monitor.close()
lease.close()
print("stopped", flush=True)
"""


def _run_node(tmp_path: Path, mode: str) -> tuple[int, str, list[dict[str, Any]]]:
    url = f"sqlite:///{tmp_path / 'cluster.sqlite'}"
    done = subprocess.run(
        [sys.executable, "-c", NODE, url, mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    return done.returncode, done.stdout, events


def test_a_node_that_behaves_is_left_alone_and_stops_cleanly(tmp_path: Path) -> None:
    status, stdout, events = _run_node(tmp_path, "well")
    assert status == 0, events
    assert stdout.split() == ["leading", "stopped"]
    templates = [e["@mt"] for e in events]
    assert "Leader duties started for epoch {Epoch}" in templates
    assert "Leader duties stopped for epoch {Epoch}" in templates
    assert "Released the lease of epoch {Epoch}" in templates
    assert not [e for e in events if e["@l"] == "Fatal"]


def test_a_node_whose_duty_will_not_stop_is_killed(tmp_path: Path) -> None:
    status, stdout, events = _run_node(tmp_path, "stubborn")
    assert status == -signal.SIGKILL
    assert stdout.split() == ["leading"]
    fatal = [e for e in events if e["@l"] == "Fatal"]
    assert fatal, events
    # Whoever came first, the runtime itself or its watchdog, names the overrun deactivation.
    assert "epoch 1" in fatal[0]["Reason"]
    templates = [e["@mt"] for e in events]
    assert "Leader duties stopped for epoch {Epoch}" not in templates
    assert "Released the lease of epoch {Epoch}" not in templates
