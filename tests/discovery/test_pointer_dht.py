"""The BEP 46 pointer on a private DHT of five real libtorrent sessions: put by our KRPC client, read by
libtorrent; seq moves forward only; compare-and-swap; anybody may re-put the signed item."""

from __future__ import annotations

import pytest
from dht import addrs, start_dht

from silnode.discovery.bep44 import MutableItem, sign_pointer
from silnode.discovery.krpc import KrpcClient, KrpcFailed
from silnode.discovery.pointer import get_pointer
from silnode.identity import Identity

SALT = b"silnode-catalog-v1"


@pytest.fixture
async def dht():
    sessions = await start_dht(5)
    yield sessions
    for s in sessions:
        await s.stop(save_resume=False)


async def test_put_get_seq_cas_and_reput(dht):
    ident = Identity.generate()
    key = ident.catalog
    boot = addrs(dht[:1])  # one entry point: the lookup finds the rest
    async with KrpcClient(bind="127.0.0.1") as krpc:
        r1 = await krpc.put(sign_pointer(key, "11" * 20, 1, SALT), boot)
        assert r1.stored == 5 and r1.errors == []
        p = await get_pointer(dht[3], key.public_key, SALT, timeout=30)
        assert p is not None and (p.seq, p.infohash) == (1, "11" * 20)

        r2 = await krpc.put(sign_pointer(key, "22" * 20, 2, SALT), boot, cas=1)
        assert r2.stored == 5 and r2.latest.seq == 1
        p = await get_pointer(dht[4], key.public_key, SALT, timeout=30)
        assert (p.seq, p.infohash) == (2, "22" * 20)

        # a stale seq (the old item replayed) is refused by every storing node: 302
        stale = await krpc.put(sign_pointer(key, "11" * 20, 1, SALT), boot)
        assert stale.stored == 0 and {c for c, _ in stale.errors} == {302}
        # compare-and-swap against a seq the nodes no longer hold: 301
        lost = await krpc.put(sign_pointer(key, "33" * 20, 3, SALT), boot, cas=1)
        assert lost.stored == 0 and {c for c, _ in lost.errors} == {301}
        p = await get_pointer(dht[2], key.public_key, SALT, timeout=30)
        assert (p.seq, p.infohash) == (2, "22" * 20)

        # a follower re-puts the item it read (signature and all) without the private key
        item = await krpc.get(key.public_key, SALT, boot)
        assert item is not None and item.seq == 2 and item.verify()
        again = await krpc.put(item, boot)
        assert again.stored == 5  # same seq, same value: nodes refresh it

        # a forged item under the publisher's key (another key's signature): refused by every node (206)
        thief = Identity.generate().catalog
        forged = sign_pointer(thief, "44" * 20, 9, SALT)
        found = await krpc.lookup(item.target, boot)
        for r in found:
            with pytest.raises(KrpcFailed) as err:
                await krpc.query(
                    r.addr,
                    "put",
                    {
                        b"k": key.public_key,
                        b"salt": SALT,
                        b"seq": 9,
                        b"sig": forged.signature,
                        b"v": forged.value,
                        b"token": r.token,
                    },
                )
            assert err.value.code == 206
        with pytest.raises(ValueError):  # and our client refuses to send one at all
            await krpc.put(MutableItem(key.public_key, SALT, 9, forged.value, forged.signature), boot)
        p = await get_pointer(dht[1], key.public_key, SALT, timeout=30)
        assert (p.seq, p.infohash) == (2, "22" * 20)

        # nothing stored under another salt
        assert await get_pointer(dht[1], key.public_key, b"other", timeout=30) is None
