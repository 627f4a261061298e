"""Failover time of a real cluster: how long after the leader is SIGKILLed or SIGTERMed another
node leads and ingestion is acknowledged again.

    python3 bench/failover.py [--profile test|default|both] [--fault kill|term|both|margins|...]
                              [--trials 10] [--nodes 3] [--json OUT] [--keep DIR]

Method: `--nodes` `seqfast serve` processes on loopback share PostgreSQL on 127.0.0.1:5432
(database `test`, a fresh cluster name per run), started by `seqfast.testing.cluster_harness`
with `--timing-profile`.  Each trial waits until one node leads and every node has answered an
ingest request with 201, then sends the fault to the leader and records, on `time.monotonic()`
(one clock for every process of the machine):

* **leader**: from the fault to the successor's "Leader duties started" event (its `Monotonic`
  property);
* **ingest gap**: the longest time without a 201 answer, from the fault until the first 201
  after the successor's activation.  Probes (a one-event CLEF batch, each bounded by 1 s) go
  every 20 ms to the surviving nodes in turn (followers forward to the leader).  After SIGKILL
  this is the time from the fault to the first 201.  After SIGTERM the old leader goes on
  serving, through the followers, until it has drained and stops accepting, so the gap starts
  at the last 201 it gave, not at the signal.

The faulted node is then started again on its data directory and the next trial begins once it
is back.  After all trials the leadership intervals every node logged are checked for overlap.
Reports the median and the worst of each figure, per profile and fault.

`--fault margins` (or one of its faults) measures instead how early a leader that must stop
does stop, against the instant its lease expires in the database (read straight from
PostgreSQL right after the fault: no renewal can reach it any more, so the expiry is final,
converted to `time.monotonic()` by reading both clocks at once):

* **cut-reset** / **cut-blackhole**: the leader's database link is cut through its proxy (every
  connection reset, or every byte held); margin = expiry − its "deactivated" event;
* **stop**: the leader's process alone gets SIGSTOP; margin = expiry − its death (its monitor
  process kills it), as seen by the harness;
* **hang**: every node runs with `SEQFASTTEST_HANG_LEADER_DUTY=1.0:gil` (a leader duty that
  holds the GIL for ever 1 s into each leadership); margin = expiry − the leader's death.

and, for each, **takeover** = the successor's activation − the expiry.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import itertools
import json
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seqfast.cluster import test_hooks
from seqfast.testing.cluster_harness import Cluster, Node

PROBE_EVERY = 0.02
PROBE_TIMEOUT = 1.0


@dataclass
class Trial:
    profile: str
    fault: str
    leader_s: float
    gap_s: float
    old_epoch: int
    new_epoch: int


def ingest_gap(
    cluster: Cluster, survivors: list[Node], since: float, bound: float
) -> tuple[float, Node]:
    """Probes ingestion through `survivors` from `since` (the fault) until a 201 comes after a
    successor has logged its activation; returns the longest span without a 201 (the fault
    counting as the last one before) and the successor."""
    deadline = since + bound
    acked = [since]
    index = 0
    while time.monotonic() < deadline:
        node = survivors[index % len(survivors)]
        index += 1
        try:
            answer = node.ingest(1, tag="failover-probe", timeout=PROBE_TIMEOUT)
        except OSError:
            answer = None
        if answer is not None and answer.status == 201:
            at = time.monotonic()
            acked.append(at)
            successor = next(
                (n for n in survivors if (t := n.leading()) is not None and t.monotonic < at),
                None,
            )
            if successor is not None:
                return max(b - a for a, b in itertools.pairwise(acked)), successor
        time.sleep(PROBE_EVERY)
    raise RuntimeError(f"no 201 from a new leader within {bound:g} s\n{cluster.report()}")


def settle(cluster: Cluster) -> Node:
    """Until one node leads and every node takes ingestion."""
    leader = cluster.wait_for_leader(cluster.failover_bound() * 3)
    for node in cluster.nodes:
        cluster.wait_for_ingest(cluster.failover_bound() * 3, via=[node], tag="settle")
    return leader


def run_trials(profile: str, fault: str, trials: int, nodes: int, base: Path) -> list[Trial]:
    results: list[Trial] = []
    with Cluster(base / f"{profile}-{fault}", nodes, timing_profile=profile) as cluster:  # type: ignore[arg-type]
        cluster.start()
        bound = cluster.failover_bound() * 2
        for number in range(1, trials + 1):
            leader = settle(cluster)
            transition = leader.leading()
            assert transition is not None
            survivors = [n for n in cluster.nodes if n is not leader]
            at = leader.kill() if fault == "kill" else leader.term()
            gap_s, successor = ingest_gap(cluster, survivors, at, bound)
            activated = successor.leading()
            assert activated is not None
            trial = Trial(
                profile,
                fault,
                round(activated.monotonic - at, 4),
                round(gap_s, 4),
                transition.epoch,
                activated.epoch,
            )
            results.append(trial)
            print(
                f"{profile:7} {fault:4} trial {number:2}: leader {trial.leader_s:7.3f} s,"
                f" ingest gap {trial.gap_s:7.3f} s"
                f" (epoch {trial.old_epoch} -> {trial.new_epoch})",
                flush=True,
            )
            if fault == "term":
                leader.wait_exit()
            leader.start()
        cluster.assert_no_overlap()
    return results


MARGIN_FAULTS = ("cut-reset", "cut-blackhole", "stop", "hang")


@dataclass
class Margin:
    profile: str
    fault: str
    margin_s: float
    takeover_s: float
    epoch: int


def first_activation_after(cluster: Cluster, epoch: int) -> float | None:
    """When a node first activated an epoch newer than `epoch`, if one has."""
    found = [
        t.monotonic
        for n in cluster.nodes
        for t in n.transitions()
        if t.activated and t.epoch > epoch
    ]
    return min(found) if found else None


def run_margins(profile: str, fault: str, trials: int, nodes: int, base: Path) -> list[Margin]:
    results: list[Margin] = []
    env = {test_hooks.HANG_LEADER_DUTY: "1.0:gil"} if fault == "hang" else {}
    with Cluster(
        base / f"{profile}-{fault}",
        nodes,
        timing_profile=profile,  # type: ignore[arg-type]
        env=env,
    ) as cluster:
        if fault != "hang":
            cluster.start()
        bound = cluster.failover_bound() * 3
        for number in range(1, trials + 1):
            if fault == "hang":
                # Every leader dies within seconds: restart the dead, and wait for no more than
                # a leader (its HTTP may never answer before it hangs).
                for node in cluster.nodes:
                    if not node.alive:
                        node.start(wait=False)
                leader = cluster.wait_for_leader(bound)
            else:
                leader = settle(cluster)
            transition = leader.leading()
            assert transition is not None
            epoch = transition.epoch
            if fault.startswith("cut-"):
                assert leader.proxy is not None
                leader.proxy.cut(fault.removeprefix("cut-"))  # type: ignore[arg-type]
            elif fault == "stop":
                leader.stop()
            if fault == "hang":
                # It renews until its loop hangs: its expiry is final only once it is dead.
                leader.wait_exit(bound)
            row = cluster.lease_row()
            assert row is not None and row[:2] == (leader.node_id, epoch), row
            expires_at = row[2]
            if fault.startswith("cut-"):
                stopped: float = cluster.wait_for(
                    "the step-down", functools.partial(leader.deactivated, epoch), bound
                )
            else:
                leader.wait_exit(bound)
                assert leader.life.exited_at is not None
                stopped = leader.life.exited_at
            # The successor's activation, from the log (it may have hung and died since).
            takeover: float = cluster.wait_for(
                "a successor",
                functools.partial(first_activation_after, cluster, epoch),
                bound,
            )
            margin = Margin(
                profile,
                fault,
                round(expires_at - stopped, 4),
                round(takeover - expires_at, 4),
                epoch,
            )
            results.append(margin)
            print(
                f"{profile:7} {fault:13} trial {number:2}: stopped {margin.margin_s:6.3f} s before"
                f" the lease expired; successor {margin.takeover_s:6.3f} s after (epoch {epoch})",
                flush=True,
            )
            if fault.startswith("cut-"):
                assert leader.proxy is not None
                leader.proxy.restore()
            elif fault == "stop":
                leader.start()
        cluster.assert_no_overlap()
    return results


def _by_fault(
    results: Sequence[Any], figures: dict[str, Callable[[list[Any]], float]]
) -> list[dict[str, object]]:
    """One row per (profile, fault): its trial count and `figures` of its trials, rounded."""
    rows: list[dict[str, object]] = []
    for profile, fault in sorted({(r.profile, r.fault) for r in results}):
        group = [r for r in results if (r.profile, r.fault) == (profile, fault)]
        row: dict[str, object] = {"profile": profile, "fault": fault, "trials": len(group)}
        row.update({name: round(figure(group), 3) for name, figure in figures.items()})
        rows.append(row)
    return rows


def margin_summary(results: list[Margin]) -> list[dict[str, object]]:
    return _by_fault(
        results,
        {
            "margin_median_s": lambda g: statistics.median(r.margin_s for r in g),
            "margin_smallest_s": lambda g: min(r.margin_s for r in g),
            "takeover_median_s": lambda g: statistics.median(r.takeover_s for r in g),
            "takeover_worst_s": lambda g: max(r.takeover_s for r in g),
        },
    )


def summary(results: list[Trial]) -> list[dict[str, object]]:
    return _by_fault(
        results,
        {
            "leader_median_s": lambda g: statistics.median(r.leader_s for r in g),
            "leader_worst_s": lambda g: max(r.leader_s for r in g),
            "gap_median_s": lambda g: statistics.median(r.gap_s for r in g),
            "gap_worst_s": lambda g: max(r.gap_s for r in g),
        },
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=["test", "default", "both"], default="both")
    parser.add_argument(
        "--fault",
        choices=["kill", "term", "both", "margins", *MARGIN_FAULTS],
        default="both",
        help="both = kill and term; margins = " + ", ".join(MARGIN_FAULTS),
    )
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the trials and the summary here")
    parser.add_argument("--keep", type=Path, help="keep data directories and node logs here")
    args = parser.parse_args()
    if args.trials < 1 or args.nodes < 2:
        parser.error("at least 1 trial and 2 nodes")
    profiles = ["test", "default"] if args.profile == "both" else [args.profile]
    faults = {"both": ["kill", "term"], "margins": list(MARGIN_FAULTS)}.get(
        args.fault, [args.fault]
    )
    # SIGTERM (nohup runs, timeouts) unwinds like Ctrl-C, so that every node is stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = dt.datetime.now(dt.UTC)
    results: list[Trial] = []
    margins: list[Margin] = []
    with tempfile.TemporaryDirectory(prefix="seqfast-failover-") as scratch:
        base = args.keep or Path(scratch)
        for profile in profiles:
            for fault in faults:
                if fault in MARGIN_FAULTS:
                    margins += run_margins(profile, fault, args.trials, args.nodes, base)
                else:
                    results += run_trials(profile, fault, args.trials, args.nodes, base)
    rows = summary(results)
    margin_rows = margin_summary(margins)
    print()
    if rows:
        print(
            "| profile | fault | trials | leader median | leader worst | gap median | gap worst |"
        )
        print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['profile']} | {row['fault']} | {row['trials']} | {row['leader_median_s']} s"
            f" | {row['leader_worst_s']} s | {row['gap_median_s']} s"
            f" | {row['gap_worst_s']} s |"
        )
    if margin_rows:
        print(
            "| profile | fault | trials | margin median | margin smallest | takeover median"
            " | takeover worst |"
        )
        print("|---|---|---|---|---|---|---|")
    for row in margin_rows:
        print(
            f"| {row['profile']} | {row['fault']} | {row['trials']} | {row['margin_median_s']} s"
            f" | {row['margin_smallest_s']} s | {row['takeover_median_s']} s"
            f" | {row['takeover_worst_s']} s |"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "started": started.isoformat(),
                    "machine": platform.platform(),
                    "python": platform.python_version(),
                    "nodes": args.nodes,
                    "trials": [asdict(r) for r in results],
                    "summary": rows,
                    "margin_trials": [asdict(m) for m in margins],
                    "margin_summary": margin_rows,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
