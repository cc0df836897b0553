"""TorrentSession: the one owner of a libtorrent session, bridged to asyncio.

Threads
-------
* libtorrent runs its own network and disk threads. Its session/handle methods are thread-safe: the
  *asynchronous* ones (``pause``, ``resume``, ``connect_peer``, ``force_recheck``, ``save_resume_data``,
  ``rename_file``, ``prioritize_files``, ``post_session_stats``, ...) only post a message to the network
  thread; the *synchronous* getters (``status()``, ``torrent_file()``, ``info_hashes()``) post and wait for
  the answer, which takes microseconds unless the network thread is stuck. Both are fine on the event loop.
* ``add_torrent`` parses and sets up the torrent synchronously; with a big .torrent, or many of them, it is
  not free, so ``add_seed`` / ``add_download`` run it in a worker thread. File checking (a full recheck
  hashes every byte) always happens on libtorrent's disk threads; we only get :class:`TorrentChecked`.
  Destroying the session (it joins libtorrent's threads) also runs in a worker thread.
* ONE pump thread (:mod:`silnode.torrent.alerts`) turns alerts into frozen events and hands them to the
  loop, where :meth:`_dispatch` does the bookkeeping, resolves internal waiters and feeds subscriber queues.

Methods marked *sync* below are safe to call from the loop; ``async`` ones wait for libtorrent's answer.

Layout on disk: see :mod:`silnode.torrent.layout` (files flat at ``<save_path>/<file>``).

``hold=True`` fetches the metadata but no data until :meth:`release` (a caller checks the ``silnode`` key
and the free disk space first): every file priority is 0 (``default_dont_download`` for a magnet).
libtorrent calls a torrent with nothing wanted "finished"; that finish is not reported (the pump only
reports a finish with data wanted). Releasing redials the hinted peers, which libtorrent dropped when it
considered itself finished.

Torrents are not auto-managed: libtorrent's queue would stop seeding beyond ``active_seeds`` (5) models and
undo our pauses. ``network.seed_ratio_limit`` / ``seed_time_limit`` are enforced here instead (a periodic
check pauses the torrent and reports :class:`SeedLimitReached`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from silnode.config import NetworkConfig
from silnode.errors import BadTorrent, TorrentError
from silnode.torrent._lt import libtorrent
from silnode.torrent.alerts import AlertPump
from silnode.torrent.create import download_params, infohashes, load_torrent_info, parse_peer
from silnode.torrent.events import (
    DeleteFailed,
    Event,
    FileRenamed,
    FileRenameFailed,
    FilesDeleted,
    ListenFailed,
    ListenSucceeded,
    MetadataReceived,
    ResumeDataFailed,
    ResumeDataSaved,
    SeedLimitReached,
    SessionStats,
    TorrentEvent,
    TorrentFailed,
    TorrentFinished,
    TorrentRemoved,
)
from silnode.torrent.layout import file_entries, flat_names, flat_renames, remove_empty_torrent_dir, wanted_priorities
from silnode.torrent.settings import lan_ip_filter, session_settings
from silnode.torrent.status import TorrentStatus, status_from

log = logging.getLogger(__name__)

STOP_RESUME_TIMEOUT = 10.0  # seconds stop() waits for the resume data of all torrents
SEED_CHECK_INTERVAL = 5.0  # seconds between seed ratio/time limit checks (only when a limit is set)


@dataclass
class _Torrent:
    """What the loop side knows about one torrent (owned by the loop; the pump only reads ``_alias``)."""

    id: str
    handle: Any
    save_path: str
    v1: str | None = None
    v2: str | None = None
    hold: bool = False
    released: bool = False
    prepared: bool = False  # files renamed to the flat layout (always True once metadata is handled)
    torrent_bytes: bytes | None = None  # the .torrent we were given, if any
    peers: list[tuple[str, int]] = field(default_factory=list)  # peer hints, redialled on release
    finish_pending: bool = False  # finished before the files were renamed: reported once they are
    prepare_task: asyncio.Task | None = field(default=None, repr=False)


class TorrentSession:
    """One libtorrent session. Use ``await start()`` on the loop that will consume its events, ``await stop()``.

    ``extra_settings`` override :func:`session_settings` (tests: e.g. an upload limit on one node).
    """

    def __init__(
        self, net: NetworkConfig, *, private: bool = False, extra_settings: Mapping[str, Any] | None = None
    ) -> None:
        self.net = net
        self.private = private
        self.settings = {**session_settings(net, private=private), **(extra_settings or {})}
        self._ses: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pump: AlertPump | None = None
        self._torrents: dict[str, _Torrent] = {}  # canonical id -> record
        self._alias: dict[str, str] = {}  # v1/v2 hex -> canonical id (read by the pump thread)
        self._errored: dict[str, str] = {}  # id -> storage error message; paused until resumed (pump adds)
        self._waiters: list[tuple[Callable[[Event], bool], asyncio.Future]] = []
        self._subscribers: list[asyncio.Queue] = []
        self._limits = (net.upload_rate_limit, net.download_rate_limit)
        self._seed_task: asyncio.Task | None = None
        self._closing = False

    # ================================================================================================ lifecycle
    @property
    def running(self) -> bool:
        return self._ses is not None and not self._closing

    async def start(self, *, listen_timeout: float = 10.0) -> None:
        """Create the session, start the pump, and wait until the listen socket is up.

        Raises:
            TorrentError: libtorrent refused the settings, or it could not listen (address in use, ...).
        """
        if self._ses is not None:
            raise TorrentError("torrent session already started")
        lt = libtorrent()
        self._loop = asyncio.get_running_loop()
        listened = self.expect(lambda e: isinstance(e, (ListenSucceeded, ListenFailed)))
        try:
            self._ses = await asyncio.to_thread(lt.session, self.settings)
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            listened.cancel()
            raise TorrentError(f"libtorrent refused the session settings: {exc}") from exc
        if self.net.lan_only:
            self._ses.set_ip_filter(lan_ip_filter())
        self._closing = False
        self._pump = AlertPump(self._ses, self._loop, self._dispatch, alias=self._alias, errored=self._errored)
        self._pump.start()
        try:
            ev = await asyncio.wait_for(listened, listen_timeout)
        except asyncio.TimeoutError:
            ev = None
        if not isinstance(ev, ListenSucceeded):
            why = ev.error if isinstance(ev, ListenFailed) else "no answer from libtorrent"
            where = self.settings["listen_interfaces"]
            await self.stop()
            raise TorrentError(
                f"BitTorrent cannot listen on {where}: {why}",
                hint="check network.listen_address (an address of this host, or 0.0.0.0) and network.listen_port",
            )
        if self.net.seed_ratio_limit > 0 or self.net.seed_time_limit > 0:
            self._seed_task = asyncio.create_task(self._seed_limit_loop(), name="silnode-seed-limits")

    async def stop(self, *, resume_timeout: float = STOP_RESUME_TIMEOUT, save_resume: bool = True) -> dict[str, bytes]:
        """Save resume data of every torrent (waiting up to ``resume_timeout``; not with ``save_resume=False``),
        pause, destroy the session.

        Returns ``{id: resume data}`` for the torrents whose data arrived (they are also delivered as
        :class:`ResumeDataSaved` events). Idempotent.
        """
        if self._ses is None:
            return {}
        self._closing = True
        for task in [self._seed_task, *(r.prepare_task for r in self._torrents.values())]:
            if task is not None and not task.done():
                task.cancel()
        self._seed_task = None
        out: dict[str, bytes] = {}
        if save_resume and self._pump is not None and self._pump.alive:
            out = await self._save_many(list(self._torrents.values()), resume_timeout)
        ses, self._ses = self._ses, None
        try:
            ses.pause()
        except RuntimeError:  # pragma: no cover
            pass
        if self._pump is not None:
            await self._pump.stop()
            self._pump = None
        box = [ses]
        del ses
        # the destructor joins libtorrent's threads: let it run off the loop (box.clear drops the last ref)
        await asyncio.to_thread(box.clear)
        for _, fut in self._waiters:
            fut.cancel()
        self._waiters.clear()
        self._torrents.clear()
        self._alias.clear()
        self._errored.clear()
        return out

    async def __aenter__(self) -> TorrentSession:  # noqa: PYI034 (Self needs Python 3.11)
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ================================================================================================ events
    def subscribe(self) -> asyncio.Queue:
        """A queue that receives every event from now on (unbounded: consume it or :meth:`unsubscribe`)."""
        q: asyncio.Queue = asyncio.Queue()
        self._subscribers.append(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        if q in self._subscribers:
            self._subscribers.remove(q)

    def expect(self, predicate: Callable[[Event], bool]) -> asyncio.Future:
        """A future resolved with the first event matching ``predicate`` from now on. Register it BEFORE the
        call that triggers the event; cancel it if you stop caring."""
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, fut))
        return fut

    async def wait_for(self, predicate: Callable[[Event], bool], timeout: float | None = None) -> Event:
        fut = self.expect(predicate)
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            fut.cancel()

    def _dispatch(self, ev: Event) -> None:
        """On the loop, in alert order: bookkeeping, then waiters, then subscribers."""
        if isinstance(ev, TorrentEvent):
            rec = self._torrents.get(ev.id)
            if isinstance(ev, MetadataReceived) and rec is not None:
                for h in (ev.v1, ev.v2):
                    if h:
                        self._alias[h] = rec.id
                rec.v1, rec.v2 = ev.v1 or rec.v1, ev.v2 or rec.v2
                if not rec.prepared and not self._closing:
                    rec.prepare_task = asyncio.create_task(
                        self._prepare_files(rec), name=f"silnode-prepare-{rec.id[:8]}"
                    )
            elif isinstance(ev, TorrentFinished) and rec is not None and not rec.prepared:
                rec.finish_pending = True  # the files are not at their flat names yet: _prepare_files reports it
                return
            elif isinstance(ev, TorrentRemoved):
                self._forget(ev.id)
        for entry in list(self._waiters):
            pred, fut = entry
            if fut.done():
                self._waiters.remove(entry)
                continue
            try:
                hit = pred(ev)
            except Exception:  # a broken predicate must not break the pump's delivery
                log.exception("event predicate failed")
                hit = False
            if hit:
                fut.set_result(ev)
                self._waiters.remove(entry)
        for q in self._subscribers:
            q.put_nowait(ev)

    def _forget(self, id_: str) -> None:
        rec = self._torrents.pop(id_, None)
        for k in [k for k, v in self._alias.items() if v == id_]:
            del self._alias[k]
        self._errored.pop(id_, None)
        if rec is not None and rec.prepare_task is not None:
            rec.prepare_task.cancel()

    # ================================================================================================ adding
    def _need(self) -> Any:
        if self._ses is None or self._closing:
            raise TorrentError("the torrent session is not running")
        return self._ses

    def _base_flags(self) -> Any:
        # not paused, not auto-managed (see the module docstring); a duplicate add is an error
        tf = libtorrent().torrent_flags
        return tf.apply_ip_filter | tf.duplicate_is_error

    def _claim(self, v1: str | None, v2: str | None) -> str:
        """Reserve the id (before add_torrent, so the pump can name the torrent's very first alerts)."""
        for h in (v1, v2):
            if h and h in self._alias:
                raise TorrentError(f"torrent {self._alias[h]} is already in the session")
        id_ = v1 or v2
        if not id_:
            raise BadTorrent("the torrent has no infohash")
        for h in (v1, v2):
            if h:
                self._alias[h] = id_
        return id_

    async def _add(self, atp: Any, rec: _Torrent) -> str:
        ses = self._need()
        self._torrents[rec.id] = rec
        try:
            rec.handle = await asyncio.to_thread(ses.add_torrent, atp)
        except (RuntimeError, ValueError, TypeError) as exc:
            self._forget(rec.id)
            raise TorrentError(f"libtorrent could not add torrent {rec.id}: {exc}") from exc
        return rec.id

    async def add_seed(
        self,
        torrent_bytes: bytes,
        save_path: str | Path,
        *,
        seed_mode: bool = True,
        uploaded: int = 0,
        seeding_seconds: int = 0,
        paused: bool = False,
    ) -> str:
        """Seed files that lie flat in ``save_path``; returns the id (v1 hex).

        ``uploaded`` / ``seeding_seconds``: the counters of earlier runs, carried on (seed limits use them).
        ``paused``: added paused (a model that reached its seed limit).
        ``seed_mode=True`` (we just verified the SHA-256 of every file): no startup check; libtorrent still
        hashes each piece the first time a peer asks for it. ``seed_mode=False``: a full recheck first.

        Raises:
            BadTorrent: not a .torrent. TorrentError: a file is missing or has the wrong size, or the torrent
            is already in the session.
        """
        lt = libtorrent()
        self._need()
        ti = load_torrent_info(torrent_bytes)
        layout = ti.layout()
        save = Path(save_path)
        for i, fname in flat_names(layout).items():
            p = save / fname
            try:
                size = p.stat().st_size
            except OSError as exc:
                raise TorrentError(f"cannot seed: {p}: {exc.strerror or exc}") from exc
            if size != layout.file_size(i):
                raise TorrentError(f"cannot seed: {p} has {size} bytes, the torrent says {layout.file_size(i)}")
        v1, v2 = infohashes(ti)
        id_ = self._claim(v1, v2)
        atp = lt.add_torrent_params()
        atp.ti = ti
        atp.save_path = str(save)
        atp.renamed_files = flat_renames(layout)
        atp.flags = self._base_flags() | (lt.torrent_flags.seed_mode if seed_mode else 0)
        if paused:
            atp.flags |= lt.torrent_flags.paused
        # counters of earlier runs (the store keeps them): ratio and seed-time limits count the whole history
        atp.total_uploaded = int(uploaded)
        atp.seeding_time = int(seeding_seconds)
        rec = _Torrent(id_, None, str(save), v1, v2, released=True, prepared=True, torrent_bytes=bytes(torrent_bytes))
        return await self._add(atp, rec)

    async def add_download(
        self,
        target: bytes | str | None,
        save_path: str | Path,
        *,
        peers: Iterable[Any] = (),
        resume_data: bytes | None = None,
        hold: bool = False,
        preallocate: bool = True,
        banned: Iterable[Any] = (),
    ) -> str:
        """Download into ``save_path`` (files land flat: ``<save_path>/<file>``); returns the id.

        ``target``: .torrent bytes, or a magnet / 40-hex v1 / 64-hex v2 hash (its ``x.pe`` hints are
        connected too). ``peers``: extra ``(host, port)`` / ``"host:port"`` to connect to.
        ``resume_data``: bytes from :class:`ResumeDataSaved` / :meth:`stop`; the pieces it records are trusted
        without a recheck (``target`` may then be None; if given it must be the same torrent).
        ``hold``: fetch the metadata but no data until :meth:`release`.
        ``preallocate``: allocate the files in full up front (a full disk fails at once, as one clear
        :class:`StorageError`, instead of midway).
        ``banned``: ``(host, port)`` / ``"host:port"`` peers this torrent never connects to (libtorrent's
        ``banned_peers``): those a torrent removed and added again had banned for sending bad data.
        """
        lt = libtorrent()
        self._need()
        atp, v1, v2, ti, peer_list = download_params(target, resume_data, peers, self._base_flags())
        has_meta = atp.ti is not None
        if has_meta:
            layout = atp.ti.layout()
            renames = flat_renames(layout)
            if renames and resume_data is None:
                atp.renamed_files = renames  # applied before the torrent opens any file
            if hold:
                atp.file_priorities = [0] * layout.num_files()
        elif hold:
            # no metadata yet and held: want nothing once it is in (every file priority 0)
            atp.flags |= lt.torrent_flags.default_dont_download
        atp.save_path = str(save_path)
        bans = [parse_peer(p) for p in banned]
        if bans:
            atp.banned_peers = list(dict.fromkeys([*atp.banned_peers, *bans]))
        peer_list = [p for p in peer_list if p not in bans]
        if preallocate:
            atp.storage_mode = lt.storage_mode_t.storage_mode_allocate
        id_ = self._claim(v1, v2)
        resumed_meta = has_meta and resume_data is not None
        rec = _Torrent(
            id_,
            None,
            str(save_path),
            v1,
            v2,
            hold=hold,
            released=not hold,
            prepared=has_meta and not resumed_meta,
            torrent_bytes=bytes(target) if ti is not None else None,
        )
        rec.peers = list(dict.fromkeys(peer_list))
        await self._add(atp, rec)
        if resumed_meta:
            # resumed with metadata: make sure the layout is flat and, unless held, every file wanted (resume
            # data saved while held has priorities 0; renames are in the resume data: normally a no-op)
            rec.prepare_task = asyncio.create_task(self._prepare_files(rec))
        for host, port in peer_list:
            self.connect_peer(id_, host, port)
        return id_

    async def _prepare_files(self, rec: _Torrent) -> None:
        """Once the metadata is known: rename the files to the flat layout and wait until libtorrent did it,
        make every file wanted unless held, then report a finish that arrived meanwhile."""
        try:
            ti = rec.handle.torrent_file()
            if ti is None:  # pragma: no cover - called only once the metadata is known
                return
            renames = flat_renames(ti.layout())
            if renames:
                futs = [
                    self.expect(
                        lambda e, i=i: (
                            isinstance(e, (FileRenamed, FileRenameFailed)) and e.id == rec.id and e.index == i
                        )
                    )
                    for i in renames
                ]
                for i, name in renames.items():
                    rec.handle.rename_file(i, name)
                results = await asyncio.wait_for(asyncio.gather(*futs), 60)
                failed = [r for r in results if isinstance(r, FileRenameFailed)]
                if failed:
                    self._dispatch(
                        TorrentFailed(
                            rec.id, f"cannot rename {len(failed)} file(s) to the flat layout: {failed[0].error}", ""
                        )
                    )
                    return
                remove_empty_torrent_dir(rec.save_path, ti.name())
            rec.prepared = True
            if not rec.hold:
                self._release(rec, redial=False)
            if rec.finish_pending:
                rec.finish_pending = False
                st = rec.handle.status(0)
                if st.is_finished and st.total_wanted > 0:
                    self._dispatch(TorrentFinished(rec.id))
        except asyncio.CancelledError:
            raise
        except (RuntimeError, asyncio.TimeoutError) as exc:
            log.warning("preparing files of %s failed: %s", rec.id, exc)
            self._dispatch(TorrentFailed(rec.id, f"cannot prepare the files: {exc}", ""))

    def _release(self, rec: _Torrent, *, redial: bool) -> None:
        ti = rec.handle.torrent_file()
        rec.released = True
        rec.handle.prioritize_files(wanted_priorities(ti.layout()))
        if redial:
            # while nothing was wanted the torrent counted as finished and libtorrent dropped its connections to
            # seeds; it would redial them only on a later tick: dial the hinted peers now
            for peer in rec.peers:
                try:
                    rec.handle.connect_peer(peer)
                except RuntimeError:  # pragma: no cover
                    pass

    def release(self, id: str) -> None:
        """*sync*. Start downloading the data of a torrent added with ``hold=True`` (idempotent)."""
        rec = self._rec(id)
        if rec.hold:
            rec.hold = False
            if rec.prepared:
                self._release(rec, redial=True)
        # not prepared yet: _prepare_files releases it when the metadata is in

    # ================================================================================================ control
    def _rec(self, id: str) -> _Torrent:
        self._need()
        key = id.lower() if isinstance(id, str) else id
        rec = self._torrents.get(self._alias.get(key, key))
        if rec is None or rec.handle is None:
            raise TorrentError(f"no torrent {id} in the session")
        return rec

    def ids(self) -> list[str]:
        return [i for i, r in self._torrents.items() if r.handle is not None]

    def files_ready(self, id: str) -> bool:
        """*sync*. The metadata is in and the files are at their flat names (``file_paths``)."""
        return self._rec(id).prepared

    def redial(self, id: str) -> None:
        """*sync*. Dial the torrent's explicit peers again (those given to ``add_download`` and the magnet's
        ``x.pe`` hints): libtorrent forgets a peer that hung up, and without a DHT or tracker nothing else
        would find it again."""
        rec = self._rec(id)
        for peer in rec.peers:
            try:
                rec.handle.connect_peer(peer)
            except RuntimeError:  # pragma: no cover - a handle that just went away
                pass

    def connect_peer(self, id: str, host: str, port: int) -> None:
        """*sync*. Connect to a peer for this torrent (a hint; libtorrent dials it in the background)."""
        host, port = parse_peer((host, port))
        try:
            self._rec(id).handle.connect_peer((host, port))
        except RuntimeError as exc:
            raise TorrentError(f"cannot connect to {host}:{port}: {exc}") from exc

    def status(self, id: str) -> TorrentStatus:
        """*sync*. A snapshot of one torrent."""
        rec = self._rec(id)
        try:
            st = rec.handle.status()
        except RuntimeError as exc:
            raise TorrentError(f"torrent {id} is gone: {exc}") from exc
        return status_from(rec.id, st, self._errored.get(rec.id, ""), released=rec.released)

    def all_status(self) -> list[TorrentStatus]:
        out = []
        for i in self.ids():
            try:
                out.append(self.status(i))
            except TorrentError:
                pass
        return out

    def pause(self, id: str) -> None:
        """*sync*. Pause, and save resume data (it arrives as :class:`ResumeDataSaved`, for whoever persists
        it: design.md wants it saved on pause, periodically and on shutdown)."""
        lt = libtorrent()
        rec = self._rec(id)
        rec.handle.unset_flags(lt.torrent_flags.auto_managed)
        rec.handle.pause()
        rec.handle.save_resume_data(lt.torrent_handle.save_info_dict | lt.torrent_handle.flush_disk_cache)

    def resume(self, id: str) -> None:
        """*sync*. Resume; clears a storage error so the next one is reported (and pauses) again."""
        rec = self._rec(id)
        self._errored.pop(rec.id, None)
        rec.handle.clear_error()
        rec.handle.resume()

    async def remove(self, id: str, delete_files: bool = False, *, timeout: float = 30.0) -> None:
        """Remove the torrent (and its files with ``delete_files``); waits until libtorrent confirms."""
        lt = libtorrent()
        rec = self._rec(id)
        fut = self.expect(lambda e: isinstance(e, TorrentRemoved) and e.id == rec.id)
        deleted = (
            self.expect(lambda e: isinstance(e, (FilesDeleted, DeleteFailed)) and e.id == rec.id)
            if delete_files
            else None
        )
        try:
            self._ses.remove_torrent(rec.handle, lt.session.delete_files if delete_files else 0)
            await asyncio.wait_for(fut, timeout)
            if deleted is not None:
                ev = await asyncio.wait_for(deleted, timeout)
                if isinstance(ev, DeleteFailed):
                    raise TorrentError(f"torrent {rec.id} removed, but deleting its files failed: {ev.error}")
        except asyncio.TimeoutError as exc:
            raise TorrentError(f"libtorrent did not confirm removing {rec.id}") from exc
        finally:
            fut.cancel()
            if deleted is not None:
                deleted.cancel()
        self._forget(rec.id)

    def force_recheck(self, id: str) -> None:
        """*sync*. Re-hash the files on disk (the result comes as :class:`TorrentChecked`); the only way to
        notice on-disk corruption of a seeding torrent (libtorrent-notes §5)."""
        rec = self._rec(id)
        self._errored.pop(rec.id, None)
        rec.handle.clear_error()
        rec.handle.force_recheck()

    async def save_resume(self, id: str, *, timeout: float = 30.0) -> bytes:
        """Resume data now (bencoded bytes, metadata included); also delivered as :class:`ResumeDataSaved`."""
        lt = libtorrent()
        rec = self._rec(id)
        fut = self.expect(lambda e: isinstance(e, (ResumeDataSaved, ResumeDataFailed)) and e.id == rec.id)
        rec.handle.save_resume_data(lt.torrent_handle.save_info_dict | lt.torrent_handle.flush_disk_cache)
        try:
            ev = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError as exc:
            raise TorrentError(f"no resume data for {rec.id} within {timeout:.0f} s") from exc
        if isinstance(ev, ResumeDataFailed):
            raise TorrentError(f"saving resume data of {rec.id} failed: {ev.error}")
        return ev.data

    async def save_all_resume(
        self, *, only_if_modified: bool = True, timeout: float = STOP_RESUME_TIMEOUT
    ) -> dict[str, bytes]:
        """Resume data of every torrent (only those libtorrent says changed since the last save, by default):
        what a periodic save calls. ``{id: data}``; each also arrives as :class:`ResumeDataSaved`."""
        self._need()
        records = list(self._torrents.values())
        if only_if_modified:
            records = [r for r in records if r.handle is not None and r.handle.need_save_resume_data()]
        return await self._save_many(records, timeout)

    async def _save_many(self, records: list[_Torrent], timeout: float) -> dict[str, bytes]:
        lt = libtorrent()
        futs: dict[str, asyncio.Future] = {}
        for rec in records:
            if rec.handle is None:
                continue
            futs[rec.id] = self.expect(
                lambda e, i=rec.id: isinstance(e, (ResumeDataSaved, ResumeDataFailed)) and e.id == i
            )
            try:
                rec.handle.save_resume_data(lt.torrent_handle.save_info_dict | lt.torrent_handle.flush_disk_cache)
            except RuntimeError:  # the handle is already invalid
                futs.pop(rec.id).cancel()
        if not futs:
            return {}
        done, pending = await asyncio.wait(futs.values(), timeout=timeout)
        for p in pending:
            p.cancel()
        if pending:
            log.warning("resume data of %d torrent(s) did not arrive in %.0f s", len(pending), timeout)
        return {i: f.result().data for i, f in futs.items() if f in done and isinstance(f.result(), ResumeDataSaved)}

    def torrent_bytes(self, id: str) -> bytes | None:
        """*sync*. The .torrent given to ``add_*``, else (magnet) ``d4:info<info dict>e`` once the metadata is
        known — the exact info dict received, so both infohashes and the ``silnode`` key check out. (v2
        piece layers are not included; libtorrent fetches them from peers.) None before the metadata."""
        rec = self._rec(id)
        if rec.torrent_bytes is not None:
            return rec.torrent_bytes
        ti = rec.handle.torrent_file()
        if ti is None:
            return None
        return b"d4:info" + bytes(ti.info_section()) + b"e"

    def file_paths(self, id: str) -> list[Path]:
        """*sync*. Where the torrent's real files are (or will be) on disk; [] before the metadata."""
        rec = self._rec(id)
        ti = rec.handle.torrent_file()
        if ti is None:
            return []
        return [Path(rec.save_path) / name for name in flat_names(ti.layout()).values()]

    def files(self, id: str) -> list[tuple[str, int]]:
        """*sync*. ``(local file name, size)`` of every real file, from the metadata; [] before it."""
        ti = self._rec(id).handle.torrent_file()
        return [] if ti is None else file_entries(ti.layout())

    def set_limits(self, *, upload: int | None = None, download: int | None = None) -> None:
        """*sync*. Session-wide rates in bytes/s (0 = unlimited; None = leave as is). A limit also holds for
        LAN peers (see :mod:`silnode.torrent.settings`)."""
        up, down = self._limits
        up = up if upload is None else int(upload)
        down = down if download is None else int(download)
        if up < 0 or down < 0:
            raise BadTorrent("rate limits must be >= 0")
        self._limits = (up, down)
        self._need().apply_settings(
            {"upload_rate_limit": up, "download_rate_limit": down, "ignore_limits_on_local_network": not (up or down)}
        )

    def listen_port(self) -> int:
        """*sync*. The TCP port libtorrent listens on (the real one when network.listen_port is 0)."""
        return int(self._need().listen_port())

    async def stats(self, *, timeout: float = 10.0) -> Mapping[str, int]:
        """The session counters by name (``post_session_stats``)."""
        fut = self.expect(lambda e: isinstance(e, SessionStats))
        self._need().post_session_stats()
        try:
            ev = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError as exc:
            raise TorrentError("libtorrent did not post its session stats") from exc
        return ev.counters

    async def dht_nodes(self) -> int:
        """Nodes in the DHT routing table (counter ``dht.dht_nodes``); 0 with the DHT off."""
        return int((await self.stats()).get("dht.dht_nodes", 0))

    def announce(self, id: str) -> None:
        """*sync*. Announce the torrent to the DHT now instead of at the next periodic announce."""
        if self.settings.get("enable_dht"):
            self._rec(id).handle.force_dht_announce()

    def add_dht_node(self, host: str, port: int) -> None:
        """*sync*. Tell the DHT about a node (private DHTs: tests, LAN)."""
        host, port = parse_peer((host, port))
        self._need().add_dht_node((host, port))

    def add_web_seed(self, id: str, url: str) -> None:
        """*sync*. Add an HTTP origin (BEP 19). For a single-file torrent the URL is the file's URL; for a
        multi-file one it is the directory URL ending in '/' (libtorrent appends ``<dir>/<file>``)."""
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            raise BadTorrent(f"a web seed must be an http(s) URL, got {str(url)[:80]!r}")
        self._rec(id).handle.add_url_seed(url)

    def remove_web_seed(self, id: str, url: str) -> None:
        """*sync*. Stop using an HTTP origin (e.g. once enough peers seed the model)."""
        self._rec(id).handle.remove_url_seed(url)

    def web_seeds(self, id: str) -> list[str]:
        """*sync*. The HTTP origins this torrent uses."""
        return sorted(self._rec(id).handle.url_seeds())

    # --------------------------------------------------------------------------------------------- DHT hooks
    def dht_put_immutable(self, value: Any) -> str:
        """*sync*. Store a bencodable value in the DHT; returns its target (hex). Result: :class:`DhtPut`."""
        return str(self._need().dht_put_immutable_item(value))

    def dht_get_immutable(self, target_hex: str) -> None:
        """*sync*. Ask the DHT for an immutable item; the answer comes as :class:`DhtItem`."""
        lt = libtorrent()
        self._need().dht_get_immutable_item(lt.sha1_hash(bytes.fromhex(target_hex)))

    def dht_get_mutable(self, public_key: bytes, salt: bytes = b"") -> None:
        """*sync*. Ask the DHT for a BEP 44 mutable item; answers come as :class:`DhtItem` events."""
        self._need().dht_get_mutable_item(public_key, salt)

    def dht_put_mutable(self, expanded_secret: bytes, public_key: bytes, data: bytes, salt: bytes = b"") -> None:
        """*sync*. BEP 44 put; needs the 64-byte *expanded* ed25519 secret (libtorrent-notes §6a)."""
        if len(expanded_secret) != 64:
            raise BadTorrent("dht_put_mutable needs the 64-byte expanded ed25519 secret")
        self._need().dht_put_mutable_item(expanded_secret, public_key, data, salt)

    # --------------------------------------------------------------------------------------------- seed limits
    async def _seed_limit_loop(self) -> None:
        # ratio = bytes uploaded / torrent size: a seed that never downloaded has no upload/download ratio
        ratio, seconds = self.net.seed_ratio_limit, self.net.seed_time_limit
        while True:
            await asyncio.sleep(SEED_CHECK_INTERVAL)
            for st in self.all_status():
                if not st.is_seeding or st.paused:
                    continue
                reason = None
                if ratio > 0 and st.total_size and st.all_time_upload / st.total_size >= ratio:
                    reason = f"seed ratio {st.all_time_upload / st.total_size:.2f} reached the limit {ratio:g}"
                elif seconds > 0 and st.seeding_seconds >= seconds:
                    reason = f"seeded for {st.seeding_seconds} s, the limit is {seconds} s"
                if reason:
                    try:
                        self.pause(st.id)
                    except TorrentError:
                        continue
                    self._dispatch(SeedLimitReached(st.id, reason))


__all__ = ["TorrentSession", "TorrentStatus"]
