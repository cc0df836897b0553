"""Publishing this node's catalog (a mixin of :class:`~silnode.discovery.service.DiscoveryService`): the
entries from the store's shared models, a new seq when they change, the signed pointer put with
compare-and-swap, the names announced for exact-name lookups, and what `catalog show` prints."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from silnode.discovery.bep44 import name_target, parse_publisher, sign_pointer
from silnode.discovery.document import Entry, build_catalog, memory_at
from silnode.discovery.index import entry_view
from silnode.discovery.torrent import catalog_magnet, catalog_torrent
from silnode.errors import CatalogInvalid, DiscoveryUnavailable, SilnodeError
from silnode.manifest import Manifest, now

log = logging.getLogger(__name__)


class PublishingMixin:
    # ============================================================================================ publishing
    def _curates(self) -> tuple[str, ...]:
        out = set()
        for text in self.dc.curates:
            try:
                out.add(parse_publisher(text, self.salt)[0].hex())
            except CatalogInvalid as exc:
                log.warning("discovery.curates entry %r: %s", text, exc)
        out.discard(self.publisher or "")
        return tuple(sorted(out))

    def _store_signature(self) -> tuple[tuple[str, int, int], ...]:
        from silnode.distribution import TORRENT_FILE
        from silnode.store import MANIFEST

        out = []
        for name in self.store.names():
            d = self.store.model_dir(name)
            stamps = []
            for f in (MANIFEST, TORRENT_FILE):
                try:
                    stamps.append((d / f).stat().st_mtime_ns)
                except OSError:
                    stamps.append(0)
            out.append((name, *stamps))
        return tuple(out)

    def _own_entries(self) -> list[Entry]:
        from silnode.distribution import TORRENT_FILE
        from silnode.torrent.create import read_our_shape

        entries = []
        for name in self.store.names():
            try:
                m: Manifest = self.store.read_manifest(name)
            except SilnodeError:
                continue
            if not m.seeded or m.state != "ok" or m.advertise is False or not m.infohash or not m.magnet:
                continue
            if any(not f.sha256 for f in m.files):
                continue
            tpath = self.store.model_dir(name) / TORRENT_FILE
            try:
                shape = read_our_shape(tpath.read_bytes()) if tpath.is_file() else None
            except SilnodeError:
                shape = None
            facts = m.facts
            tags = {t for t in (facts.arch, *(m.extra.get("tags") or [])) if isinstance(t, str) and t}
            entries.append(
                Entry(
                    name=m.name,
                    size=m.total_size,
                    files=tuple({"path": f.path, "size": f.size, "sha256": f.sha256} for f in m.files),
                    infohash=m.infohash,
                    magnet=m.magnet,
                    arch=facts.arch,
                    params=facts.params,
                    quant=facts.quant,
                    context_length=facts.context_length,
                    memory=memory_at(shape),
                    license=m.license,
                    tags=tuple(sorted(tags)),
                    shape=shape,
                )
            )
        return entries

    def _require_identity(self) -> Any:
        if self.identity is None:
            raise DiscoveryUnavailable(
                "this node has no unlocked identity, so it has no catalog key to publish with",
                hint="run `silnode identity new` (or unlock it) and restart the daemon",
            )
        return self.identity

    async def publish(self, *, force: bool = False) -> dict[str, Any]:
        """A new catalog (seq + 1) when the shared models changed; ``force`` puts the pointer again even
        when nothing changed. Same models -> same document -> nothing new is published."""
        ident = self._require_identity()
        pub = ident.catalog.public_key_hex
        async with self._lock:
            # the store is polled every tick: rebuild the entries only when a manifest or torrent changed
            store_sig = await asyncio.to_thread(self._store_signature)
            if not force and store_sig == self._store_sig:
                return self.show()
            self._store_sig = store_sig
            entries = sorted(await asyncio.to_thread(self._own_entries), key=lambda e: e.name)
            current = self.catalogs.get(pub)
            curates = self._curates()
            changed = current is None or (
                [e.body() for e in current.entries] != [e.body() for e in entries] or current.curates != curates
            )
            if current is None and not entries and not curates:
                changed = False  # nothing shared yet and nothing ever published: no empty catalog
            if changed:
                mine = await asyncio.to_thread(self.state.read_mine)
                prev = await asyncio.to_thread(self.state.read_pointer, pub)
                seq = max(int(mine.get("seq", 0)), current.seq if current else 0, prev.seq if prev else 0) + 1
                cat = build_catalog(ident, entries, seq=seq, updated=now(), curates=curates)
                data = cat.to_bytes()
                await asyncio.to_thread(self.state.write_catalog, pub, data)
                await asyncio.to_thread(self.state.write_mine, {"seq": seq})
                self.catalogs[pub], self._bytes[pub] = cat, data
                self._reindex()
                await self._seed(pub, data)
                log.info("catalog seq %d: %d model(s)", seq, len(entries))
            if (changed or force) and pub in self.catalogs:
                await self._put_own()
                await self._announce_names(only_new=not force)
        return self.show()

    async def _put_own(self) -> None:
        """Sign and put the pointer to our current catalog (cas = the seq the DHT held before)."""
        if not self.dht or self.krpc is None:
            return
        ident = self.identity
        pub = ident.catalog.public_key_hex
        cat = self.catalogs[pub]
        _, ih = catalog_torrent(self._bytes[pub])
        item = sign_pointer(ident.catalog, ih, cat.seq, self.salt)
        boot = await self.bootstrap()
        prev = await asyncio.to_thread(self.state.read_pointer, pub)
        cas = prev.seq if prev is not None and prev.seq < item.seq else None
        res = await self.krpc.put(item, boot, cas=cas)
        if res.stored == 0 and res.errors and cas is not None:
            res = await self.krpc.put(item, boot)  # the DHT held another seq (expired, or never stored): plain put
        await asyncio.to_thread(self.state.write_pointer, item)
        if res.stored == 0:
            self.last_error = f"pointer put reached no node ({res.errors[:3] or 'no DHT node answered'})"
            log.warning("catalog pointer seq %d: %s", item.seq, self.last_error)
        else:
            self.last_error = None
            log.info("catalog pointer seq %d stored on %d node(s)", item.seq, res.stored)

    async def _announce_names(self, *, only_new: bool) -> None:
        """Announce our KRPC socket under SHA-1 of each name we offer: a reader that follows nobody finds us
        by the name, asks our socket for our catalog key, and then checks our signed pointer and catalog."""
        if not self.dht or self.krpc is None or self.publisher not in self.catalogs:
            return
        boot = await self.bootstrap()
        for e in self.catalogs[self.publisher].entries:
            if only_new and e.name in self._announced:
                continue
            if await self.krpc.announce(name_target(e.name), boot):
                self._announced.add(e.name)

    def show(self) -> dict[str, Any]:
        """`catalog show`: seq, infohash, BEP 46 magnet, entries."""
        ident = self._require_identity()
        pub = ident.catalog.public_key_hex
        cat = self.catalogs.get(pub)
        out: dict[str, Any] = {
            "publisher": pub,
            "npub": ident.nostr.npub if getattr(ident, "nostr", None) else None,
            "magnet": self.catalog_magnet,
            "salt": self.dc.salt,
            "published": cat is not None,
            "dht": self.dht,
            "last_error": self.last_error,
        }
        if cat is not None:
            data = self._bytes[pub]
            _, ih = catalog_torrent(data)
            out.update(
                seq=cat.seq,
                updated=cat.updated,
                infohash=ih,
                torrent_magnet=catalog_magnet(ih),
                bytes=len(data),
                curates=list(cat.curates),
                entries=[entry_view(e) for e in cat.entries],
            )
        return out
