"""BEP 44 / BEP 46 published test vectors, the bencode codec and the btpk magnet."""

from __future__ import annotations

import pytest

from silnode.discovery.bencode import BencodeError, bdecode, bencode
from silnode.discovery.bep44 import MutableItem, btpk_magnet, parse_publisher, sign_pointer, signed_buffer, target
from silnode.errors import CatalogInvalid
from silnode.identity import Identity

# BEP 44, "test vectors"
PK = bytes.fromhex("77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548")
SIG_NO_SALT = bytes.fromhex(
    "305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff"
    "1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01"
)
SIG_SALT = bytes.fromhex(
    "6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17d"
    "df9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08"
)


def test_bep44_targets():
    assert target(PK).hex() == "4a533d47ec9c7d95b1ad75f576cffc641853b750"
    assert target(PK, b"foobar").hex() == "411eba73b6f087ca51a3795d9c8c938d365e32c1"


def test_bep44_signed_buffer_and_signatures():
    assert signed_buffer(1, b"Hello World!") == b"3:seqi1e1:v12:Hello World!"
    assert signed_buffer(1, b"Hello World!", b"foobar") == b"4:salt6:foobar3:seqi1e1:v12:Hello World!"
    assert MutableItem(PK, b"", 1, b"Hello World!", SIG_NO_SALT).verify()
    assert MutableItem(PK, b"foobar", 1, b"Hello World!", SIG_SALT).verify()
    # the same signature under another salt, seq or value does not verify
    assert not MutableItem(PK, b"foobar", 1, b"Hello World!", SIG_NO_SALT).verify()
    assert not MutableItem(PK, b"", 2, b"Hello World!", SIG_NO_SALT).verify()
    assert not MutableItem(PK, b"", 1, b"Hello World?", SIG_NO_SALT).verify()


def test_bep46_targets():
    pk = bytes.fromhex("8543d3e6115f0f98c944077a4493dcd543e49c739fd998550a1f614ab36ed63e")
    assert target(pk).hex() == "cc3f9d90b572172053626f9980ce261a850d050b"
    assert target(pk, bytes.fromhex("6e")).hex() == "59ee7c2cb9b4f7eb1986ee2d18fd2fdb8a56554f"


def test_bencode_round_trip_and_errors():
    value = {b"ih": bytes(range(20)), b"n": -3, b"l": [b"a", 1, {b"x": b""}]}
    data = bencode(value)
    assert data.startswith(b"d2:ih20:")
    assert bdecode(data) == value
    assert bencode({"b": 1, "a": 2}) == b"d1:ai2e1:bi1ee"  # keys sorted
    for bad in (b"i1", b"5:abc", b"d1:ae", b"x", b"i1ei2e"):
        with pytest.raises(BencodeError):
            bdecode(bad)


def test_pointer_signed_by_catalog_key_and_magnet_round_trip():
    ident = Identity.generate()
    ih = "ab" * 20
    item = sign_pointer(ident.catalog, ih, 5, b"silnode-catalog-v1")
    assert item.verify() and item.infohash == ih and item.seq == 5
    # a libtorrent-compatible signature: the expanded secret signs the same bytes the same way (§6a)
    assert item.value == {b"ih": bytes.fromhex(ih)}
    link = btpk_magnet(ident.catalog.public_key, b"silnode-catalog-v1")
    assert link == f"magnet:?xs=urn:btpk:{ident.catalog.public_key_hex}&s={b'silnode-catalog-v1'.hex()}"
    assert parse_publisher(link, b"other") == (ident.catalog.public_key, b"silnode-catalog-v1")
    assert parse_publisher(ident.catalog.public_key_hex, b"dflt") == (ident.catalog.public_key, b"dflt")
    for bad in ("magnet:?xt=urn:btih:" + ih, "zz", "ab" * 16, "magnet:?xs=urn:btpk:" + "ab" * 32 + "&s=zz"):
        with pytest.raises(CatalogInvalid):
            parse_publisher(bad, b"s")
