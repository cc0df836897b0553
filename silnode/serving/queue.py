"""A bounded per-model request queue that is fair across clients.

One worker generates for one request at a time, so requests wait. First-come-first-served lets a client
that sends twenty requests hold everyone else back for twenty generations; here each client has its own
line and the dispatcher takes from the lines in turn (round-robin), so a client with one request waits for
at most one request of every other client.

Who is a client (the key, made by :func:`silnode.api.security.client_key`): a token or a payment when the
request carries one; else the peer address, optionally refined by the OpenAI ``user`` field as
``"<source>\\x1f<finer key>"``. Finer keys are free to invent, so one source may hold at most
``MAX_KEYS_PER_SOURCE`` lines at once; its requests past that join the source's own line (rotating ``user``
buys at most that many turns per round).

Bounds: the queue holds ``maxsize`` waiting requests of all clients together, and one client at most
``per_client`` of them (3/4 of the queue, at least 1), so a flood from one client still leaves room for others;
past either, ``put`` raises QueueFull (the API answers 429 with Retry-After).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from typing import Generic, TypeVar

from silnode.errors import QueueFull

T = TypeVar("T")
KEY_SEP = "\x1f"
MAX_KEYS_PER_SOURCE = 4


def source_of(key: str) -> str:
    return key.split(KEY_SEP, 1)[0]


class FairQueue(Generic[T]):
    def __init__(self, maxsize: int, *, per_client: int | None = None) -> None:
        self.maxsize = maxsize
        self._per_client = per_client
        self._lines: OrderedDict[str, deque[T]] = OrderedDict()  # client -> its waiting items, turn order
        self._size = 0
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return self._size

    @property
    def per_client(self) -> int:
        if self._per_client is not None:
            return self._per_client
        return max(1, self.maxsize - self.maxsize // 4)  # maxsize may be changed after construction

    def line_key(self, client: str) -> str:
        """The line a request of ``client`` joins: its own, or its source's once the source holds too many."""
        if KEY_SEP not in client or client in self._lines:
            return client
        source = source_of(client)
        held = sum(1 for k in self._lines if k != source and source_of(k) == source)
        return client if held < MAX_KEYS_PER_SOURCE else source

    def put(self, client: str, item: T) -> None:
        if self._size >= self.maxsize:
            raise QueueFull(f"{self._size} requests are already waiting for this model (queue_size {self.maxsize})")
        key = self.line_key(client)
        line = self._lines.get(key)
        if line is not None and len(line) >= self.per_client:
            raise QueueFull(
                f"{len(line)} of your requests are already waiting for this model; "
                f"one client may queue at most {self.per_client} (3/4 of serve.queue_size {self.maxsize})"
            )
        self._lines.setdefault(key, deque()).append(item)
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
