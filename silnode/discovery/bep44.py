"""BEP 44 mutable items and BEP 46 pointers: targets, the signed buffer, checks, magnets.

target       = SHA-1(public key ‖ salt)
signed bytes = [4:salt<len>:<salt>]3:seqi<seq>e1:v<bencoded v>
BEP 46 value = {"ih": <20-byte infohash>};  magnet = magnet:?xs=urn:btpk:<pubkey hex>&s=<salt hex>
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from silnode.discovery.bencode import bencode
from silnode.errors import CatalogInvalid

MAX_VALUE = 1000  # bytes of bencoded v a storing node must accept
MAX_SALT = 64


def target(public_key: bytes, salt: bytes = b"") -> bytes:
    return hashlib.sha1(public_key + salt).digest()


def signed_buffer(seq: int, value: Any, salt: bytes = b"") -> bytes:
    head = b"4:salt%d:%s" % (len(salt), salt) if salt else b""
    return head + b"3:seqi%de1:v" % seq + bencode(value)


@dataclass(frozen=True)
class MutableItem:
    """One signed BEP 44 item as the DHT stores it; anyone may re-put it, nobody may alter it."""

    public_key: bytes
    salt: bytes
    seq: int
    value: Any
    signature: bytes

    @property
    def target(self) -> bytes:
        return target(self.public_key, self.salt)

    def verify(self) -> bool:
        from silnode.identity import CatalogKey  # PyNaCl loads with the first check

        if len(self.public_key) != 32 or len(self.signature) != 64 or len(self.salt) > MAX_SALT:
            return False
        return CatalogKey.verify(self.public_key, signed_buffer(self.seq, self.value, self.salt), self.signature)

    @property
    def infohash(self) -> str:
        """The BEP 46 infohash (hex) this item points at; CatalogInvalid when it is no BEP 46 pointer."""
        v = self.value
        ih = v.get(b"ih") if isinstance(v, dict) else None
        if not isinstance(ih, bytes) or len(ih) != 20:
            raise CatalogInvalid("the DHT item is not a BEP 46 pointer ({'ih': <20 bytes>})")
        return ih.hex()


def sign_pointer(key: Any, infohash_hex: str, seq: int, salt: bytes) -> MutableItem:
    """A BEP 46 pointer to ``infohash_hex`` signed with the catalog key (``CatalogKey``)."""
    value = {b"ih": bytes.fromhex(infohash_hex)}
    sig = key.sign(signed_buffer(seq, value, salt))
    return MutableItem(key.public_key, salt, seq, value, sig)


def btpk_magnet(public_key: bytes, salt: bytes) -> str:
    return f"magnet:?xs=urn:btpk:{public_key.hex()}" + (f"&s={salt.hex()}" if salt else "")


def parse_publisher(text: str, default_salt: bytes) -> tuple[bytes, bytes]:
    """A catalog pubkey (64 hex), an npub-less btpk magnet, -> (public key, salt). Raises CatalogInvalid."""
    text = (text or "").strip()
    if text.startswith("magnet:"):
        q = parse_qs(urlsplit(text).query)
        xs = next((x for x in q.get("xs", []) if x.lower().startswith("urn:btpk:")), None)
        if xs is None:
            raise CatalogInvalid("not a catalog magnet: it has no xs=urn:btpk:<pubkey>")
        pk_hex = xs[len("urn:btpk:") :]
        salt_hex = (q.get("s") or [""])[0]
        try:
            salt = bytes.fromhex(salt_hex) if salt_hex else b""
        except ValueError as exc:
            raise CatalogInvalid("the magnet's s= salt is not hex") from exc
    else:
        pk_hex, salt = text, default_salt
    try:
        pk = bytes.fromhex(pk_hex)
    except ValueError as exc:
        raise CatalogInvalid(f"not a catalog public key (64 hex digits): {pk_hex[:70]!r}") from exc
    if len(pk) != 32:
        raise CatalogInvalid(f"a catalog public key is 32 bytes (64 hex digits), got {len(pk)}")
    if len(salt) > MAX_SALT:
        raise CatalogInvalid("a BEP 44 salt is at most 64 bytes")
    return pk, salt


NAME_DOMAIN = b"silnode-name-v1\x00"


def name_target(name: str) -> bytes:
    """The DHT target a model name is announced under (a hint, never a key anyone writes an item with)."""
    return hashlib.sha1(NAME_DOMAIN + name.encode()).digest()
