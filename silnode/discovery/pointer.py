"""The catalog pointer on the DHT: written with our KRPC client (a BEP 46 dict), read through libtorrent.

libtorrent's get checks the key→target and the signature itself (BEP 44 requires it of a requester); it
answers twice, a quick non-authoritative item and then the authoritative one after the full lookup. We
wait for the authoritative answer and fall back to the best early one when the lookup runs out of time."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from silnode.torrent.events import DhtItem


@dataclass(frozen=True)
class Pointer:
    public_key: str  # hex
    salt: bytes
    seq: int
    infohash: str | None  # hex; None when the item is there but is no BEP 46 pointer


def _pointer(ev: DhtItem) -> Pointer | None:
    v = ev.value
    if v is None or v == b"" or (ev.seq == 0 and not v):
        return None
    ih = v.get(b"ih") if isinstance(v, dict) else None
    ok = isinstance(ih, bytes) and len(ih) == 20
    return Pointer(ev.key, ev.salt, ev.seq, ih.hex() if ok else None)


GRACE = 2.0  # seconds to wait for the authoritative answer once an early one is in


async def get_pointer(
    session: Any, public_key: bytes, salt: bytes, *, timeout: float, grace: float = GRACE
) -> Pointer | None:
    """The newest pointer libtorrent finds under (key, salt), or None (nothing stored, or no answer).

    The authoritative answer comes only when libtorrent's whole lookup is done, which waits out every dead
    node it meets (measured: ~15 s with one dead node in a private DHT); once an early answer is in, we wait
    ``grace`` more seconds for a newer one and go with the best seen. An early answer older than the truth
    only delays an update to the next refresh: seq checks reject going backwards."""
    key = public_key.hex()
    q = session.subscribe()
    best: Pointer | None = None
    try:
        session.dht_get_mutable(public_key, salt)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                return best
            try:
                ev = await asyncio.wait_for(q.get(), left)
            except asyncio.TimeoutError:
                return best
            if not isinstance(ev, DhtItem) or not ev.mutable or ev.key != key or ev.salt != salt:
                continue
            p = _pointer(ev)
            if p is not None and (best is None or p.seq > best.seq):
                if best is None:
                    deadline = min(deadline, loop.time() + grace)
                best = p
            if ev.authoritative:
                return best
    finally:
        session.unsubscribe(q)
