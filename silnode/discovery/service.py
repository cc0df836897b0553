"""DiscoveryService: publishes this node's catalog, follows other publishers' catalogs, merges and searches.

Started after distribution (it uses the torrent engine's session for DHT gets, catalog downloads and seeding
the catalog torrents). What runs in the background, every ``tick``:

* **publish** — when the store's shared models change (share, rm, seeding on/off), a new catalog with seq + 1
  is built, written, seeded, and its BEP 46 pointer put with ``cas`` = the previous seq.
* **refresh** — every ``discovery.refresh_interval``, each followed (and configured) publisher's pointer is read
  through libtorrent; a newer ``ih`` is fetched as a torrent, checked (signature, key, seq = pointer seq, no
  rollback) and replaces that publisher's cached catalog only; a publisher that cannot be reached keeps its
  cached catalog. Every cached catalog is seeded, so a catalog outlives its publisher.
* **re-put** — every ``discovery.reput_interval`` (BEP 44 items may expire after 2 h), the own pointer and the
  newest signed pointer of every followed publisher are put again with our KRPC client, and our model names
  are announced again under their name targets.
* **hints** — the shared rendezvous (:mod:`silnode.discovery.rendezvous`), exact-name lookups and
  :meth:`DiscoveryService.learn_publisher` (NIP-89) add publisher keys that join the merge only once their
  own signed pointer and catalog check out.

An identity may be absent: then nothing is published (``catalog show`` says why), following and search work.
With the DHT off (``network.dht_enabled: false`` or ``lan_only`` with no LAN bootstrap node) only the
cached catalogs are searched.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import socket
import time
from typing import Any

from silnode.config import Config
from silnode.discovery import rendezvous
from silnode.discovery.bep44 import btpk_magnet, parse_publisher, sign_pointer
from silnode.discovery.document import Catalog, Entry, build_catalog, memory_at, parse_catalog
from silnode.discovery.index import Index, entry_view
from silnode.discovery.krpc import KrpcClient
from silnode.discovery.pointer import get_pointer
from silnode.discovery.state import DiscoveryState
from silnode.discovery.torrent import FILE_NAME, catalog_magnet, catalog_torrent
from silnode.errors import (
    BadRequest,
    CatalogInvalid,
    CatalogNotFound,
    DiscoveryUnavailable,
    NameAmbiguous,
    SilnodeError,
)
from silnode.manifest import Manifest, now
from silnode.names import is_valid_name
from silnode.store import Store
from silnode.torrent.engine import TorrentEngine
from silnode.torrent.events import TorrentFailed, TorrentFinished
from silnode.torrent.settings import dht_bootstrap_nodes

log = logging.getLogger(__name__)

NAME_DOMAIN = b"silnode-name-v1\x00"
ANNOUNCE_FOR = 120.0
REFRESH_CONCURRENCY = 8  # publishers looked up at once
RETRY_AFTER = 30.0  # seconds before a refresh or re-put round that reached nothing is tried again  # seconds a new catalog seed is re-announced (a routing table still settling loses some)


def name_target(name: str) -> bytes:
    """The DHT target a model name is announced under (a hint, never a key anyone writes an item with)."""
    return hashlib.sha1(NAME_DOMAIN + name.encode()).digest()


class DiscoveryService:
    name = "discovery"

    def __init__(self, config: Config, store: Store, engine: TorrentEngine, identity: Any = None) -> None:
        self.config = config
        self.dc = config.discovery
        self.store = store
        self.engine = engine
        self.identity = identity
        self.state = DiscoveryState(config.state_dir / "discovery")
        self.salt = self.dc.salt.encode()
        self.catalogs: dict[str, Catalog] = {}  # publisher hex -> newest verified catalog
        self._bytes: dict[str, bytes] = {}
        self.index = Index()
        self.krpc: KrpcClient | None = None
        self._seeds: dict[str, str] = {}  # publisher -> infohash of the catalog torrent we seed
        self._fresh: dict[str, float] = {}  # infohash -> re-announce until
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._pub_locks: dict[str, asyncio.Lock] = {}
        self._stopping = False
        self._store_sig: Any = None
        self._announced: set[str] = set()  # names announced under their name target since start
        self._last_refresh = float("-inf")  # monotonic time may be small on a fresh boot: first round at once
        self._last_reput = float("-inf")
        self.learned: dict[bytes, str] = {}  # publisher key -> where the hint came from (rendezvous, nip89)
        self._last_learn = float("-inf")
        self._rdv_day: str | None = None
        self.dropped: list[dict[str, Any]] = []  # what was refused lately and why (newest last)
        self.last_error: str | None = None

    # ============================================================================================ lifecycle
    @property
    def dht(self) -> bool:
        s = self.engine.session.settings if self.engine.running else {}
        return bool(self.dc.enabled and s.get("enable_dht"))

    @property
    def publisher(self) -> str | None:
        return self.identity.catalog.public_key_hex if self.identity is not None else None

    @property
    def catalog_magnet(self) -> str | None:
        """This node's catalog as ``magnet:?xs=urn:btpk:<pubkey>&s=<salt>`` (for NIP-89 content), or None
        without an identity."""
        return btpk_magnet(self.identity.catalog.public_key, self.salt) if self.identity is not None else None

    async def start(self) -> None:
        self._stopping = False
        await asyncio.to_thread(self.state.ensure)
        cached = await asyncio.to_thread(self.state.load_catalogs)
        for pub, (cat, data) in cached.items():
            self.catalogs[pub], self._bytes[pub] = cat, data
        self._reindex()
        if not self.dc.enabled:
            return
        for pub, data in list(self._bytes.items()):
            await self._seed(pub, data)
        if self.dht:
            # IPv4 only, like the compact node lists it reads (BEP 5); lan_only limits whom it talks to
            self.krpc = KrpcClient(bind="0.0.0.0", local_only=self.config.network.lan_only)
            await self.krpc.start()
            if self.identity is not None:
                self.krpc.catalog = (self.identity.catalog.public_key, self.salt)
        self._task = asyncio.create_task(self._loop(), name="silnode-discovery")

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            # Python 3.11's wait_for can swallow a cancel that lands as its inner future completes (the round
            # then goes on): cancel again until the task is really done
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
            if not task.cancelled() and task.exception() is not None:
                log.debug("discovery loop ended with %r", task.exception())
        if self.krpc is not None:
            self.krpc.close()
            self.krpc = None

    def tick_seconds(self) -> float:
        return float(max(0.2, min(self.dc.refresh_interval, 5)))

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one failed round must not end discovery
                self.last_error = str(exc)
                log.exception("discovery round failed")
            await asyncio.sleep(self.tick_seconds())

    async def _tick(self) -> None:
        t = time.monotonic()
        if self.identity is not None and self.dc.publish:
            await self.publish()
        if self.dht and self.krpc is not None and self.dc.rendezvous:
            await self._rendezvous(t)
        # a round that found nothing (a DHT still bootstrapping after start, a network that just came back) is
        # tried again after RETRY_AFTER seconds rather than a whole interval later
        if self.dht and t - self._last_refresh >= self.dc.refresh_interval:
            self._last_refresh = t
            results = await self.refresh()
            if any(r.startswith(("no pointer", "catalog torrent not reachable")) for r in results.values()):
                self._last_refresh = t - self.dc.refresh_interval + min(RETRY_AFTER, self.dc.refresh_interval)
        if self.dht and t - self._last_reput >= self.dc.reput_interval:
            self._last_reput = t
            stored = await self.reput()
            if any(n == 0 for n in stored.values()):
                self._last_reput = t - self.dc.reput_interval + min(RETRY_AFTER, self.dc.reput_interval)
        for ih, until in list(self._fresh.items()):
            if t > until:
                self._fresh.pop(ih, None)
            elif self.engine.running and ih in self.engine.session.ids():
                self.engine.session.announce(ih)

    # ============================================================================================ DHT plumbing
    async def bootstrap(self) -> list[tuple[str, int]]:
        """Where our KRPC lookups start: our own libtorrent DHT node (it knows the routing table), then the
        configured bootstrap nodes (host names resolved; under lan_only only local IP literals remain)."""
        out: list[tuple[str, int]] = []
        if self.engine.running:
            addr = self.config.network.listen_address
            host = "127.0.0.1" if addr in ("0.0.0.0", "", "::") else addr
            if ":" not in host:  # an IPv6 listen address: our IPv4 socket cannot reach it
                out.append((host, self.engine.session.listen_port()))
        loop = asyncio.get_running_loop()
        for item in dht_bootstrap_nodes(self.config.network):
            host, _, port = item.rpartition(":")
            host = host.strip("[]")
            try:
                infos = await loop.getaddrinfo(host, int(port), family=socket.AF_INET, type=socket.SOCK_DGRAM)
            except (OSError, ValueError):
                continue
            out.extend((i[4][0], int(i[4][1])) for i in infos[:1])
        return list(dict.fromkeys(out))

    def _drop(self, publisher: str, why: str) -> None:
        log.warning("discovery: dropped from %s…: %s", publisher[:16], why)
        self.dropped.append({"publisher": publisher, "reason": why, "at": now()})
        del self.dropped[:-50]

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

    async def lookup_name(self, name: str, *, max_peers: int = 20) -> list[Entry]:
        """Resolve an exact name through the DHT: the peers announced under SHA-1 of the name are hints; each
        is asked for its catalog key, and a key counts only once its own signed pointer and catalog check out
        and list the name. Nobody can write under a key they do not hold, so a hint can waste a lookup but
        cannot put words in a publisher's mouth."""
        if not self.dht or self.krpc is None:
            return []
        boot = await self.bootstrap()
        peers = await self.krpc.get_peers(name_target(name), boot)
        for peer in peers[:max_peers]:
            found = await self.krpc.ask_catalog(peer)
            if found is None or found[0] == (self.identity.catalog.public_key if self.identity else None):
                continue
            pk, salt = found
            self.learn_publisher(pk.hex(), "name")
            await self.refresh_one(pk, salt)
        return self.index.named(name)

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

    # ============================================================================================ seeding
    async def _seed(self, pub: str, data: bytes) -> None:
        if not self.engine.running:
            return
        ses = self.engine.session
        tbytes, ih = catalog_torrent(data)
        old = self._seeds.get(pub)
        if old == ih and ih in ses.ids():
            return
        if old is not None and old in ses.ids():
            try:
                await ses.remove(old)
            except SilnodeError as exc:
                log.warning("could not stop seeding the old catalog %s: %s", old, exc)
        try:
            await ses.add_seed(tbytes, self.state.dir(pub), seed_mode=True)
        except SilnodeError as exc:
            if ih not in ses.ids():
                log.warning("cannot seed catalog of %s…: %s", pub[:16], exc)
                return
        self._seeds[pub] = ih
        ses.announce(ih)
        self._fresh[ih] = time.monotonic() + ANNOUNCE_FOR

    # ============================================================================================ hints
    async def _rendezvous(self, t: float) -> None:
        """Announce our key once a day; read the shards every ``rendezvous_interval`` (hints only)."""
        boot = await self.bootstrap()
        if self.publisher is not None and self.publisher in self.catalogs and self._rdv_day != rendezvous.day():
            if await rendezvous.announce(self.krpc, self.identity.catalog.public_key, boot):
                self._rdv_day = rendezvous.day()
        if t - self._last_learn >= self.dc.rendezvous_interval:
            self._last_learn = t
            for pk in await rendezvous.learn(self.krpc, boot):
                self.learn_publisher(pk.hex(), "rendezvous")

    def learn_publisher(self, publisher: str, source: str = "nip89") -> bool:
        """A publisher key heard of somewhere (the rendezvous, a NIP-89 announcement): a hint. It joins the
        merge only once its own signed pointer and catalog check out, and at most ``rendezvous_max`` join.
        Returns True when it is new."""
        try:
            pk = bytes.fromhex(publisher)
        except ValueError:
            return False
        known = {k for k, _, _ in self.sources()} | ({self.identity.catalog.public_key} if self.identity else set())
        if len(pk) != 32 or pk in known or pk in self.learned or len(self.learned) >= self.dc.rendezvous_max:
            return False
        self.learned[pk] = source
        return True

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

    # ============================================================================================ searching
    def _reindex(self) -> None:
        self.index = Index(self.catalogs.values())

    def search(
        self,
        pattern: str | None = None,
        *,
        tag: str | None = None,
        quant: str | None = None,
        max_size: int | None = None,
        fits: bool = False,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        from silnode.fit.seed import load_seed_catalog

        entries = self.index.search(pattern, tag=tag, quant=quant, max_size=max_size)
        seed = {m.name: m.sha256 for m in load_seed_catalog()}
        followed = {f["publisher"] for f in self.follows()}
        rows = []
        for e in entries:
            extra: dict[str, Any] = {
                "followed": e.publisher in followed,
                "mine": e.publisher == self.publisher,
                "seeders": self._seeders(e.infohash),
            }
            if e.name in seed and e.files[0]["sha256"] != seed[e.name]:
                extra["conflict"] = "the seed catalog pins other bytes under this name"
            if fits:
                ok, reason = self._fits(e)
                if not ok:
                    continue
                extra.update(fits=ok, fit_reason=reason)
            rows.append(entry_view(e, **extra))
            if limit and len(rows) >= limit:
                break
        return rows

    def _fits(self, e: Entry) -> tuple[bool, str]:
        from silnode.fit.recommend import metadata_fit_check

        return metadata_fit_check(self.config, e.size, e.shape)

    def _seeders(self, ih: str) -> int | None:
        if not self.engine.running or ih not in self.engine.session.ids():
            return None
        try:
            return self.engine.session.status(ih).num_seeds
        except SilnodeError:
            return None

    # ============================================================================================ get by name
    def resolve(self, name: str) -> Entry:
        """The entry ``get org/model`` downloads: the only one, or the followed (or own) publisher's; else
        NameAmbiguous listing every (publisher, infohash)."""
        found = self.index.named(name)
        if not found:
            raise CatalogNotFound(
                f"no catalog offers {name}", hint="`silnode discover` lists what the followed catalogs offer"
            )
        if len({e.infohash for e in found}) == 1:
            return found[0]
        trusted = {f["publisher"] for f in self.follows()} | ({self.publisher} if self.publisher else set())
        mine = [e for e in found if e.publisher in trusted]
        if len({e.infohash for e in mine}) == 1:
            return mine[0]
        offers = [{"publisher": e.publisher, "infohash": e.infohash} for e in found]
        raise NameAmbiguous(
            f"{len(found)} publishers offer {name}: "
            + ", ".join(f"{o['publisher'][:12]}… {o['infohash']}" for o in offers),
            hint="get the one you want by infohash (`silnode get <infohash> --name ...`), or follow its publisher",
            offers=offers,
        )

    async def resolve_get(self, target: str | None, name: str | None = None) -> dict[str, Any]:
        """What `get` does with ``target`` before the download path: a btpk magnet follows that publisher
        ({"followed": ...}); an org/model name no seed-catalog model has resolves through the catalogs to
        {"target": magnet, "name": ...}; anything else passes through unchanged."""
        if not target:
            return {"target": target, "name": name}
        if target.startswith("magnet:") and "urn:btpk:" in target.lower():
            return {"followed": await self.follow(target)}
        if not is_valid_name(target) or "/" not in target:
            return {"target": target, "name": name}
        from silnode.fit.seed import load_seed_catalog

        if any(m.name == target for m in load_seed_catalog()):
            return {"target": target, "name": name}
        if not self.index.named(target):
            await self.lookup_name(target)
        e = self.resolve(target)
        return {"target": e.magnet, "name": name or e.name, "publisher": e.publisher}

    def summary(self) -> dict[str, Any]:
        return {
            "enabled": self.dc.enabled,
            "dht": self.dht,
            "publisher": self.publisher,
            "catalogs": len(self.catalogs),
            "entries": len(self.index),
            "following": len(self.follows()),
            "learned": len(self.learned),
        }
