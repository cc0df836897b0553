"""The trust rules of a refresh, with the DHT and the torrent fetch replaced by what an attacker could serve
(real signed documents; only the transport is stubbed). The real-DHT path is in test_discovery_nodes.py."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_document import entry

from silnode.config import load_config
from silnode.discovery import following as following_mod
from silnode.discovery.document import (
    DOC_DOMAIN,
    Catalog,
    build_catalog,  # noqa: E402
    canonical,
)
from silnode.discovery.pointer import Pointer
from silnode.discovery.service import DiscoveryService
from silnode.discovery.torrent import catalog_torrent
from silnode.errors import BadRequest, CatalogInvalid, CatalogNotFound, NameAmbiguous
from silnode.identity import Identity
from silnode.store import Store

A, M = Identity.generate(), Identity.generate()
SALT = b"silnode-catalog-v1"


class _Session:
    settings = {"enable_dht": True}

    def ids(self):
        return []


class _Engine:
    running = True
    session = _Session()


@pytest.fixture
def svc(tmp_path, monkeypatch):
    cfg = load_config(tmp_path / "home", overrides={"daemon.port": 0})
    s = DiscoveryService(cfg, Store(cfg.base_dir), _Engine())
    s.state.ensure()
    served: dict[str, object] = {}

    async def fake_get(session, pk, salt, *, timeout):
        return served.get("pointer")

    async def fake_fetch(pub, ih):
        data = served.get("bytes")
        return data if data is not None and catalog_torrent(data)[1] == ih else None

    async def nothing(*a, **k):
        return None

    monkeypatch.setattr(following_mod, "get_pointer", fake_get)
    monkeypatch.setattr(s, "_fetch", fake_fetch)
    monkeypatch.setattr(s, "_seed", nothing)
    monkeypatch.setattr(s, "_remember_pointer", nothing)
    s.served = served
    return s


def serve(svc, cat_bytes: bytes, seq: int, key: Identity = A) -> None:
    svc.served["bytes"] = cat_bytes
    svc.served["pointer"] = Pointer(key.catalog.public_key_hex, SALT, seq, catalog_torrent(cat_bytes)[1])


async def test_update_rollback_replay_mismatch_and_offline(svc):
    pk = A.catalog.public_key
    pub = A.catalog.public_key_hex
    v1 = build_catalog(A, [entry("acme/one")], seq=1, updated="t1").to_bytes()
    v2 = build_catalog(A, [entry("acme/one"), entry("acme/two", "bb" * 20)], seq=2, updated="t2").to_bytes()
    serve(svc, v1, 1)
    assert await svc.refresh_one(pk, SALT) == "updated to seq 1"
    serve(svc, v2, 2)
    assert await svc.refresh_one(pk, SALT) == "updated to seq 2"
    assert [e.name for e in svc.index.search("acme")] == ["acme/one", "acme/two"]

    # a replay of the older, validly signed pointer (and catalog): dropped, the cache stays at seq 2
    serve(svc, v1, 1)
    assert await svc.refresh_one(pk, SALT) == "stale pointer: cached copy kept"
    assert svc.catalogs[pub].seq == 2 and "replay" in svc.dropped[-1]["reason"]

    # a pointer whose seq does not match the catalog it names
    serve(svc, build_catalog(A, [entry("acme/three", "cc" * 20)], seq=3, updated="t3").to_bytes(), 4)
    assert await svc.refresh_one(pk, SALT) == "refused: seq mismatch"
    # a catalog that rolls back (seq 2 again, other content) under a pointer that claims seq 2
    serve(svc, build_catalog(A, [entry("acme/evil", "dd" * 20)], seq=2, updated="t4").to_bytes(), 2)
    assert await svc.refresh_one(pk, SALT) == "refused: rollback"
    assert svc.catalogs[pub].seq == 2 and len(svc.index) == 2

    # the publisher cannot be reached: the cached copy is kept, never reset to empty
    svc.served.clear()
    assert await svc.refresh_one(pk, SALT) == "no pointer found: cached copy kept"
    assert len(svc.index) == 2


async def test_wrong_key_and_copied_entry(svc):
    # M points its own pointer at A's genuine catalog: signed for another publisher -> refused
    a_doc = build_catalog(A, [entry("acme/one")], seq=1, updated="t").to_bytes()
    serve(svc, a_doc, 1, key=M)
    assert (await svc.refresh_one(M.catalog.public_key, SALT)).startswith("refused")
    assert "expected" in svc.dropped[-1]["reason"]
    assert M.catalog.public_key_hex not in svc.catalogs

    # M copies A's signed entry into M's own signed catalog: M's own entry stays, the copy is dropped
    a_entry = build_catalog(A, [entry("acme/one", "11" * 20)], seq=1, updated="t").entries[0]
    m_cat = build_catalog(M, [entry("mallory/x", "22" * 20)], seq=1, updated="t")
    forged = Catalog(m_cat.publisher, 1, "t", (*m_cat.entries, a_entry), m_cat.nostr)
    forged = replace(forged, sig=M.catalog.sign(DOC_DOMAIN + canonical(forged.body())).hex())
    serve(svc, forged.to_bytes(), 1, key=M)
    assert await svc.refresh_one(M.catalog.public_key, SALT) == "updated to seq 1"
    assert [e.name for e in svc.index.search("")] == ["mallory/x"]
    assert any("acme/one" in d["reason"] and "copied" in d["reason"] for d in svc.dropped)


async def test_get_by_name_followed_wins_else_ambiguous(svc):
    B = Identity.generate()
    a_doc = build_catalog(A, [entry("org/m", "11" * 20)], seq=1, updated="t").to_bytes()
    b_doc = build_catalog(B, [entry("org/m", "22" * 20), entry("org/only-b", "33" * 20)], seq=1, updated="t")
    serve(svc, a_doc, 1)
    await svc.refresh_one(A.catalog.public_key, SALT)
    serve(svc, b_doc.to_bytes(), 1, key=B)
    await svc.refresh_one(B.catalog.public_key, SALT)

    assert (await svc.resolve_get("org/only-b"))["target"] == b_doc.entries[1].magnet
    with pytest.raises(NameAmbiguous) as err:
        await svc.resolve_get("org/m")
    assert {o["infohash"] for o in err.value.details["offers"]} == {"11" * 20, "22" * 20}
    svc.state.write_follows([{"publisher": B.catalog.public_key_hex, "salt": SALT.hex(), "added": "t"}])
    assert (await svc.resolve_get("org/m"))["target"] == b_doc.entries[0].magnet
    with pytest.raises(CatalogNotFound):
        await svc.resolve_get("org/nobody-has-this")
    # magnets and infohashes pass through untouched
    assert (await svc.resolve_get("ab" * 20))["target"] == "ab" * 20


async def test_seed_catalog_name_keeps_its_meaning(svc):
    """A peer entry under a name the shipped seed catalog pins, with other bytes: shown as a conflict in
    discover, and `get <name>` still means the seed-catalog model (the resolution passes it through)."""
    from silnode.fit.seed import load_seed_catalog

    seed = load_seed_catalog()[0]
    doc = build_catalog(A, [entry(seed.name, "44" * 20)], seq=1, updated="t").to_bytes()
    serve(svc, doc, 1)
    await svc.refresh_one(A.catalog.public_key, SALT)
    rows = svc.search(seed.name)
    assert [r["name"] for r in rows] == [seed.name] and "seed catalog" in rows[0]["conflict"]
    assert await svc.resolve_get(seed.name) == {"target": seed.name, "name": None}


async def test_config_publishers_and_hints_are_sources(svc, tmp_path):
    from dataclasses import replace as dc_replace

    from silnode.discovery.bep44 import btpk_magnet

    other = Identity.generate().catalog.public_key
    svc.dc = dc_replace(svc.dc, publishers=(btpk_magnet(other, b"s2"), "not-a-key"))
    assert svc.sources() == [(other, b"s2", "config")]
    hint = Identity.generate().catalog.public_key
    assert svc.learn_publisher(hint.hex(), "nip89") is True
    assert svc.learn_publisher(hint.hex(), "nip89") is False  # known already
    assert svc.learn_publisher(other.hex(), "rendezvous") is False  # configured: not a hint
    assert svc.learn_publisher("zz") is False
    assert (hint, SALT, "nip89") in svc.sources(hints=True) and (hint, SALT, "nip89") not in svc.sources()


async def test_follow_by_npub_of_a_known_catalog(svc):
    """An npub is accepted once a verified catalog binds it (its Schnorr signature over the catalog key)."""
    with pytest.raises(CatalogNotFound, match="no known catalog"):
        await svc.follow(A.npub)
    serve(svc, build_catalog(A, [entry("acme/one")], seq=1, updated="t").to_bytes(), 1)
    await svc.refresh_one(A.catalog.public_key, SALT)
    res = await svc.follow(A.npub)
    assert res["publisher"] == A.catalog.public_key_hex and res["seq"] == 1
    assert [f["publisher"] for f in svc.follows()] == [A.catalog.public_key_hex]
    with pytest.raises(BadRequest, match="not a valid npub"):
        await svc.follow("npub1notvalid")
    assert (await svc.unfollow(A.catalog.public_key_hex))["followed"] is False
    assert svc.follows() == [] and svc.search("") == []


async def test_followed_curator_adds_its_publishers_as_hints(svc):
    other = Identity.generate().catalog.public_key_hex
    cur = build_catalog(A, [], seq=1, updated="t", curates=(other, A.catalog.public_key_hex))
    assert cur.curates == (other,)  # a curator never lists itself
    svc.state.write_follows([{"publisher": A.catalog.public_key_hex, "salt": SALT.hex(), "added": "t"}])
    serve(svc, cur.to_bytes(), 1)
    assert await svc.refresh_one(A.catalog.public_key, SALT) == "updated to seq 1"
    assert svc.learned == {bytes.fromhex(other): f"curator:{A.catalog.public_key_hex[:16]}"}
    # the list is signed with the rest: another list under the same signature is refused
    from test_document import _tamper

    forged = _tamper(cur.to_bytes(), lambda d: d.__setitem__("curates", ["ee" * 32]))
    with pytest.raises(CatalogInvalid, match="signature"):
        from silnode.discovery.document import parse_catalog

        parse_catalog(forged)
