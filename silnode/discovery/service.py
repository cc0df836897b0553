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

Publishing lives in :mod:`silnode.discovery.publishing`, following and refreshing in
:mod:`silnode.discovery.following` (mixins of this class); lifecycle, hints, search and get-by-name here.

An identity may be absent: then nothing is published (``catalog show`` says why), following and search work.
With the DHT off (``network.dht_enabled: false`` or ``lan_only`` with no LAN bootstrap node) only the
cached catalogs are searched.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any

from silnode.config import Config
from silnode.discovery import rendezvous
from silnode.discovery.bep44 import btpk_magnet, name_target
from silnode.discovery.document import Catalog, Entry
from silnode.discovery.following import FollowingMixin
from silnode.discovery.index import Index, entry_view
from silnode.discovery.krpc import KrpcClient
from silnode.discovery.publishing import PublishingMixin
from silnode.discovery.state import DiscoveryState
from silnode.discovery.torrent import catalog_torrent
from silnode.errors import CatalogNotFound, NameAmbiguous, SilnodeError
from silnode.manifest import now
from silnode.names import is_valid_name
from silnode.store import Store
from silnode.torrent.engine import TorrentEngine
from silnode.torrent.settings import dht_bootstrap_nodes

log = logging.getLogger(__name__)

ANNOUNCE_FOR = 120.0  # seconds a new catalog seed is re-announced (a routing table still settling loses some)
RETRY_AFTER = 30.0  # seconds before a refresh or re-put round that reached nothing is tried again


class DiscoveryService(PublishingMixin, FollowingMixin):
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
