"""The alert pump: the one thread that reads libtorrent's alerts and turns them into plain events.

ONE thread (``silnode-torrent-alerts``) waits for alerts (``wait_for_alert`` + ``pop_alerts``) and converts
each alert it cares about into a frozen event (:mod:`silnode.torrent.events`) *before* the next pop (alerts
die at the next pop), then hands it to the loop with ``loop.call_soon_threadsafe``. The pump itself only makes
posting libtorrent calls (``pause`` on a torrent's first storage error, so libtorrent stops retrying at once;
``flush_cache`` when a torrent finishes, see :class:`TorrentFinished`) and cheap getters (``info_hashes()`` to
map a handle to its id, ``status(0)``).

The session owns the two maps the pump shares with the loop: ``alias`` (v1/v2 hex -> torrent id, written by
the loop, read here) and ``errored`` (id -> storage error message, added here, cleared by the loop on resume).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from silnode.torrent._lt import libtorrent
from silnode.torrent.create import ih_hexes
from silnode.torrent.events import (
    DeleteFailed,
    DhtItem,
    DhtPut,
    Event,
    FileRenamed,
    FileRenameFailed,
    FilesDeleted,
    HashFailed,
    ListenFailed,
    ListenSucceeded,
    MetadataFailed,
    MetadataReceived,
    PeerBanned,
    PeerBlocked,
    PerformanceWarning,
    ResumeDataFailed,
    ResumeDataSaved,
    SessionStats,
    StateChanged,
    StorageError,
    TorrentAdded,
    TorrentChecked,
    TorrentFailed,
    TorrentFinished,
    TorrentPaused,
    TorrentRemoved,
    TorrentResumed,
)

log = logging.getLogger(__name__)

PUMP_WAIT_MS = 250  # how long one wait_for_alert blocks; stop() wakes it early with post_session_stats
ENOSPC = 28


def _hex(h: Any) -> str:
    return str(h)


class AlertPump:
    """Reads ``ses``'s alerts on its own thread and delivers events on ``loop`` through ``deliver``."""

    def __init__(
        self,
        ses: Any,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[Event], None],
        *,
        alias: dict[str, str],
        errored: dict[str, str],
    ) -> None:
        self._ses, self._loop, self._deliver = ses, loop, deliver
        self._alias = alias
        self._errored = errored
        self._by_handle: dict[int, str] = {}  # hash(handle) -> id cache
        self._flushing: set[str] = set()  # finished torrents whose writes are being flushed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="silnode-torrent-alerts", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    async def stop(self) -> None:
        """Stop the thread (the session must be paused; ``post_session_stats`` wakes ``wait_for_alert``)."""
        self._stop.set()
        try:
            self._ses.post_session_stats()
        except RuntimeError:  # pragma: no cover
            pass
        await asyncio.to_thread(self._thread.join, 5.0)

    def _run(self) -> None:
        ses, loop = self._ses, self._loop
        while not self._stop.is_set():
            try:
                if ses.wait_for_alert(PUMP_WAIT_MS) is None:
                    continue
                alerts = ses.pop_alerts()
            except RuntimeError:  # pragma: no cover - session going away
                break
            for a in alerts:
                try:
                    ev = self.convert(a)
                except Exception:  # never let one odd alert kill the pump
                    log.exception("cannot convert %s", type(a).__name__)
                    continue
                if ev is None:
                    continue
                try:
                    loop.call_soon_threadsafe(self._deliver, ev)
                except RuntimeError:  # the loop is closed: nobody is listening any more
                    return

    def _id_for_handle(self, handle: Any) -> str | None:
        key = hash(handle)
        id_ = self._by_handle.get(key) if key else None
        if id_ is not None:
            return id_
        try:
            v1, v2 = ih_hexes(handle.info_hashes())
        except RuntimeError:
            return None
        id_ = self._alias.get(v1 or "") or self._alias.get(v2 or "") or v1 or v2
        if key and id_ and (v1 in self._alias or v2 in self._alias):
            self._by_handle[key] = id_
        return id_

    def _id_for_ih(self, ih: Any) -> str | None:
        v1, v2 = ih_hexes(ih)
        return self._alias.get(v1 or "") or self._alias.get(v2 or "") or v1 or v2

    def convert(self, a: Any) -> Event | None:
        """Pump thread: one alert -> one plain event (or None). Copies everything; keeps no alert."""
        lt = libtorrent()
        t = type(a)
        if t is lt.listen_succeeded_alert:
            return ListenSucceeded(str(a.address), int(a.port), a.socket_type.name)
        if t is lt.listen_failed_alert:
            return ListenFailed(str(a.address), int(a.port), a.socket_type.name, a.error.message())
        if t is lt.session_stats_alert:
            return SessionStats(dict(a.values))  # the binding already maps metric name -> value
        if t is lt.dht_put_alert:
            return DhtPut(_hex(a.target), bytes(a.public_key).hex(), bytes(a.salt), int(a.seq), int(a.num_success))
        if t is lt.dht_mutable_item_alert:
            return DhtItem(True, bytes(a.key).hex(), bytes(a.salt), int(a.seq), a.item, bool(a.authoritative))
        if t is lt.dht_immutable_item_alert:
            return DhtItem(False, _hex(a.target), b"", 0, a.item, True)
        if t in (lt.torrent_removed_alert, lt.torrent_deleted_alert, lt.torrent_delete_failed_alert):
            id_ = self._id_for_ih(a.info_hashes)
            if id_ is None:
                return None
            if t is lt.torrent_removed_alert:
                for k in [k for k, v in self._by_handle.items() if v == id_]:
                    del self._by_handle[k]  # the torrent's address may be reused by the next one
                self._flushing.discard(id_)
                return TorrentRemoved(id_)
            if t is lt.torrent_deleted_alert:
                return FilesDeleted(id_)
            return DeleteFailed(id_, a.error.message())
        handle = getattr(a, "handle", None)
        if handle is None:
            return None
        if t not in _TORRENT_ALERTS:
            return None
        id_ = self._id_for_handle(handle)
        if id_ is None:
            return None
        if t is lt.state_changed_alert:
            return StateChanged(id_, a.state.name, a.prev_state.name)
        if t is lt.torrent_finished_alert:
            # a torrent with nothing wanted yet (hold) is "finished" too, and that alert may be popped after the
            # release: only a finish that is still true, with data wanted, counts
            try:
                st = handle.status(0)
            except RuntimeError:
                return None
            if not (st.is_finished and st.total_wanted > 0):
                return None
            # "finished" means every piece passed its hash check, not that every block reached the file:
            # libtorrent 2 hashes from its write buffer. Flush first (flush_cache waits for all outstanding
            # writes, then posts cache_flushed_alert) so a finished torrent's files are complete on disk.
            self._flushing.add(id_)
            handle.flush_cache()
            return None
        if t is lt.cache_flushed_alert:
            if id_ not in self._flushing:
                return None
            self._flushing.discard(id_)
            try:
                st = handle.status(0)
            except RuntimeError:
                return None
            return TorrentFinished(id_) if st.is_finished and st.total_wanted > 0 else None
        if t is lt.torrent_checked_alert:
            return TorrentChecked(id_)
        if t is lt.add_torrent_alert:
            err = a.error.message() if a.error.value() else None
            return TorrentAdded(id_, a.torrent_name, err)
        if t is lt.metadata_received_alert:
            v1, v2 = ih_hexes(handle.info_hashes())
            return MetadataReceived(id_, v1, v2, a.torrent_name)
        if t is lt.metadata_failed_alert:
            return MetadataFailed(id_, a.error.message())
        if t is lt.file_error_alert:
            return self._storage_error(id_, handle, a)
        if t is lt.torrent_error_alert:
            # the Python binding of torrent_error_alert has no filename() (libtorrent 2.0/2.1): message() names it
            filename = a.filename() if hasattr(a, "filename") else ""
            disagree = a.error.category().name() == "libtorrent" and a.error.message() == INCONSISTENT_HASHES
            return TorrentFailed(id_, f"{a.error.message()} ({a.message()})", filename or "", disagree)
        if t is lt.hash_failed_alert:
            return HashFailed(id_, int(a.piece_index), None)
        if t is lt.peer_ban_alert:
            return PeerBanned(id_, _endpoint(a.ip))
        if t is lt.peer_blocked_alert:
            return PeerBlocked(id_, _endpoint(a.ip), _reason_name(a.reason))
        if t is lt.save_resume_data_alert:
            return ResumeDataSaved(id_, bytes(lt.write_resume_data_buf(a.params)))
        if t is lt.save_resume_data_failed_alert:
            return ResumeDataFailed(id_, a.error.message())
        if t is lt.torrent_paused_alert:
            return TorrentPaused(id_)
        if t is lt.torrent_resumed_alert:
            return TorrentResumed(id_)
        if t is lt.file_renamed_alert:
            return FileRenamed(id_, int(a.index), a.new_name())
        if t is lt.file_rename_failed_alert:
            return FileRenameFailed(id_, int(a.index), a.error.message())
        if t is lt.performance_alert:
            return PerformanceWarning(id_, a.message())
        return None  # pragma: no cover

    def _storage_error(self, id_: str, handle: Any, a: Any) -> StorageError | None:
        """Pump thread: pause on the FIRST storage error (libtorrent keeps retrying otherwise) and report it;
        later errors of the same torrent (writes already in flight) are dropped until it is resumed."""
        if id_ in self._errored:
            return None
        err = a.error
        code, text = int(err.value()), err.message()
        path = a.filename() or ""
        if code == ENOSPC:
            message = (
                f"no space left on the disk for {path or 'the download'}; the torrent is paused: "
                "free some disk space, then resume it"
            )
        else:
            message = (
                f"storage error on {path or 'a file'}: {text}; the torrent is paused: fix the cause, then resume it"
            )
        self._errored[id_] = message  # status() shows it while the torrent stays paused
        try:
            handle.unset_flags(libtorrent().torrent_flags.auto_managed)
            handle.pause()
        except RuntimeError:  # pragma: no cover - torrent already gone
            pass
        return StorageError(id_, path, text, code, message, True)


