"""Following other publishers (a mixin of :class:`~silnode.discovery.service.DiscoveryService`): the trust
list, refreshing each publisher's pointer and catalog under the trust rules, fetching catalog torrents,
and re-putting the pointers of the followed catalogs."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from typing import Any

from silnode.discovery.bep44 import btpk_magnet, parse_publisher
from silnode.discovery.document import parse_catalog
from silnode.discovery.index import entry_view
from silnode.discovery.pointer import get_pointer
from silnode.discovery.torrent import FILE_NAME, catalog_magnet, catalog_torrent
from silnode.errors import BadRequest, CatalogInvalid, CatalogNotFound, SilnodeError
from silnode.manifest import now
from silnode.torrent.events import TorrentFailed, TorrentFinished

log = logging.getLogger(__name__)

REFRESH_CONCURRENCY = 8  # publishers looked up at once


class FollowingMixin:
    # ============================================================================================ following
    def follows(self) -> list[dict[str, Any]]:
        return self.state.read_follows()

    def sources(self, *, hints: bool = False) -> list[tuple[bytes, bytes, str]]:
        """(public key, salt, source) of every publisher to refresh: followed ones ("follow"), configured ones
        ("config"), and with ``hints`` the learned ones ("rendezvous", "nip89")."""
        out: dict[bytes, tuple[bytes, bytes, str]] = {}
        for f in self.follows():
            try:
                pk, salt = bytes.fromhex(f["publisher"]), bytes.fromhex(f.get("salt", self.salt.hex()))
            except ValueError:
                continue
            out[pk] = (pk, salt, "follow")
        for text in self.dc.publishers:
            try:
                pk, salt = parse_publisher(text, self.salt)
            except CatalogInvalid as exc:
                log.warning("discovery.publishers entry %r: %s", text, exc)
                continue
            out.setdefault(pk, (pk, salt, "config"))
        if hints:
            for pk, src in self.learned.items():
                out.setdefault(pk, (pk, self.salt, src))
        return list(out.values())

    def _resolve_publisher(self, text: str) -> tuple[bytes, bytes]:
        text = (text or "").strip()
        if text.startswith("npub1"):
            from silnode.identity.bech32 import npub_decode

            try:
                nostr_hex = npub_decode(text).hex()
            except Exception as exc:  # a malformed npub: the decoder's own error type
                raise BadRequest(f"not a valid npub: {exc}") from exc
            for cat in self.catalogs.values():
                if cat.nostr_pubkey == nostr_hex:
                    return bytes.fromhex(cat.publisher), self.salt
            raise CatalogNotFound(
                f"no known catalog is bound to {text[:20]}…",
                hint="follow its catalog key or magnet (`silnode catalog show` on that node prints both)",
            )
        return parse_publisher(text, self.salt)

    async def follow(self, text: str, *, wait: bool = True) -> dict[str, Any]:
        pk, salt = self._resolve_publisher(text)
        pub = pk.hex()
        if pub == self.publisher:
            raise BadRequest("that is this node's own catalog", hint="`silnode catalog show`")
        follows = self.follows()
        if not any(f["publisher"] == pub for f in follows):
            if len(follows) >= self.dc.max_follow:
                raise BadRequest(
                    f"already following {len(follows)} catalogs (discovery.max_follow)",
                    hint="`silnode unfollow` one, or follow a curator catalog instead",
                )
            follows.append({"publisher": pub, "salt": salt.hex(), "added": now()})
            await asyncio.to_thread(self.state.write_follows, follows)
        result: dict[str, Any] = {"publisher": pub, "magnet": btpk_magnet(pk, salt), "followed": True}
        if wait and self.dht:
            result["refresh"] = await self.refresh_one(pk, salt)
        cat = self.catalogs.get(pub)
        result["entries"] = [entry_view(e) for e in cat.entries] if cat else []
        result["seq"] = cat.seq if cat else None
        return result

    async def unfollow(self, text: str) -> dict[str, Any]:
        pk, _ = self._resolve_publisher(text)
        pub = pk.hex()
        follows = self.follows()
        kept = [f for f in follows if f["publisher"] != pub]
        if len(kept) == len(follows):
            raise CatalogNotFound(f"not following {pub[:16]}…")
        await asyncio.to_thread(self.state.write_follows, kept)
        configured = any(parse_publisher(t, self.salt)[0] == pk for t in self.dc.publishers)
        if not configured:  # its catalog leaves the merge, and we stop seeding it
            self.catalogs.pop(pub, None)
            self._bytes.pop(pub, None)
            ih = self._seeds.pop(pub, None)
            if ih and self.engine.running and ih in self.engine.session.ids():
                await self.engine.session.remove(ih)
            await asyncio.to_thread(self.state.drop, pub)
            self._reindex()
        return {"publisher": pub, "followed": False}

    def following(self) -> list[dict[str, Any]]:
        out = []
        for pk, salt, source in self.sources():
            pub = pk.hex()
            cat = self.catalogs.get(pub)
            out.append(
                {
                    "publisher": pub,
                    "magnet": btpk_magnet(pk, salt),
                    "source": source,
                    "seq": cat.seq if cat else None,
                    "updated": cat.updated if cat else None,
                    "entries": len(cat.entries) if cat else 0,
                    "nostr_pubkey": cat.nostr_pubkey if cat else None,
                    "seeding": self._seeds.get(pub),
                }
            )
        return out

    # ============================================================================================ refreshing
    async def refresh(self) -> dict[str, Any]:
        # concurrently, a few at a time: a lookup for a key nobody stores waits out every dead DHT node it meets
        # (~15 s each in libtorrent), and must not hold up the publishers that answer
        sem = asyncio.Semaphore(REFRESH_CONCURRENCY)

        async def one(pk: bytes, salt: bytes) -> str:
            async with sem:
                return await self.refresh_one(pk, salt)

        sources = self.sources(hints=True)
        results = await asyncio.gather(*(one(pk, salt) for pk, salt, _ in sources))
        return {pk.hex(): r for (pk, _, _), r in zip(sources, results)}

    async def refresh_one(self, pk: bytes, salt: bytes) -> str:
        """Look up one publisher's pointer and fetch its catalog when it is newer. Returns what happened.
        One refresh per publisher at a time (`follow` and the background round may ask together)."""
        lock = self._pub_locks.setdefault(pk.hex(), asyncio.Lock())
        async with lock:
            t = time.monotonic()
            result = await self._refresh_one(pk, salt)
            log.debug("refresh %s…: %s (%.2f s)", pk.hex()[:16], result, time.monotonic() - t)
            return result

    async def _refresh_one(self, pk: bytes, salt: bytes) -> str:
        if not self.dht:
            return "dht off: cached copy kept"
        pub = pk.hex()
        p = await get_pointer(self.engine.session, pk, salt, timeout=float(self.dc.fetch_timeout))
        if p is None:
            return "no pointer found: cached copy kept" if pub in self.catalogs else "no pointer found"
        if p.infohash is None:
            self._drop(pub, f"pointer seq {p.seq} is not a BEP 46 pointer")
            return "not a BEP 46 pointer"
        cached = self.catalogs.get(pub)
        if cached is not None:
            if p.seq < cached.seq:
                self._drop(pub, f"pointer seq {p.seq} is older than the cached catalog's {cached.seq} (replay)")
                return "stale pointer: cached copy kept"
            if catalog_torrent(self._bytes[pub])[1] == p.infohash:
                await self._remember_pointer(pk, salt)
                return "up to date"
        data = await self._fetch(pub, p.infohash)
        if data is None:
            return "catalog torrent not reachable: cached copy kept" if cached else "catalog torrent not reachable"
        try:
            cat, dropped = parse_catalog(data, expected_publisher=pub)
        except CatalogInvalid as exc:
            self._drop(pub, f"catalog {p.infohash}: {exc}")
            return f"refused: {exc}"
        for why in dropped:
            self._drop(pub, why)
        if cat.seq != p.seq:
            self._drop(pub, f"catalog seq {cat.seq} does not match its pointer's seq {p.seq}")
            return "refused: seq mismatch"
        if cached is not None and cat.seq <= cached.seq:
            self._drop(pub, f"catalog seq {cat.seq} is not newer than the cached {cached.seq} (rollback)")
            return "refused: rollback"
        await asyncio.to_thread(self.state.write_catalog, pub, data)
        self.catalogs[pub], self._bytes[pub] = cat, data
        self._reindex()
        await self._seed(pub, data)
        await self._remember_pointer(pk, salt)
        if any(k == pk and src in ("follow", "config") for k, _, src in self.sources()):
            for other in cat.curates:  # a followed curator's list: hints, each checked on its own
                self.learn_publisher(other, f"curator:{pub[:16]}")
        return f"updated to seq {cat.seq}"

    async def _remember_pointer(self, pk: bytes, salt: bytes) -> None:
        """Keep the newest signed item (signature included) so we can re-put it for its publisher."""
        if self.krpc is None:
            return
        item = await self.krpc.get(pk, salt, await self.bootstrap())
        old = await asyncio.to_thread(self.state.read_pointer, pk.hex())
        if item is not None and (old is None or item.seq >= old.seq):
            await asyncio.to_thread(self.state.write_pointer, item)

    async def _fetch(self, pub: str, ih: str) -> bytes | None:
        """Download catalog torrent ``ih`` (found through the DHT) into a scratch dir; its bytes or None."""
        ses = self.engine.session
        scratch = self.state.dir(pub) / f"incoming-{ih}"
        scratch.mkdir(parents=True, exist_ok=True)
        done = ses.expect(lambda e: isinstance(e, (TorrentFinished, TorrentFailed)) and e.id == ih)
        try:
            if ih not in ses.ids():
                await ses.add_download(catalog_magnet(ih), scratch, preallocate=False)
            ev = await asyncio.wait_for(done, float(self.dc.fetch_timeout))
            if isinstance(ev, TorrentFailed):
                log.warning("catalog torrent %s failed: %s", ih, ev.error)
                return None
            return (scratch / FILE_NAME).read_bytes()
        except (asyncio.TimeoutError, OSError, SilnodeError) as exc:
            log.warning("catalog torrent %s of %s… not fetched: %s", ih, pub[:16], exc or "timeout")
            return None
        finally:
            done.cancel()
            if ses.running and ih in ses.ids() and self._seeds.get(pub) != ih:
                try:
                    await ses.remove(ih)
                except SilnodeError as exc:  # the session is going away: nothing left to clean up
                    log.debug("removing catalog download %s: %s", ih, exc)
            await asyncio.to_thread(shutil.rmtree, scratch, True)

    async def reput(self) -> dict[str, int]:
        """Put again the own pointer and the newest signed pointer of each followed publisher (anyone may
        re-put a signed item): a catalog stays findable while any follower runs."""
        out: dict[str, int] = {}
        if self.krpc is None:
            return out
        boot = await self.bootstrap()
        pubs = [pk for pk, _, _ in self.sources()]
        if self.identity is not None:
            pubs.insert(0, self.identity.catalog.public_key)
        for pk in pubs:
            item = await asyncio.to_thread(self.state.read_pointer, pk.hex())
            latest = await self.krpc.get(pk, item.salt if item else self.salt, boot)
            if latest is not None and (item is None or latest.seq > item.seq):
                item = latest
                await asyncio.to_thread(self.state.write_pointer, item)
            if item is None:
                continue
            res = await self.krpc.put(item, boot)
            out[pk.hex()] = res.stored
        await self._announce_names(only_new=False)
        return out
