"""The catalog document: what one publisher offers, signed so nobody else can alter or borrow it.

    {
      "version": 1,
      "publisher": "<catalog ed25519 public key, hex>",
      "nostr": {"pubkey": "<x-only secp256k1 hex>", "sig": "<BIP-340 sig over SHA-256(NOSTR_BINDING ‖ publisher key)>"},
      "seq": 7, "updated": "2026-12-05T21:00:00Z",
      "entries": [ {name, size, files[{path, size, sha256}], infohash, magnet, arch, params, quant,
                    context_length, memory, license, tags, shape, sig}, ... ],   sorted by name
      "curates": ["<other publishers' catalog keys>", ...],   optional: a curator catalog (sorted)
      "sig": "<ed25519 over the canonical bytes of everything above>"
    }

Canonical JSON: keys sorted, no spaces, UTF-8, integers only (a float has more than one spelling), so the same
content gives the same bytes and therefore the same catalog torrent and infohash. ``nostr`` is optional (an
identity always has both keys; a catalog built without one simply leaves it out). The Schnorr signature uses
zero auxiliary randomness (BIP-340 allows it) so that, too, is deterministic.

Each entry is signed on its own over ``ENTRY_DOMAIN ‖ publisher key ‖ canonical(entry without sig)``: an
entry copied into another publisher's catalog fails that check under the copier's key and is dropped.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from silnode.errors import CatalogInvalid
from silnode.names import is_valid_name

VERSION = 1
ENTRY_DOMAIN = b"silnode-catalog-entry-v1\x00"
DOC_DOMAIN = b"silnode-catalog-v1\x00"
NOSTR_BINDING = b"silnode-catalog-key-v1\x00"
MAX_DOC_BYTES = 64 << 20  # a catalog beyond this is refused before parsing
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX128 = re.compile(r"^[0-9a-f]{128}$")


def canonical(obj: Any) -> bytes:
    """The one byte form of a JSON value (floats refused: they have several spellings)."""
    _no_floats(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _no_floats(obj: Any) -> None:
    if isinstance(obj, float):
        raise CatalogInvalid(f"a catalog holds no floats (got {obj!r}); use integers")
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise CatalogInvalid("catalog keys are strings")
            _no_floats(v)
    elif isinstance(obj, list):
        for v in obj:
            _no_floats(v)


def nostr_binding_message(catalog_pubkey: bytes) -> bytes:
    return hashlib.sha256(NOSTR_BINDING + catalog_pubkey).digest()


# ---------------------------------------------------------------------------------------------------- entries
ENTRY_FIELDS = (
    "name",
    "size",
    "files",
    "infohash",
    "magnet",
    "arch",
    "params",
    "quant",
    "context_length",
    "memory",
    "license",
    "tags",
    "shape",
)


@dataclass(frozen=True)
class Entry:
    """One model a publisher offers. ``memory``: bytes the model needs at a 4096-token context on the CPU
    (the publisher's estimate; ``--fits`` re-estimates from ``shape`` on the reader's machine)."""

    name: str
    size: int
    files: tuple[dict[str, Any], ...]
    infohash: str
    magnet: str
    arch: str | None = None
    params: int | None = None
    quant: str | None = None
    context_length: int | None = None
    memory: int | None = None
    license: str | None = None
    tags: tuple[str, ...] = ()
    shape: dict[str, Any] | None = None
    sig: str = ""
    publisher: str = field(default="", compare=False)  # filled in when read from a verified catalog

    def body(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "size": self.size,
            "files": [dict(f) for f in self.files],
            "infohash": self.infohash,
            "magnet": self.magnet,
            "tags": list(self.tags),
        }
        for k in ("arch", "params", "quant", "context_length", "memory", "license", "shape"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        return d

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "sig": self.sig}

    def signed_bytes(self, publisher: bytes) -> bytes:
        return ENTRY_DOMAIN + publisher + canonical(self.body())

    def signed(self, key: Any) -> Entry:
        from dataclasses import replace

        return replace(self, sig=key.sign(self.signed_bytes(key.public_key)).hex(), publisher=key.public_key_hex)

    def verify(self, publisher: bytes) -> bool:
        from silnode.identity import CatalogKey

        return bool(_HEX128.match(self.sig)) and CatalogKey.verify(
            publisher, self.signed_bytes(publisher), bytes.fromhex(self.sig)
        )

    @classmethod
    def from_json(cls, d: Any) -> Entry:
        """Shape checks only (the signature is checked by the catalog); CatalogInvalid names the fault."""
        if not isinstance(d, dict):
            raise CatalogInvalid("an entry is not an object")
        unknown = set(d) - set(ENTRY_FIELDS) - {"sig"}
        if unknown:
            raise CatalogInvalid(f"entry has unknown field(s) {sorted(unknown)}")
        name = d.get("name")
        if not isinstance(name, str) or not is_valid_name(name):
            raise CatalogInvalid(f"entry name {name!r:.80} is not org/model")
        where = f"entry {name}"
        size = d.get("size")
        if not _is_int(size) or size < 0:
            raise CatalogInvalid(f"{where}: size must be a non-negative integer")
        files = d.get("files")
        if not isinstance(files, list) or not files:
            raise CatalogInvalid(f"{where}: files must be a non-empty list")
        for f in files:
            if (
                not isinstance(f, dict)
                or set(f) != {"path", "size", "sha256"}
                or not isinstance(f["path"], str)
                or not f["path"]
                or "/" in f["path"]
                or not _is_int(f["size"])
                or not isinstance(f["sha256"], str)
                or not _HEX64.match(f["sha256"])
            ):
                raise CatalogInvalid(f"{where}: each file is {{path, size, sha256}} (a flat name, 64 hex)")
        if sum(f["size"] for f in files) != size:
            raise CatalogInvalid(f"{where}: size is not the sum of its files")
        ih, link = d.get("infohash"), d.get("magnet")
        if not isinstance(ih, str) or not _HEX40.match(ih):
            raise CatalogInvalid(f"{where}: infohash must be 40 lowercase hex digits")
        if not isinstance(link, str) or not link.startswith("magnet:?") or ih not in link.lower():
            raise CatalogInvalid(f"{where}: magnet must be a magnet link naming its infohash")
        for k in ("arch", "quant", "license"):
            if d.get(k) is not None and not isinstance(d[k], str):
                raise CatalogInvalid(f"{where}: {k} must be a string")
        for k in ("params", "context_length", "memory"):
            if d.get(k) is not None and not _is_int(d[k]):
                raise CatalogInvalid(f"{where}: {k} must be an integer")
        tags = d.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) and 0 < len(t) <= 64 for t in tags):
            raise CatalogInvalid(f"{where}: tags must be a list of short strings")
        if d.get("shape") is not None and not isinstance(d["shape"], dict):
            raise CatalogInvalid(f"{where}: shape must be an object")
        sig = d.get("sig", "")
        if not isinstance(sig, str):
            raise CatalogInvalid(f"{where}: sig must be hex")
        return cls(
            name=name,
            size=size,
            files=tuple(files),
            infohash=ih,
            magnet=link,
            arch=d.get("arch"),
            params=d.get("params"),
            quant=d.get("quant"),
            context_length=d.get("context_length"),
            memory=d.get("memory"),
            license=d.get("license"),
            tags=tuple(tags),
            shape=d.get("shape"),
            sig=sig,
        )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# ---------------------------------------------------------------------------------------------------- catalog
@dataclass(frozen=True)
class Catalog:
    publisher: str  # catalog public key, hex
    seq: int
    updated: str
    entries: tuple[Entry, ...]
    nostr: dict[str, str] | None = None  # {"pubkey", "sig"}
    sig: str = ""
    version: int = VERSION
    curates: tuple[str, ...] = ()  # other publishers' catalog keys this publisher vouches for (hints)

    def body(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "version": self.version,
            "publisher": self.publisher,
            "seq": self.seq,
            "updated": self.updated,
            "entries": [e.to_json() for e in self.entries],
        }
        if self.nostr is not None:
            d["nostr"] = dict(self.nostr)
        if self.curates:
            d["curates"] = list(self.curates)
        return d

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "sig": self.sig}

    def to_bytes(self) -> bytes:
        return canonical(self.to_json())

    @property
    def nostr_pubkey(self) -> str | None:
        return self.nostr["pubkey"] if self.nostr else None

    def by_name(self) -> dict[str, Entry]:
        return {e.name: e for e in self.entries}


def build_catalog(
    identity: Any, entries: list[Entry], *, seq: int, updated: str, curates: tuple[str, ...] = ()
) -> Catalog:
    """Sign every entry and the document with ``identity.catalog``; bind ``identity.nostr`` (when the
    identity has one) by its Schnorr signature over the catalog key. Entries are sorted by name."""
    key = identity.catalog
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise CatalogInvalid("a catalog lists each model name once")
    signed = tuple(sorted((e.signed(key) for e in entries), key=lambda e: e.name))
    nostr = None
    nkey = getattr(identity, "nostr", None)
    if nkey is not None:
        sig = nkey.sign_schnorr(nostr_binding_message(key.public_key), aux_randomness=bytes(32))
        nostr = {"pubkey": nkey.pubkey_hex, "sig": sig.hex()}
    cur = tuple(sorted({c.lower() for c in curates} - {key.public_key_hex}))
    if not all(_HEX64.match(c) for c in cur):
        raise CatalogInvalid("curated publishers must be 64-hex catalog keys")
    cat = Catalog(key.public_key_hex, seq, updated, signed, nostr, curates=cur)
    doc_sig = key.sign(DOC_DOMAIN + canonical(cat.body())).hex()
    return Catalog(cat.publisher, seq, updated, signed, nostr, doc_sig, curates=cur)


def parse_catalog(data: bytes, *, expected_publisher: str | None = None) -> tuple[Catalog, list[str]]:
    """Parse and check a catalog document. Returns the catalog with the entries that pass, and why each
    dropped entry was dropped. The whole document is refused (CatalogInvalid) when its own signature, its
    publisher key, its shape or its Nostr binding is wrong."""
    from silnode.identity import CatalogKey, NostrKey

    if len(data) > MAX_DOC_BYTES:
        raise CatalogInvalid(f"catalog is {len(data)} bytes; the limit is {MAX_DOC_BYTES}")
    try:
        d = json.loads(data.decode("utf-8"), parse_float=_refuse_float, parse_constant=_refuse_float)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CatalogInvalid(f"catalog is not JSON: {exc}") from exc
    if not isinstance(d, dict):
        raise CatalogInvalid("catalog is not a JSON object")
    unknown = set(d) - {"version", "publisher", "seq", "updated", "entries", "nostr", "sig", "curates"}
    if unknown:
        raise CatalogInvalid(f"catalog has unknown field(s) {sorted(unknown)}")
    if d.get("version") != VERSION:
        raise CatalogInvalid(f"catalog version {d.get('version')!r} is not {VERSION}")
    pub, seq, updated, raw_entries, sig = (d.get(k) for k in ("publisher", "seq", "updated", "entries", "sig"))
    if not isinstance(pub, str) or not _HEX64.match(pub):
        raise CatalogInvalid("catalog publisher must be a 64-hex ed25519 key")
    if expected_publisher is not None and pub != expected_publisher:
        raise CatalogInvalid(f"catalog is signed for publisher {pub[:16]}…, expected {expected_publisher[:16]}…")
    if not _is_int(seq) or seq < 0:
        raise CatalogInvalid("catalog seq must be a non-negative integer")
    if not isinstance(updated, str) or not isinstance(raw_entries, list) or not isinstance(sig, str):
        raise CatalogInvalid("catalog needs updated (string), entries (list) and sig (hex)")
    nostr = d.get("nostr")
    curates = d.get("curates", [])
    if not isinstance(curates, list) or not all(isinstance(c, str) and _HEX64.match(c) for c in curates):
        raise CatalogInvalid("catalog curates must be a list of 64-hex catalog keys")
    pk = bytes.fromhex(pub)
    if nostr is not None:
        if (
            not isinstance(nostr, dict)
            or set(nostr) != {"pubkey", "sig"}
            or not isinstance(nostr["pubkey"], str)
            or not _HEX64.match(nostr["pubkey"])
            or not isinstance(nostr["sig"], str)
            or not _HEX128.match(nostr["sig"])
        ):
            raise CatalogInvalid("catalog nostr must be {pubkey: 64 hex, sig: 128 hex}")
        if not NostrKey.verify_schnorr(
            bytes.fromhex(nostr["pubkey"]), nostr_binding_message(pk), bytes.fromhex(nostr["sig"])
        ):
            raise CatalogInvalid("catalog's Nostr signature over its catalog key does not verify")
    # the document signature covers the entries exactly as sent, before any is dropped
    body = {k: v for k, v in d.items() if k != "sig"}
    if not _HEX128.match(sig) or not CatalogKey.verify(pk, DOC_DOMAIN + canonical(body), bytes.fromhex(sig)):
        raise CatalogInvalid(f"catalog signature does not verify under publisher {pub[:16]}…")
    entries: list[Entry] = []
    dropped: list[str] = []
    seen: set[str] = set()
    for raw in raw_entries:
        try:
            e = Entry.from_json(raw)
        except CatalogInvalid as exc:
            dropped.append(str(exc))
            continue
        if not e.verify(pk):
            dropped.append(f"entry {e.name}: its signature does not bind it to publisher {pub[:16]}… (copied?)")
            continue
        if e.name in seen:
            dropped.append(f"entry {e.name}: listed twice")
            continue
        seen.add(e.name)
        from dataclasses import replace

        entries.append(replace(e, publisher=pub))
    return Catalog(pub, seq, updated, tuple(entries), nostr, sig, curates=tuple(curates)), dropped


def _refuse_float(text: str) -> Any:
    raise CatalogInvalid(f"a catalog holds no floats (got {text})")


def memory_at(shape: dict[str, Any] | None, n_ctx: int = 4096) -> int | None:
    """Bytes a model needs on the CPU at ``n_ctx`` (capped at its trained context), from its portable shape."""
    if not shape:
        return None
    from silnode.fit.estimate import estimate, shape_from_portable

    try:
        s = shape_from_portable(shape)
    except ValueError:
        return None
    ctx = min(n_ctx, s.n_ctx_train or n_ctx)
    total = estimate(s, n_ctx=ctx, gpu=False).total_bytes
    return int(math.ceil(total))