# libtorrent's text for errors::torrent_inconsistent_hashes (src/error_code.cpp; the binding names no enum value)
INCONSISTENT_HASHES = "v1 and v2 hashes do not describe the same data"


def _endpoint(ep: Any) -> str:
    try:
        host, port = ep
    except (TypeError, ValueError):
        return str(ep)
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _reason_name(reason: Any) -> str:
    name = getattr(reason, "name", None)
    return str(name) if name else str(reason)


def _torrent_alert_types() -> frozenset:
    lt = libtorrent()
    names = [
        "state_changed_alert",
        "torrent_finished_alert",
        "torrent_checked_alert",
        "add_torrent_alert",
        "metadata_received_alert",
        "metadata_failed_alert",
        "file_error_alert",
        "torrent_error_alert",
        "hash_failed_alert",
        "peer_ban_alert",
        "peer_blocked_alert",
        "save_resume_data_alert",
        "save_resume_data_failed_alert",
        "torrent_paused_alert",
        "torrent_resumed_alert",
        "file_renamed_alert",
        "file_rename_failed_alert",
        "performance_alert",
        "cache_flushed_alert",
    ]
    return frozenset(getattr(lt, n) for n in names)


class _LazyTypes:
    """``_TORRENT_ALERTS`` without importing libtorrent when this module is imported."""

    _types: frozenset | None = None

    def __contains__(self, t: object) -> bool:
        if self._types is None:
            self._types = _torrent_alert_types()
        return t in self._types


_TORRENT_ALERTS = _LazyTypes()
