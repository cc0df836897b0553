"""The fair queue's rules: round-robin across clients, a bound on the keys one source may invent, a bound on
one client's share of the queue."""

from __future__ import annotations

import pytest

from silnode.errors import QueueFull
from silnode.serving.queue import KEY_SEP, MAX_KEYS_PER_SOURCE, FairQueue


async def drain(q: FairQueue) -> list:
    return [await q.get() for _ in range(len(q))]


async def test_round_robin_across_clients():
    q: FairQueue[str] = FairQueue(16)
    for i in range(1, 4):
        q.put("token:a", f"a{i}")
    q.put("token:b", "b1")
    q.put("token:c", "c1")
    assert await drain(q) == ["a1", "b1", "c1", "a2", "a3"]


async def test_rotating_user_buys_at_most_the_source_bound():
    q: FairQueue[str] = FairQueue(64)
    src = "addr:10.0.0.9"
    for i in range(10):  # one address, ten invented `user` values, one request each
        q.put(f"{src}{KEY_SEP}user:u{i}", f"x{i}")
    q.put("token:honest", "h1")
    q.put("token:honest", "h2")
    order = await drain(q)
    # four lines of their own, the other six share the address's line: the honest token's second request
    # waits behind at most MAX_KEYS_PER_SOURCE + 1 of the address's requests, not ten
    assert order.index("h2") == MAX_KEYS_PER_SOURCE + 3, order
    assert order[: MAX_KEYS_PER_SOURCE + 2] == ["x0", "x1", "x2", "x3", "x4", "h1"]


async def test_one_client_may_hold_three_quarters_of_the_queue():
    q: FairQueue[int] = FairQueue(8)
    for i in range(6):
        q.put("token:flood", i)
    with pytest.raises(QueueFull, match="at most 6"):
        q.put("token:flood", 6)
    q.put("token:other", 100)  # room is left for someone else
    q.put("token:other2", 101)
    with pytest.raises(QueueFull, match="8 requests are already waiting"):
        q.put("token:third", 102)
    assert q.remove(3) and len(q) == 7 and not q.remove(3)
