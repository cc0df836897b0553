"""Real nodes on a private DHT: A shares and publishes, B follows A, discovers and gets by name; A updates
(seq + 1) and B sees it; A goes away and B still finds and serves A's catalog; a fresh C gets it from B."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))

from dht import until_async  # noqa: E402
from nodes import sha256, share  # noqa: E402

from silnode.identity import Identity  # noqa: E402


async def until(check, what: str, timeout: float = 120.0) -> None:
    async def acheck():
        r = check()
        return await r if asyncio.iscoroutine(r) else r

    await until_async(acheck, what, timeout)


async def test_publish_follow_discover_get_update_and_outlive(make_node, tiny_gguf, tiny_q8):
    ida = Identity.generate()
    a = await make_node("a", identity=ida)
    b = await make_node("b")  # no identity: follows, searches, gets; publishes nothing
    await share(a, tiny_gguf, "acme/tiny-llama")
    pub = ida.catalog.public_key_hex

    await until(lambda: a.discovery.catalogs.get(pub) is not None, "A to publish its catalog")
    shown = a.discovery.show()
    assert shown["seq"] == 1 and [e["name"] for e in shown["entries"]] == ["acme/tiny-llama"]
    assert shown["magnet"] == a.discovery.catalog_magnet
    assert shown["magnet"].startswith(f"magnet:?xs=urn:btpk:{pub}&s=")
    entry = shown["entries"][0]
    assert entry["files"][0]["sha256"] == sha256(tiny_gguf) and entry["arch"] == "llama"

    followed = await b.discovery.follow(shown["magnet"])
    assert followed["seq"] == 1 and [e["name"] for e in followed["entries"]] == ["acme/tiny-llama"]
    hits = b.discovery.search("TINY", tag="llama")
    assert [(h["name"], h["publisher"], h["followed"]) for h in hits] == [("acme/tiny-llama", pub, True)]
    assert b.discovery.search("tiny", quant="Q8_0") == []
    assert b.discovery.search("tiny", max_size=entry["size"] - 1) == []

    # get by name: resolved through the catalogs, then the usual download + verify
    resolved = await b.discovery.resolve_get("acme/tiny-llama")
    assert resolved["name"] == "acme/tiny-llama" and resolved["target"] == entry["magnet"]
    got = await b.models.get(resolved["target"], name=resolved["name"], force=True)
    tid = got["transfer"]["id"]
    await asyncio.wait_for(b.distribution.wait(tid), 120)
    m = b.store.read_manifest("acme/tiny-llama")
    assert m.state == "ok" and m.files[0].sha256 == sha256(tiny_gguf)

    # A shares another model: seq 2, B sees it (the background refresh, no call from the test)
    await share(a, tiny_q8, "acme/tiny-q8")
    await until(
        lambda: b.discovery.catalogs.get(pub) is not None and b.discovery.catalogs[pub].seq == 2,
        "B to see A's catalog seq 2",
    )
    assert [h["name"] for h in b.discovery.search("acme/")] == ["acme/tiny-llama", "acme/tiny-q8"]

    # A goes away: B keeps A's catalog (cached, seeded by B) and re-puts A's pointer
    await a.stop()
    assert (await b.discovery.refresh())[pub] in ("no pointer found: cached copy kept", "up to date")
    assert len(b.discovery.search("acme/")) == 2
    assert (await b.discovery.reput())[pub] >= 1

    # a fresh node C follows A (who is offline): the pointer and the catalog come from B
    c = await make_node("c")
    got_c = await c.discovery.follow(pub)
    assert got_c["seq"] == 2 and len(got_c["entries"]) == 2
    # and C gets A's first model by name from B, the third seeder
    r = await c.discovery.resolve_get("acme/tiny-llama")
    t = await c.models.get(r["target"], name=r["name"], force=True)
    await asyncio.wait_for(c.distribution.wait(t["transfer"]["id"]), 120)
    assert c.store.read_manifest("acme/tiny-llama").files[0].sha256 == sha256(tiny_gguf)


async def test_learn_publisher_only_from_the_rendezvous(make_node, dht, tiny_gguf):
    """B follows nobody: it learns A's key from today's rendezvous shard, checks A's own signed pointer and
    catalog, and then finds and gets A's model by name. A key listed there with no catalog behind it (a
    hint nobody backs) never reaches the merge."""
    from dht import addrs

    from silnode.discovery import rendezvous
    from silnode.discovery.krpc import KrpcClient

    ida = Identity.generate()
    a = await make_node("a", identity=ida)
    await share(a, tiny_gguf, "acme/hinted")
    pub = ida.catalog.public_key_hex
    await until(lambda: a.discovery.catalogs.get(pub) is not None, "A to publish")
    await until(lambda: a.discovery._rdv_day is not None, "A to announce itself in the rendezvous")

    bogus = Identity.generate().catalog.public_key
    async with KrpcClient(bind="127.0.0.1") as krpc:
        assert await rendezvous.announce(krpc, bogus, addrs(dht))
        # A's entry survived the second writer (compare-and-swap merges, never replaces) when they share a shard
        keys = set(await rendezvous.learn(krpc, addrs(dht)))
        assert {ida.catalog.public_key, bogus} <= keys

    b = await make_node("b", **{"discovery.rendezvous_interval": 1})
    await until(lambda: pub in b.discovery.catalogs, "B to learn A from the rendezvous and fetch its catalog")
    assert b.discovery.follows() == []
    assert bogus in b.discovery.learned and bogus.hex() not in b.discovery.catalogs
    hits = b.discovery.search("hinted")
    assert [(h["name"], h["publisher"], h["followed"]) for h in hits] == [("acme/hinted", pub, False)]
    r = await b.discovery.resolve_get("acme/hinted")
    t = await b.models.get(r["target"], name=r["name"], force=True)
    await asyncio.wait_for(b.distribution.wait(t["transfer"]["id"]), 120)
    assert b.store.read_manifest("acme/hinted").files[0].sha256 == sha256(tiny_gguf)


async def test_get_by_exact_name_through_the_dht(make_node, tiny_gguf):
    """B follows nobody and reads no rendezvous: `get acme/by-name` finds A through the peers announced under
    SHA-1 of the name, asks A's socket for its catalog key, checks A's signed pointer and catalog, downloads."""
    ida = Identity.generate()
    a = await make_node("a", identity=ida, **{"discovery.rendezvous": False})
    await share(a, tiny_gguf, "acme/by-name")
    await until(lambda: "acme/by-name" in a.discovery._announced, "A to announce the name")
    b = await make_node("b", **{"discovery.rendezvous": False})
    assert b.discovery.search("by-name") == []
    r = await b.discovery.resolve_get("acme/by-name")
    assert r["publisher"] == ida.catalog.public_key_hex and r["name"] == "acme/by-name"
    assert b.discovery.learned == {ida.catalog.public_key: "name"}
    t = await b.models.get(r["target"], name=r["name"], force=True)
    await asyncio.wait_for(b.distribution.wait(t["transfer"]["id"]), 120)
    assert b.store.read_manifest("acme/by-name").files[0].sha256 == sha256(tiny_gguf)
