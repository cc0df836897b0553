"""A bounded per-model request queue that is fair across clients.

One worker generates for one request at a time, so requests wait. First-come-first-served lets a client
that sends twenty requests hold everyone else back for twenty generations; here each client has its own
line and the dispatcher takes from the lines in turn (round-robin), so a client with one request waits for
at most one request of every other client. The bound counts waiting requests of all clients together;
past it, `put` raises QueueFull (the API answers 429 with Retry-After).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from typing import Generic, TypeVar

from silnode.errors import QueueFull

T = TypeVar("T")


class FairQueue(Generic[T]):
    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._lines: OrderedDict[str, deque[T]] = OrderedDict()  # client -> its waiting items, turn order
        self._size = 0
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return self._size

    def put(self, client: str, item: T) -> None:
        if self._size >= self.maxsize:
            raise QueueFull(f"{self._size} requests are already waiting for this model (queue_size {self.maxsize})")
        self._lines.setdefault(client, deque()).append(item)
        self._size += 1
        self._ready.set()

    async def get(self) -> T:
        """The next item: the first waiting item of the client whose turn it is."""
        while not self._size:
            self._ready.clear()
            await self._ready.wait()
        client, line = next(iter(self._lines.items()))
        item = line.popleft()
        self._size -= 1
        del self._lines[client]
        if line:  # the client goes to the back of the turn order
            self._lines[client] = line
        return item

    def remove(self, item: T) -> bool:
        """Take out a waiting item (its client went away); False when it is not waiting."""
        for client, line in self._lines.items():
            if item in line:
                line.remove(item)
                self._size -= 1
                if not line:
                    del self._lines[client]
                return True
        return False

    def drain(self) -> list[T]:
        """Take out every waiting item (the model is being unloaded)."""
        items = [item for line in self._lines.values() for item in line]
        self._lines.clear()
        self._size = 0
        return items
