"""The shared rendezvous: how a node learns publisher keys it was never told about. Hints only.

Everybody may write here (the key pair is derived from a public constant, so Silmaril's flaw — anyone can
blank it — is accepted knowingly), which is why nothing here is ever trusted for content:

* items are daily and sharded: salt ``rdv-v1/<YYYY-MM-DD>/<shard>``, shard = first byte of the publisher
  key mod ``SHARDS``; a vandal blanks one shard for one day at most, and publishers re-announce daily;
* the value is a list of 32-byte catalog keys (at most ``MAX_KEYS``: a BEP 44 value is <= 1000 bytes);
  a publisher adds its key with compare-and-swap (``cas`` = the seq it read; on a lost race it reads again
  and merges), so concurrent writers do not erase each other;
* a reader takes each key only as a hint: it is merged only after that publisher's own signed pointer and
  signed catalog check out (the normal refresh path), and at most ``discovery.rendezvous_max`` of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from silnode.discovery.bep44 import MutableItem, signed_buffer
from silnode.discovery.krpc import KrpcClient

SHARDS = 16
MAX_KEYS = 27  # 27 x (3 + 32) + 2 = 947 bytes bencoded, under BEP 44's 1000
_SEED = hashlib.sha256(b"silnode-rendezvous-v1").digest()


def rendezvous_key() -> Any:
    from silnode.identity import CatalogKey

    return CatalogKey(_SEED)


def day(t: float | None = None) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() if t is None else t))


def salt_for(publisher: bytes, on: str) -> bytes:
    return f"rdv-v1/{on}/{publisher[0] % SHARDS}".encode()


def keys_of(item: MutableItem | None) -> list[bytes]:
    v = item.value if item is not None else None
    return [k for k in v if isinstance(k, bytes) and len(k) == 32] if isinstance(v, list) else []


async def announce(krpc: KrpcClient, publisher: bytes, boot: list[tuple[str, int]], *, on: str | None = None) -> bool:
    """Add ``publisher`` to today's shard (compare-and-swap, up to 4 tries). True once a node stored it."""
    key = rendezvous_key()
    salt = salt_for(publisher, on or day())
    for _ in range(4):
        current = await krpc.get(key.public_key, salt, boot)
        keys = keys_of(current)
        if publisher in keys and current is not None:
            res = await krpc.put(current, boot)  # already listed: refresh it
            return res.stored > 0
        merged = [publisher, *[k for k in keys if k != publisher]][:MAX_KEYS]
        seq = current.seq + 1 if current is not None else 1
        sig = key.sign(signed_buffer(seq, merged, salt))
        item = MutableItem(key.public_key, salt, seq, merged, sig)
        res = await krpc.put(item, boot, cas=current.seq if current is not None else None)
        if res.stored > 0:
            return True
        if not any(code == 301 for code, _ in res.errors):  # not a lost race: nobody answered
            return False
    return False


async def learn(krpc: KrpcClient, boot: list[tuple[str, int]], *, days: tuple[str, ...] | None = None) -> list[bytes]:
    """Every key listed in today's (and yesterday's) shards: hints, in shard order, without duplicates."""
    key = rendezvous_key()
    on = days or (day(), day(time.time() - 86400))
    salts = [f"rdv-v1/{d}/{shard}".encode() for d in on for shard in range(SHARDS)]
    # all shards at once: a lookup that meets a dead node waits a query timeout, and 32 in a row would add up
    items = await asyncio.gather(*(krpc.get(key.public_key, salt, boot) for salt in salts))
    seen: dict[bytes, None] = {}
    for item in items:
        for k in keys_of(item):
            seen.setdefault(k, None)
    return list(seen)
