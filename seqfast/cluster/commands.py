"""The command queue: the node state machine's orders, waiting for the dispatcher.

Bounded, and never waited on by whoever puts: the machine is fed from the event loop, and a
producer that blocked on a full queue would stall the very loop that must step the node down.
A full queue means the dispatcher has stopped making progress, which the node cannot repair
from inside; `put` raises `QueueFull` and the runtime terminates the node (the monitor, told
every depth, kills it independently when the depth reaches the capacity).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import trio

from seqfast.cluster.machine import Command
from seqfast.errors import SeqfastError

__all__ = ["DEFAULT_CAPACITY", "CommandQueue", "QueueFull"]

# The machine orders at most three commands per trigger and the dispatcher takes them within
# microseconds; this many waiting means the dispatcher is stuck.
DEFAULT_CAPACITY = 64


class QueueFull(SeqfastError):
    """The command queue reached its capacity: the dispatcher is not taking commands."""


class CommandQueue:
    """A bounded FIFO of commands between the runtime (put) and the dispatcher (get).

    `on_depth(depth, capacity)` is called after every change of depth, including the put that
    fills the queue (the monitor's contract: `depth >= capacity` is fatal).
    """

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        on_depth: Callable[[int, int], None] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"the command queue needs a capacity of at least 1, not {capacity}")
        self.capacity = capacity
        self._on_depth = on_depth
        self._items: deque[Command] = deque()
        self._waiting = trio.lowlevel.ParkingLot()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, command: Command) -> None:
        """Queue `command` without waiting.  Raises `QueueFull` when this fills the queue."""
        self._items.append(command)
        self._report()
        self._waiting.unpark()
        if len(self._items) >= self.capacity:
            raise QueueFull(
                f"the command queue is full ({len(self._items)} of {self.capacity}): the"
                " dispatcher has stopped taking commands"
            )

    async def get(self) -> Command:
        """The oldest command, waiting for one if the queue is empty."""
        if self._items:
            await trio.lowlevel.checkpoint()  # a get is always a checkpoint, as in trio itself
        while not self._items:
            await self._waiting.park()
        command = self._items.popleft()
        self._report()
        return command

    def _report(self) -> None:
        if self._on_depth is not None:
            self._on_depth(len(self._items), self.capacity)
