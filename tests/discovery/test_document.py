"""The catalog document: canonical bytes, signatures, and every forgery the reader must drop."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from silnode.discovery.document import Entry, build_catalog, canonical, parse_catalog
from silnode.discovery.torrent import catalog_torrent
from silnode.errors import CatalogInvalid
from silnode.identity import Identity

A = Identity.from_mnemonic(
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
)
B = Identity.from_mnemonic("legal winner thank year wave sausage worth useful legal winner thank yellow")


def entry(name: str, ih: str = "aa" * 20, size: int = 1000, **kw) -> Entry:
    return Entry(
        name=name,
        size=size,
        files=({"path": "m.gguf", "size": size, "sha256": "cd" * 32},),
        infohash=ih,
        magnet=f"magnet:?xt=urn:btih:{ih}&dn={name}",
        arch="llama",
        params=7_000_000,
        quant="Q4_K_M",
        context_length=2048,
        memory=123456,
        license="apache-2.0",
        tags=("llama", "tiny"),
        **kw,
    )


def test_same_content_same_bytes_same_infohash():
    one = build_catalog(A, [entry("org/b"), entry("org/a", "bb" * 20)], seq=3, updated="2026-12-05T00:00:00Z")
    two = build_catalog(A, [entry("org/a", "bb" * 20), entry("org/b")], seq=3, updated="2026-12-05T00:00:00Z")
    assert one.to_bytes() == two.to_bytes()
    assert catalog_torrent(one.to_bytes())[1] == catalog_torrent(two.to_bytes())[1]
    assert [e.name for e in one.entries] == ["org/a", "org/b"]
    three = build_catalog(A, [entry("org/a", "bb" * 20)], seq=3, updated="2026-12-05T00:00:00Z")
    assert catalog_torrent(three.to_bytes())[1] != catalog_torrent(one.to_bytes())[1]
    # canonical JSON: sorted keys, no spaces, one spelling
    assert one.to_bytes() == canonical(json.loads(one.to_bytes()))
    assert b" " not in canonical({"b": [1, 2], "a": "x"})


def test_round_trip_verifies_and_binds_nostr_key():
    cat = build_catalog(A, [entry("org/a")], seq=1, updated="t")
    got, dropped = parse_catalog(cat.to_bytes(), expected_publisher=A.catalog.public_key_hex)
    assert dropped == []
    assert got.publisher == A.catalog.public_key_hex
    assert got.nostr_pubkey == A.nostr.pubkey_hex
    assert got.entries[0].publisher == A.catalog.public_key_hex
    assert replace(got.entries[0], publisher="") == replace(cat.entries[0], publisher="")


def _tamper(data: bytes, fn) -> bytes:
    d = json.loads(data)
    fn(d)
    return canonical(d)


def test_tampered_documents_are_refused():
    good = build_catalog(A, [entry("org/a")], seq=2, updated="t").to_bytes()
    other = build_catalog(B, [entry("org/a")], seq=2, updated="t").to_bytes()
    cases = {
        "seq": lambda d: d.__setitem__("seq", 9),
        "size": lambda d: d["entries"][0].__setitem__("memory", 1),
        "drop entry": lambda d: d["entries"].clear(),
        "sig": lambda d: d.__setitem__("sig", "00" * 64),
        "publisher": lambda d: d.__setitem__("publisher", B.catalog.public_key_hex),
        # a Nostr key the publisher does not hold: its Schnorr signature cannot match
        "nostr": lambda d: d["nostr"].__setitem__("pubkey", B.nostr.pubkey_hex),
    }
    for what, fn in cases.items():
        with pytest.raises(CatalogInvalid):
            parse_catalog(_tamper(good, fn))
        assert what  # names the case in the traceback
    with pytest.raises(CatalogInvalid, match="expected"):
        parse_catalog(other, expected_publisher=A.catalog.public_key_hex)
    with pytest.raises(CatalogInvalid, match="floats"):
        parse_catalog(good.replace(b'"seq":2', b'"seq":2.0'))
    with pytest.raises(CatalogInvalid, match="not JSON"):
        parse_catalog(b"\xff")


def test_entry_copied_from_another_publisher_is_dropped():
    """B copies A's signed entry into B's own catalog and signs the document: the document verifies,
    the copied entry does not (its signature binds it to A)."""
    a_cat = build_catalog(A, [entry("org/a", "11" * 20)], seq=1, updated="t")
    copied = a_cat.entries[0]
    b_cat = build_catalog(B, [entry("org/b", "22" * 20)], seq=1, updated="t")
    from silnode.discovery.document import DOC_DOMAIN, Catalog

    forged = Catalog(b_cat.publisher, 1, "t", (*b_cat.entries, copied), b_cat.nostr)
    sig = B.catalog.sign(DOC_DOMAIN + canonical(forged.body())).hex()
    forged = replace(forged, sig=sig)
    got, dropped = parse_catalog(forged.to_bytes())
    assert [e.name for e in got.entries] == ["org/b"]
    assert len(dropped) == 1 and "org/a" in dropped[0] and "copied" in dropped[0]


def test_bad_entries_are_named():
    with pytest.raises(CatalogInvalid, match="size is not the sum"):
        Entry.from_json({**entry("org/a").to_json(), "size": 5})
    with pytest.raises(CatalogInvalid, match="org/model"):
        Entry.from_json({**entry("org/a").to_json(), "name": "../x"})
    with pytest.raises(CatalogInvalid, match="magnet"):
        Entry.from_json({**entry("org/a").to_json(), "magnet": "http://x"})
    with pytest.raises(CatalogInvalid, match="twice|once"):
        build_catalog(A, [entry("org/a"), entry("org/a")], seq=1, updated="t")
