"""Distribution: share store models over BitTorrent and get models from swarms into the store.

This service joins the store (what we have) and the torrent session (how bytes move). It owns:

* seeding: every model with a torrent (``.silnode.torrent`` beside its manifest) is seeded unless its
  manifest says ``seeding: false``;
* transfers: downloads in progress, persisted in ``state/transfers.json`` with their resume data in
  ``state/resume/<id>.resume`` (both written tmp -> fsync -> rename), so a killed node resumes with only the
  missing pieces;
* the download pipeline: magnet/infohash -> metadata from peers (data held back) -> our ``silnode`` key read
  and disk space checked -> data released -> every piece hash-checked by libtorrent -> every file's SHA-256
  checked against the key -> moved atomically into the store -> seeded from there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from silnode.config import Config
from silnode.errors import BadTorrent, Conflict, NotFound, RecheckTimeout, SilnodeError
from silnode.fit.recommend import metadata_fit_check
from silnode.fsutil import atomic_write_bytes, atomic_write_json
from silnode.names import is_valid_name, validate_name
from silnode.store import Store, file_stats, files_changed
from silnode.torrent import events as ev
from silnode.torrent.create import (
    infohashes,
    load_torrent_info,
    magnet,
    make_torrent,
    parse_peer,
    parse_target,
    read_our_key,
    read_our_shape,
    target_magnet,
    torrent_from_resume,
    with_web_seeds,
)
from silnode.torrent.engine import TorrentEngine
from silnode.torrent.events import TorrentChecked
from silnode.torrent.layout import is_gguf_name
from silnode.torrent.session import TorrentSession
from silnode.transfer import ACTIVE, Transfer, same_id

log = logging.getLogger(__name__)

TORRENT_FILE = ".silnode.torrent"
V1_TORRENT_FILE = ".silnode-v1.torrent"  # optional v1-only twin for clients without BEP 52 (share --v1-compat)

DIAL_BACKOFF_START = 1.0  # a transfer without peers redials its explicit peers after 1 s, 2 s, 4 s ... 30 s
DIAL_BACKOFF_MAX = 30.0
ANNOUNCE_BACKOFF_START = 5.0  # ... and asks the DHT after 5 s, 10 s, 20 s ... up to libtorrent's own interval
ANNOUNCE_BACKOFF_MAX = 15 * 60.0  # libtorrent's dht_announce_interval
# how often one download is added again after libtorrent stopped it with "v1 and v2 hashes do not describe the
# same data" (README "A hostile peer"); past that it ends in error: something other than one bad peer is wrong
MAX_RECOVERIES = 5


@dataclass
class _Backoff:
    """When a transfer with no peer next redials its explicit peers and next asks the DHT."""

    started: float
    next_dial: float = 0.0
    dial_delay: float = DIAL_BACKOFF_START
    next_announce: float = 0.0
    announce_delay: float = ANNOUNCE_BACKOFF_START

    def __post_init__(self) -> None:
        self.next_dial = self.started  # at once: the transfer just lost (or never had) its peers
        self.next_announce = self.started + ANNOUNCE_BACKOFF_START  # then 10 s, 20 s, 40 s ... later
        self.announce_delay = ANNOUNCE_BACKOFF_START * 2


class DistributionService:
    name = "distribution"

    def __init__(self, config: Config, store: Store, engine: TorrentEngine) -> None:
        self.config = config
        self.store = store
        self.engine = engine
        self.transfers: dict[str, Transfer] = {}
        self.seeds: dict[str, str] = {}  # torrent id -> model name
        # how a web seed reaches libtorrent (the Node sets the web-seed gate's route); as it is without one
        self.route_web_seed: Callable[..., str] = lambda url, trusted: url
        self._state_file = config.state_dir / "transfers.json"
        self._resume_dir = config.state_dir / "resume"
        self._tasks: set[asyncio.Task[Any]] = set()
        self._events_task: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._dht_nodes = 0
        self._done: dict[str, asyncio.Event] = {}
        # seed id -> (re-announce until, next announce at, the delay after it)
        self._fresh: dict[str, tuple[float, float, float]] = {}
        self._rechecking: set[str] = set()  # seeds added with a full check because their files changed
        self._backoff: dict[str, _Backoff] = {}  # transfers with no peer: when to redial / re-announce next
        self._recovering: set[str] = set()  # transfers being removed and added again (_recover)

    @property
    def session(self) -> TorrentSession:
        return self.engine.session

    # ================================================================== lifecycle
    async def start(self) -> None:
        self._resume_dir.mkdir(parents=True, exist_ok=True)
        self._events = self.session.subscribe()
        self._events_task = asyncio.create_task(self._event_loop(), name="silnode-transfer-events")
        await self._restore_seeds()
        await self._restore_downloads()
        self._ticker = asyncio.create_task(self._tick(), name="silnode-transfer-ticker")

    async def stop(self) -> None:
        for t in (self._ticker, self._events_task, *self._tasks):
            if t:
                t.cancel()
        for t in (self._ticker, self._events_task, *self._tasks):
            if t:
                try:
                    await t
                except (asyncio.CancelledError, Exception):
                    pass
        if self.engine.running:
            self.session.unsubscribe(self._events)
            try:
                await self._save_seed_stats()
            except Exception:  # stopping must go on
                log.exception("saving the seed stats")
            resume = await self.session.save_all_resume(only_if_modified=False)
            for tid, data in resume.items():
                if tid in self.transfers and self.transfers[tid].state != "done":
                    await asyncio.to_thread(self._write_resume, tid, data)
        self._save_state()

    # ================================================================== sharing
    def torrent_path(self, name: str) -> Path:
        return self.store.model_dir(name) / TORRENT_FILE

    async def share(
        self, name: str, *, web_seeds: tuple[str, ...] = (), v1_compat: bool = False, progress: Any = None
    ) -> dict[str, Any]:
        """Make (or reuse) the model's torrent and seed it. Returns {name, infohash, magnet}.

        ``v1_compat`` also seeds a v1-only twin torrent of the same files (another swarm) for BitTorrent
        clients that cannot read hybrid torrents."""

        manifest = await asyncio.to_thread(self.store.read_manifest, name)
        if manifest.state != "ok":
            raise Conflict(
                f"model {name} is {manifest.state}; it cannot be shared",
                hint=f"run `silnode verify {name}` and re-import or re-download it",
            )
        mdir = self.store.model_dir(name)
        tpath = mdir / TORRENT_FILE
        seeds = tuple(web_seeds) or tuple(manifest.web_seeds or ())
        total = manifest.total_size
        if tpath.is_file():
            data = tpath.read_bytes()
            if web_seeds:  # url-list lies outside the info dict: edited in place, nothing hashed again
                data = with_web_seeds(data, seeds)
                await asyncio.to_thread(atomic_write_bytes, tpath, data)
        else:
            pieces = (lambda done, n: progress(done * total // max(n, 1), total)) if progress else None
            data = await asyncio.to_thread(
                make_torrent, mdir, manifest.file_records(), web_seeds=seeds, progress=pieces
            )
            await asyncio.to_thread(atomic_write_bytes, tpath, data)
        v1, v2 = infohashes(load_torrent_info(data))
        link = magnet(data, name=name, peers=self._own_peer_hints())
        await asyncio.to_thread(
            self.store.update_manifest,
            name,
            infohash=v1,
            infohash_v2=v2,
            magnet=link,
            seeding=True,
            web_seeds=list(seeds),
        )
        await self._seed(name, data, mdir)
        result = {"name": name, "infohash": v1, "infohash_v2": v2, "magnet": link, "torrent_file": str(tpath)}
        v1path = mdir / V1_TORRENT_FILE
        if v1_compat or v1path.is_file():
            if not v1path.is_file():
                compat = await asyncio.to_thread(
                    make_torrent, mdir, manifest.file_records(), web_seeds=seeds, v1_only=True
                )
                await asyncio.to_thread(atomic_write_bytes, v1path, compat)
            compat = v1path.read_bytes()
            cid = await self._seed(name, compat, mdir)
            clink = magnet(compat, name=name, peers=self._own_peer_hints())
            await asyncio.to_thread(self.store.update_manifest, name, v1_compat={"infohash": cid, "magnet": clink})
            result["v1_compat"] = {"infohash": cid, "magnet": clink, "torrent_file": str(v1path)}
        return result

    def _own_peer_hints(self) -> list[str]:
        addr = self.config.network.listen_address
        if addr in ("0.0.0.0", "::", ""):
            return []  # we do not know which of our addresses a peer can reach; the DHT finds us
        return [f"{addr}:{self.session.listen_port()}"]

    async def _seed(self, name: str, data: bytes, mdir: Path, *, recheck: bool = False) -> str:

        v1, _ = infohashes(load_torrent_info(data))
        if v1 in self.seeds or (v1 in self.transfers and self.transfers[v1].state != "done"):
            return v1
        m = await asyncio.to_thread(self.store.read_manifest, name)
        counters = m.extra.get("seed_stats") if isinstance(m.extra.get("seed_stats"), dict) else {}
        up, secs = int(counters.get("uploaded", 0) or 0), int(counters.get("seconds", 0) or 0)
        held = self._at_seed_limit(up, secs, m.total_size)
        tid = await self.session.add_seed(
            data, mdir, seed_mode=not recheck, uploaded=up, seeding_seconds=secs, paused=held is not None
        )
        if recheck:
            self._rechecking.add(tid)
        self.seeds[tid] = name
        if held is not None:
            log.info("%s stays paused: %s", name, held)
            return tid
        # tell the DHT now, and again every few seconds for a while: an announce made before the routing
        # table has settled (a node that just started) is lost, and libtorrent's own next one is minutes away
        self.session.announce(tid)
        self._fresh[tid] = (
            time.monotonic() + 120,
            time.monotonic() + ANNOUNCE_BACKOFF_START,
            ANNOUNCE_BACKOFF_START * 2,
        )
        return tid

    def _at_seed_limit(self, uploaded: int, seconds: int, size: int) -> str | None:
        """Why a model with these seeding counters must stay paused (network.seed_*_limit), or None."""
        ratio, limit_s = self.config.network.seed_ratio_limit, self.config.network.seed_time_limit
        if ratio > 0 and size and uploaded / size >= ratio:
            return f"seed ratio {uploaded / size:.2f} reached the limit {ratio:g}"
        if limit_s > 0 and seconds >= limit_s:
            return f"seeded for {seconds} s, the limit is {limit_s} s"
        return None

    async def _save_seed_stats(self) -> None:
        """Persist every seed's all-time upload and seeding time in its manifest (``seed_stats``), so ratio and
        seed-time limits count across restarts."""
        ids = set(self.session.ids())
        for tid, name in list(self.seeds.items()):
            if tid not in ids:
                continue
            st = self.session.status(tid)
            stats = {"uploaded": st.all_time_upload, "seconds": st.seeding_seconds}
            try:
                m = await asyncio.to_thread(self.store.read_manifest, name)
                if m.extra.get("seed_stats") != stats and m.infohash == tid:
                    await asyncio.to_thread(self.store.update_manifest, name, seed_stats=stats)
            except SilnodeError as exc:
                log.debug("seed stats of %s: %s", name, exc)

    async def _seed_all(self, name: str, *, recheck: bool = False) -> None:
        mdir = self.store.model_dir(name)
        for fname in (TORRENT_FILE, V1_TORRENT_FILE):
            if (mdir / fname).is_file():
                await self._seed(name, (mdir / fname).read_bytes(), mdir, recheck=recheck)
                recheck = False  # one full check is enough: the twin's files are the same

    async def set_seeding(self, name: str, enabled: bool) -> dict[str, Any]:
        manifest = await asyncio.to_thread(self.store.read_manifest, name)
        if not manifest.infohash:
            if not enabled:
                return {"name": name, "seeding": False}
            return {**await self.share(name), "seeding": True}
        await asyncio.to_thread(self.store.update_manifest, name, seeding=enabled)
        tid = manifest.infohash
        if enabled:
            await self._seed_all(name)
        else:
            await self.unshare(name)
        return {"name": name, "seeding": enabled, "infohash": tid}

    def is_seeding(self, name: str) -> bool:
        return name in self.seeds.values()

    async def unshare(self, name: str) -> None:
        """Stop seeding a model that is being removed from the store."""
        for tid, n in list(self.seeds.items()):
            if n == name:
                await self.session.remove(tid)
                self.seeds.pop(tid, None)

    async def recheck(self, name: str) -> dict[str, Any]:
        """Force libtorrent to re-hash a seeded model's pieces (on-disk damage is otherwise unnoticed)."""

        tid = next((t for t, n in self.seeds.items() if n == name), None)
        if tid is None:
            raise NotFound(f"model {name} is not being seeded", hint=f"run `silnode share {name}`")
        seen: dict[str, Any] = {}

        def checked(e: Any) -> bool:
            if not (isinstance(e, TorrentChecked) and e.id == tid):
                return False
            # read the result while the event is dispatched (waiters come before subscribers): the seed-check
            # handler that runs next removes a damaged torrent from the session, and its status with it
            seen["status"] = self.session.status(tid)
            return True

        waiter = self.session.expect(checked)
        self.session.force_recheck(tid)
        limit = self.config.network.recheck_timeout
        try:
            await asyncio.wait_for(waiter, limit)
        except asyncio.TimeoutError:
            raise RecheckTimeout(
                f"libtorrent did not finish re-hashing {name} within {limit:g} s (network.recheck_timeout); "
                "the check goes on in the background",
                hint="`silnode transfers` shows it; a big model on a slow disk needs a higher network.recheck_timeout",
            ) from None
        st = seen["status"]
        return {"name": name, "infohash": tid, "complete": st.progress >= 1.0, "progress": st.progress}

    async def _restore_seeds(self) -> None:
        for name in await asyncio.to_thread(self.store.names):
            try:
                manifest = await asyncio.to_thread(self.store.read_manifest, name)
                tpath = self.torrent_path(name)
                if manifest.seeded and manifest.state == "ok" and tpath.is_file():
                    # files changed since they were verified (an edit through a hardlinked import's original
                    # path): libtorrent checks every piece before seeding, damage marks the model
                    changed = await asyncio.to_thread(files_changed, self.store.model_dir(name), manifest)
                    if changed:
                        log.warning("%s: its files changed since they were verified; rechecking it", name)
                    await self._seed_all(name, recheck=changed)
            except SilnodeError as exc:
                log.warning("not seeding %s: %s", name, exc)

    # ================================================================== downloads
    async def download(
        self,
        target: str,
        *,
        peers: tuple[str, ...] = (),
        name: str | None = None,
        license: str | None = None,
        web_seeds: tuple[str, ...] = (),
        force: bool = False,
    ) -> Transfer:
        """Start a download; returns at once with the transfer (state 'metadata'). Unless `force`, it stops
        at the metadata when the model won't fit this machine's free memory: the full estimate from the shape our
        torrents carry, else (a foreign torrent) whether the weights alone fit."""

        if name is not None:
            validate_name(name)
        parsed = parse_target(target)
        for p in peers:
            parse_peer(p)
        tid = parsed.get("v1") or parsed.get("v2")
        if tid in self.transfers and self.transfers[tid].state in (*ACTIVE, "paused"):
            return self.transfers[tid]  # getting it again while it runs: the same transfer
        have = self.seeds.get(tid) or await asyncio.to_thread(self._name_of_infohash, tid)
        if have:
            raise Conflict(f"{have} is already in the store (infohash {tid})", hint=f"`silnode show {have}`")
        link = target_magnet(parsed) if not target.startswith("magnet:") else target
        untrusted = [u for u in parsed.get("web_seeds", []) if u not in web_seeds]  # from the magnet, not the user
        web_seeds = tuple(dict.fromkeys([*web_seeds, *untrusted]))
        wanted_name = name or (parsed.get("name") if is_valid_name(parsed.get("name")) else None)
        if wanted_name and self.store.exists(wanted_name):
            raise Conflict(
                f"model {wanted_name} is already in the store",
                hint="pass --name to store the download under another name",
            )
        work_id = f"dl-{tid[:20]}"
        work = self.store.register_partial(work_id)
        work.mkdir(parents=True, exist_ok=True)
        t = Transfer(
            id=tid,
            kind="download",
            name=wanted_name,
            target=link,
            peers=list(peers),
            web_seeds=list(web_seeds),
            untrusted_web_seeds=untrusted,
            license=license,
            work_id=work_id,
            force=force,
        )
        self.transfers[tid] = t
        self._done[tid] = asyncio.Event()
        try:
            real = await self.session.add_download(link, work, peers=list(peers), hold=True)
        except SilnodeError:
            self.transfers.pop(tid, None)
            self.store.release_partial(work_id)
            raise
        if real != tid:  # the session keys by v1 once known
            self.transfers[real] = self.transfers.pop(tid)
            self._done[real] = self._done.pop(tid)
            t.id = real
        self._add_web_seeds(t)
        self._save_state()
        return t

    def _routed(self, t: Transfer) -> list[str]:
        """The web seeds as libtorrent gets them: the user's own URLs as typed, others through the gate. A URL
        the gate refuses outright (not http(s)) is left out, with a log line."""
        out = []
        for url in t.web_seeds:
            try:
                out.append(self.route_web_seed(url, trusted=url not in t.untrusted_web_seeds))
            except SilnodeError as exc:
                log.warning("%s: web seed %s left out: %s", t.id[:12], url[:80], exc)
        return out

    def _add_web_seeds(self, t: Transfer) -> None:
        for url in self._routed(t):
            self.session.add_web_seed(t.id, url)

    def _name_of_infohash(self, tid: str) -> str | None:
        for name in self.store.names():
            try:
                m = self.store.read_manifest(name)
            except SilnodeError:
                continue
            if tid in m.infohashes():
                return name
        return None

    async def _on_metadata(self, t: Transfer) -> None:
        """Metadata is in: read our key, decide the name, check disk space, then let the data flow."""

        data = self.session.torrent_bytes(t.id)
        try:
            files = read_our_key(data) if data else None
        except SilnodeError as exc:
            return await self._fail(t, f"the torrent's silnode key is invalid: {exc}")
        if files is None:
            # a foreign torrent: we record the sha256 after download; it needs a name from the user
            if not t.name:
                return await self._fail(
                    t,
                    "this torrent has no silnode key, so it carries no model name; get it again with --name org/model",
                )
            # every file is fetched, sizes from the metadata; the .gguf files become the model, the others
            # (README, LICENSE, .json) are kept beside it as extra files (README: "Foreign torrents")
            files = [
                {"path": fname, "size": size, "sha256": None, **({} if is_gguf_name(fname) else {"extra": True})}
                for fname, size in self.session.files(t.id)
            ]
            if not any(not f.get("extra") for f in files):
                t.files = files
                return await self._fail(
                    t, "this torrent has no .gguf file, so it holds no model silnode can store", remove=True
                )
        t.files = files
        if not t.name:
            first = next(f["path"] for f in files if not f.get("extra"))
            stem = first[:-5] if first.endswith(".gguf") else first
            t.name = f"torrent/{stem[:80]}" if is_valid_name(f"torrent/{stem[:80]}") else f"torrent/{t.id[:16]}"
        if self.store.exists(t.name):
            return await self._fail(t, f"model {t.name} is already in the store; get it again with --name")
        total = sum(int(f["size"] or 0) for f in files)
        free = await asyncio.to_thread(self.store.free_bytes)
        need = total + self.config.storage.min_free_bytes
        if free < need:
            return await self._fail(
                t,
                f"not enough disk space: the model needs {total / 2**30:.2f} GiB plus "
                f"{self.config.storage.min_free_bytes / 2**30:.2f} GiB headroom, "
                f"{free / 2**30:.2f} GiB free",
                remove=True,
            )
        if not t.force:
            # silnode torrents carry the model's shape: the full estimate before any data moves
            gguf_bytes = sum(int(f["size"] or 0) for f in files if f["path"].endswith(".gguf"))
            shape = read_our_shape(data) if data else None
            fit, why = await asyncio.to_thread(metadata_fit_check, self.config, gguf_bytes, shape)
            if not fit:
                return await self._fail(
                    t, f"this model won't fit: {why}; get it with --force to download anyway", remove=True
                )
        t.state = "downloading"
        self._save_state()
        log.info("%s: metadata in (%s, %d file(s), %d bytes); downloading", t.id[:12], t.name, len(files), total)
        self.session.release(t.id)
        # the peers that gave us the metadata may have hung up meanwhile (nothing was wanted, and a seed
        # drops a peer that wants nothing): look them up again now rather than at the next periodic announce
        self.session.announce(t.id)

    async def _on_finished(self, t: Transfer) -> None:
        """All pieces are in: hand the files over to the store, then seed them.

        Crash-safe at every step (README "Crash-safe hand-off"): the resume data saved first records every
        piece, so a node killed before the model is in the store resumes with nothing to download and
        finishes again; the model (files, manifest and the .torrent to seed from) appears in ``models/`` with
        one directory rename, and a node killed after it finds the model there on restart and drops the
        transfer instead of fetching it again. Any failure ends the transfer in ``error`` with the step named.
        """
        if t.state in ("verifying", "done"):
            return
        t.state = "verifying"
        step = "saving the resume data"
        try:
            resume = await self.session.save_resume(t.id, timeout=60)
            await asyncio.to_thread(self._write_resume, t.id, resume)
            self._save_state()
            step = "writing the torrent"
            # the complete .torrent from what libtorrent verified: no second hashing pass to rebuild it
            tdata = await asyncio.to_thread(self._seedable_torrent, t, resume)
            step = "releasing the files"
            await self.session.remove(t.id)  # libtorrent lets go of the files before they move
            step = "verifying and moving into the store"
            await self._adopt(t, tdata)
            step = "recording the transfer"
            self.store.release_partial(t.work_id)
            self._drop_resume(t.id)
            t.state, t.finished, t.error = "done", time.time(), None
            self._save_state()
            step = "seeding"
            await self._seed(t.name, tdata, self.store.model_dir(t.name))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not isinstance(exc, SilnodeError):
                log.exception("transfer %s: %s failed", t.id[:12], step)
            if t.state == "done":  # the model is in the store; only seeding it failed
                t.error = f"downloaded, but seeding failed: {exc}"
                log.error("%s: %s", t.name, t.error)
            else:
                await self._fail(t, f"{step} failed: {exc}")
            return
        finally:
            if t.id in self._done and t.state in ("done", "error"):
                self._done[t.id].set()
        log.info("downloaded %s (%s)", t.name, t.id)

    def _seedable_torrent(self, t: Transfer, resume: bytes) -> bytes:
        """The .torrent to seed from: written from the resume data (no hashing), else — when libtorrent kept
        too little of the merkle trees for it, as after a restart mid-download — rebuilt from the downloaded
        files (one hashing pass; our own torrents are deterministic, so the rebuild must give the same
        infohash); a foreign torrent then seeds the metadata it received, as received."""
        try:
            tdata = torrent_from_resume(resume, web_seeds=t.web_seeds)
        except BadTorrent as exc:
            received = self.session.torrent_bytes(t.id)
            files = read_our_key(received) if received else None
            if files:
                log.warning("%s: %s; rebuilding the torrent from the files", t.id[:12], exc)
                tdata = make_torrent(self.store.partial_dir / t.work_id, files, web_seeds=t.web_seeds)
            elif received:  # a foreign torrent: seed the info dict received (peers supply the piece layers)
                log.warning("%s: %s; seeding the received metadata", t.id[:12], exc)
                tdata = with_web_seeds(received, t.web_seeds)
            else:
                raise
        if infohashes(load_torrent_info(tdata))[0] != t.id:
            raise SilnodeError("the torrent written for seeding has another infohash")
        return tdata

    async def _adopt(self, t: Transfer, tdata: bytes) -> None:
        files = [f for f in t.files or [] if not f.get("extra")]
        extras = [f for f in t.files or [] if f.get("extra")]
        source = {"type": "torrent", "infohash": t.id, "magnet": t.target}
        await asyncio.to_thread(
            self.store.adopt,
            t.work_id,
            t.name,
            files,
            extras=extras,
            beside={TORRENT_FILE: tdata},
            license=t.license,
            source=source,
            infohash=t.id,
            magnet=magnet(tdata, name=t.name),
            seeding=True,
            web_seeds=t.web_seeds,
        )

    async def _fail(self, t: Transfer, message: str, *, remove: bool = False) -> None:
        log.error("transfer %s (%s): %s", t.id[:12], t.name or "?", message)
        t.state, t.error = "error", message
        if remove and t.id in self.session.ids():
            await self.session.remove(t.id, delete_files=True)
        elif t.id in self.session.ids():
            self.session.pause(t.id)
        self._save_state()
        if t.id in self._done:
            self._done[t.id].set()

    def get(self, tid: str) -> Transfer:
        for key, t in self.transfers.items():
            if same_id(key, tid):
                return t
        raise NotFound(f"no transfer {tid}", hint="`silnode transfers` lists them")

    def describe(self, tid: str) -> dict[str, Any]:
        """One row as `transfers` lists it (seeds included); ``tid`` may be an 8+ hex-digit prefix."""
        for row in self.list():
            if same_id(row["id"], tid):
                return row
        return self.get(tid).public(None)  # a finished download, or NotFound

    def pause(self, tid: str) -> Transfer:
        t = self.get(tid)
        if t.state not in ACTIVE:
            raise Conflict(f"transfer {t.id[:12]} is {t.state}; only running transfers can be paused")
        self.session.pause(t.id)
        t.state, t.paused_by_user = "paused", True
        self._save_state()
        return t

    def resume(self, tid: str) -> Transfer:
        t = self.get(tid)
        if t.state not in ("paused", "error"):
            raise Conflict(f"transfer {t.id[:12]} is {t.state}; nothing to resume")
        if t.id not in self.session.ids():
            raise Conflict(f"transfer {t.id[:12]} was removed after its error; start it again with `silnode get`")
        t.paused_by_user, t.error = False, None
        t.state = "downloading" if t.files else "metadata"
        self.session.resume(t.id)
        self._save_state()
        return t

    async def cancel(self, tid: str) -> Transfer:
        t = self.get(tid)
        if t.state == "done":
            raise Conflict(f"transfer {t.id[:12]} is done; remove the model with `silnode rm {t.name}`")
        if t.id in self.session.ids():
            await self.session.remove(t.id, delete_files=True)
        shutil.rmtree(self.store.partial_dir / t.work_id, ignore_errors=True)
        self.store.release_partial(t.work_id)
        self._drop_resume(t.id)
        self.transfers.pop(t.id, None)
        t.state = "cancelled"
        self._save_state()
        if t.id in self._done:
            self._done[t.id].set()
        return t

    async def wait(self, tid: str) -> Transfer:
        t = self.get(tid)
        await self._done.setdefault(t.id, asyncio.Event()).wait()
        return t

    def list(self) -> list[dict[str, Any]]:
        out = []
        ids = set(self.session.ids()) if self.engine.running else set()
        for t in self.transfers.values():
            if t.state == "done":
                continue  # a finished download is listed as the seed it became (GET /transfers/ID still finds it)
            out.append(t.public(self.session.status(t.id) if t.id in ids else None))
        for tid, name in self.seeds.items():
            st = self.session.status(tid) if tid in ids else None
            seed = Transfer(
                id=tid, kind="seed", name=name, target="", state="seeding" if st and not st.paused else "paused"
            )
            out.append(seed.public(st))
        return out

    def summary(self) -> dict[str, Any]:
        statuses = self.session.all_status() if self.engine.running else []
        return {
            "listen_port": self.session.listen_port() if self.engine.running else None,
            "downloads": sum(1 for t in self.transfers.values() if t.state in ACTIVE),
            "seeding": len(self.seeds),
            "peers": sum(s.num_peers for s in statuses),
            "download_rate": sum(s.download_rate for s in statuses),
            "upload_rate": sum(s.upload_rate for s in statuses),
            "dht_nodes": self._dht_nodes,
            "dht_enabled": bool(self.engine.running and self.session.settings.get("enable_dht")),
        }

    # ================================================================== events & persistence
    async def _event_loop(self) -> None:

        while True:
            e = await self._events.get()
            t = self.transfers.get(getattr(e, "id", ""), None)
            try:
                if isinstance(e, ev.SessionStats):
                    self._dht_nodes = int(e.counters.get("dht.dht_nodes", 0))
                elif isinstance(e, ev.TorrentChecked) and e.id in self.seeds:
                    await self._after_seed_check(e.id)
                elif isinstance(e, ev.SeedLimitReached) and e.id in self.seeds:
                    log.info("%s: %s; paused", self.seeds[e.id], e.reason)
                    await self._save_seed_stats()  # the next start sees the limit reached and keeps it paused
                elif t is None:
                    continue
                elif isinstance(e, ev.MetadataReceived) and t.files is None and t.state == "metadata":
                    self._spawn(self._guarded(t, "reading the metadata", self._on_metadata(t)))
                elif isinstance(e, ev.TorrentFinished) and t.state == "downloading":
                    self._spawn(self._on_finished(t))
                elif isinstance(e, ev.StorageError):
                    await self._fail(t, e.message)
                elif isinstance(e, ev.TorrentFailed) and t.id in self._recovering:
                    continue  # about the torrent object being replaced
                elif isinstance(e, ev.TorrentFailed) and e.hashes_disagree and t.state == "downloading":
                    self._recovering.add(t.id)  # now, so a second alert of the same torrent starts nothing
                    self._spawn(self._guarded(t, "recovering from a hostile peer", self._recover(t, e.error)))
                elif isinstance(e, ev.TorrentFailed):
                    await self._fail(t, f"torrent error: {e.error}")
                elif isinstance(e, ev.MetadataFailed):
                    await self._fail(t, f"bad metadata from peers: {e.error}")
                elif isinstance(e, ev.HashFailed):
                    t.hash_failures += 1
                elif isinstance(e, ev.PeerBanned):
                    if e.peer not in t.banned_peers:  # libtorrent reports a ban once per connection
                        t.banned_peers.append(e.peer)
                    log.warning("banned peer %s on %s (sent data that failed hash checks)", e.peer, t.id[:12])
                elif isinstance(e, ev.ResumeDataSaved) and t.state in ("downloading", "paused", "metadata"):
                    await asyncio.to_thread(self._write_resume, t.id, e.data)
            except Exception:  # one bad event must not stop the pipeline
                log.exception("while handling %r", e)

    async def _after_seed_check(self, tid: str) -> None:
        """A recheck (verify or the periodic light one) found pieces of a seeded model bad: stop seeding it
        and mark it damaged, so nobody is served data that fails its hashes and `silnode verify` says why."""
        st = self.session.status(tid)
        if st.progress >= 1.0:
            if tid in self._rechecking:  # the changed files hash right: remember them as they are now
                self._rechecking.discard(tid)
                name = self.seeds[tid]
                mdir = self.store.model_dir(name)
                m = await asyncio.to_thread(self.store.read_manifest, name)
                stats = await asyncio.to_thread(file_stats, mdir, m.files)
                await asyncio.to_thread(self.store.update_manifest, name, file_stats=stats)
            return
        self._rechecking.discard(tid)
        name = self.seeds.pop(tid)
        await self.session.remove(tid)
        missing = round((1 - st.progress) * 100, 1)
        problem = f"libtorrent recheck: {missing}% of the pieces are bad or missing"
        log.error("%s: %s; stopped seeding it", name, problem)
        await asyncio.to_thread(self.store.update_manifest, name, state="damaged", problems=[problem])

    async def _recover(self, t: Transfer, why: str) -> None:
        """libtorrent stopped a hybrid download for good with "v1 and v2 hashes do not describe the same data":
        while the v2 piece layer is unknown (a magnet or bare infohash), the SHA-256 block hashes of a piece a
        hostile peer sent (it failed SHA-1) stayed in the file's merkle tree, a good piece completing the same
        subtree then failed SHA-256, and libtorrent dropped every piece and paused. Clearing the error or a
        recheck replays it (the tree is kept); a fresh torrent object has a fresh tree. So: remove the torrent
        (its files stay), add it again from the info dict we now have, without the resume data (which records
        that tree): libtorrent checks the files on disk and keeps every piece that passes SHA-1 (a failed one
        adds nothing to the new tree), the peers it banned stay banned, the others are dialled again, and
        the download goes on. At most MAX_RECOVERIES times per transfer; then it ends in error."""
        try:
            if t.id not in self.session.ids():
                return
            if t.recovered >= MAX_RECOVERIES:
                return await self._fail(
                    t,
                    f"torrent error: {why}; the download was restarted {t.recovered} times after it and peers "
                    f"keep sending data that fails the hash checks (banned: {', '.join(t.banned_peers) or 'none'})",
                )
            data = self.session.torrent_bytes(t.id)
            if data is None:  # pragma: no cover - a download leaves "metadata" only once the info dict is in
                return await self._fail(t, f"torrent error: {why}")
            t.recovered += 1
            log.warning(
                "transfer %s (%s): %s; restarting it from the pieces on disk (%d of %d), banned: %s",
                t.id[:12],
                t.name or "?",
                why,
                t.recovered,
                MAX_RECOVERIES,
                ", ".join(dict.fromkeys(t.banned_peers)) or "none",
            )
            await self.session.remove(t.id)  # the files stay where they are
            self._drop_resume(t.id)
            self._save_state()  # killed now: the restart adds it from the magnet and checks the files
            hints = [f"{h}:{p}" for h, p in parse_target(t.target)["peers"]] if t.target else []
            explicit = list(dict.fromkeys([*t.peers, *hints]))
            banned = list(dict.fromkeys(t.banned_peers))
            if explicit and all(p in banned for p in explicit):
                # before the piece layer is known libtorrent cannot tell which peer sent the bad block and
                # bans honest peers beside the hostile one (measured: README "A hostile peer"); with every
                # explicit peer banned the transfer could reach nobody: dial them all again (bounded above)
                log.warning("transfer %s: every explicit peer was banned; dialling them again", t.id[:12])
                banned = [b for b in banned if b not in explicit]
            await self.session.add_download(data, self.store.partial_dir / t.work_id, peers=explicit, banned=banned)
            self._add_web_seeds(t)
            self.session.announce(t.id)
        finally:
            self._recovering.discard(t.id)

    async def _guarded(self, t: Transfer, step: str, coro: Any) -> None:
        """Run one pipeline step; whatever it raises ends this transfer in ``error`` naming the step, never the
        task silently (the daemon and the other transfers go on)."""
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not isinstance(exc, SilnodeError):
                log.exception("transfer %s: %s failed", t.id[:12], step)
            try:
                await self._fail(t, f"{step} failed: {exc}")
            except Exception:  # the session may be the thing that broke: still record the error
                log.exception("transfer %s: cannot pause it after the error", t.id[:12])
                t.state, t.error = "error", f"{step} failed: {exc}"
                self._save_state()
                if t.id in self._done:
                    self._done[t.id].set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tick(self) -> None:
        """Once a second: resume data (every network.resume_save_interval), session stats, web-seed caps,
        and a light recheck of one seeded model per network.recheck_interval."""
        last_resume = last_recheck = time.monotonic()
        seed_cycle = 0
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            try:
                if now - last_resume >= self.config.network.resume_save_interval:
                    last_resume = now
                    await self._save_all_resume()
                    await self._save_seed_stats()
                self._dht_nodes = int((await self.session.stats(timeout=5)).get("dht.dht_nodes", 0))
                self._cap_web_seeds()
                self._look_for_peers(now)
                self._finish_missed()
                interval = self.config.network.recheck_interval
                if interval and now - last_recheck >= interval and self.seeds:
                    last_recheck = now
                    self.session.force_recheck(list(self.seeds)[seed_cycle % len(self.seeds)])
                    seed_cycle += 1
            except asyncio.CancelledError:
                raise
            except Exception:  # the ticker must survive anything one round does
                log.exception("transfer ticker")

    async def _save_all_resume(self) -> None:
        for t in list(self.transfers.values()):
            if t.state in ("downloading", "paused") and t.id in self.session.ids():
                try:
                    await self.session.save_resume(t.id, timeout=10)  # written by the ResumeDataSaved handler
                except SilnodeError as exc:
                    log.debug("resume data for %s: %s", t.id[:12], exc)

    def _finish_missed(self) -> None:
        """A download resumed with every piece recorded (the node was killed during the hand-off) is complete
        the moment it is added, and libtorrent reports no finish for it: hand it over now."""
        ids = set(self.session.ids())
        for t in list(self.transfers.values()):
            if t.state == "downloading" and t.id in ids:
                st = self.session.status(t.id)
                complete = st.is_finished and 0 < st.total_wanted <= st.total_done
                if st.released and complete and self.session.files_ready(t.id):
                    self._spawn(self._on_finished(t))

    def _look_for_peers(self, now: float) -> None:
        """A transfer with no peer redials its explicit peers (``--peer``, the magnet's x.pe) and asks the DHT
        again, each with its own backoff (README "Finding peers"): an explicit peer is often the only way to
        the data (a plain client with no DHT and no tracker hangs up on a peer that wants nothing while the
        metadata is held, and nothing else would dial it again), and the public DHT is not asked every few
        seconds for hours. The backoff restarts once the transfer has peers again."""
        ids = set(self.session.ids())
        for t in self.transfers.values():
            if t.state not in ("metadata", "downloading") or t.id not in ids:
                self._backoff.pop(t.id, None)
                continue
            if self.session.status(t.id).num_peers > 0:
                self._backoff.pop(t.id, None)
                continue
            b = self._backoff.setdefault(t.id, _Backoff(now))
            if now >= b.next_dial:
                self.session.redial(t.id)
                b.next_dial, b.dial_delay = now + b.dial_delay, min(b.dial_delay * 2, DIAL_BACKOFF_MAX)
            if now >= b.next_announce:
                self.session.announce(t.id)
                b.next_announce = now + b.announce_delay
                b.announce_delay = min(b.announce_delay * 2, ANNOUNCE_BACKOFF_MAX)
        # a model just seeded: tell the DHT again a few times (an announce made before the routing table
        # settled is lost), 5 s doubling, for its first two minutes
        for tid, (until, at, delay) in list(self._fresh.items()):
            if until <= now or tid not in ids:
                del self._fresh[tid]
            elif now >= at:
                self.session.announce(tid)
                self._fresh[tid] = (until, now + delay, min(delay * 2, ANNOUNCE_BACKOFF_MAX))

    def _cap_web_seeds(self) -> None:
        cap = self.config.network.web_seed_max_seeds
        if not cap:
            return
        for t in self.transfers.values():
            if t.web_seeds and t.state == "downloading" and t.id in self.session.ids():
                if self.session.status(t.id).num_seeds >= cap:
                    for url in self._routed(t):  # the gate's routing is deterministic: the URLs added
                        self.session.remove_web_seed(t.id, url)
                    log.info("%s: %d peers seed it, dropped the HTTP origin", t.id[:12], cap)
                    t.web_seeds = []

    def _write_resume(self, tid: str, data: bytes) -> None:
        atomic_write_bytes(self._resume_dir / f"{tid}.resume", data, mode=0o600)

    def _drop_resume(self, tid: str) -> None:
        (self._resume_dir / f"{tid}.resume").unlink(missing_ok=True)

    def _save_state(self) -> None:
        records = [asdict(t) for t in self.transfers.values() if t.state not in ("done", "cancelled")]
        atomic_write_json(self._state_file, {"version": 1, "transfers": records}, mode=0o600)

    def _handed_over(self, t: Transfer) -> bool:
        """Settle a hand-off a crash interrupted (README "Crash-safe hand-off"). True when the model is already
        in the store: the transfer is done and its leftovers go. Otherwise files that were on their way into
        the store (``partial/<id>.adopt``) go back to the transfer's directory, which then resumes."""
        work = self.store.partial_dir / t.work_id
        staged = self.store.partial_dir / f"{t.work_id}.adopt"
        if t.name and self._name_of_infohash(t.id) == t.name:
            log.info("transfer %s: %s is already in the store (the node stopped after the hand-off)", t.id[:12], t.name)
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(staged, ignore_errors=True)
            self._drop_resume(t.id)
            return True
        if staged.is_dir():
            work.mkdir(parents=True, exist_ok=True)
            for f in t.files or []:
                if (staged / f["path"]).is_file() and not (work / f["path"]).exists():
                    os.rename(staged / f["path"], work / f["path"])
            shutil.rmtree(staged, ignore_errors=True)
        return False

    async def _restore_downloads(self) -> None:
        try:
            data = json.loads(self._state_file.read_text())
            records = data.get("transfers", [])
        except FileNotFoundError:
            return
        except (OSError, ValueError, AttributeError) as exc:
            log.error("cannot read %s (%s); unfinished downloads were not resumed", self._state_file, exc)
            return
        for rec in records:
            try:
                t = Transfer(**rec)
            except TypeError:
                log.warning("skipping an unreadable transfer record: %r", rec)
                continue
            if t.state in ("done", "cancelled"):
                continue
            if await asyncio.to_thread(self._handed_over, t):
                continue
            resume_file = self._resume_dir / f"{t.id}.resume"
            resume = resume_file.read_bytes() if resume_file.is_file() else None
            work = self.store.register_partial(t.work_id)
            work.mkdir(parents=True, exist_ok=True)
            self.transfers[t.id] = t
            self._done[t.id] = asyncio.Event()
            try:
                # the magnet rides along with the resume data: its x.pe hints are redialled
                await self.session.add_download(t.target, work, peers=t.peers, resume_data=resume, hold=t.files is None)
            except SilnodeError as exc:
                if resume is None:
                    await self._fail(t, f"cannot resume: {exc}")
                    continue
                log.warning("resume data for %s unusable (%s); starting from the magnet", t.id[:12], exc)
                await self.session.add_download(t.target, work, peers=t.peers, hold=t.files is None)
            self._add_web_seeds(t)
            if t.state == "paused" and t.paused_by_user:
                self.session.pause(t.id)
            elif t.state == "error":
                self.session.pause(t.id)
            elif t.files is not None:
                t.state = "downloading"
                self.session.release(t.id)
            log.info("resumed transfer %s (%s)", t.id[:12], t.name or "?")


__all__ = ["DistributionService"]
