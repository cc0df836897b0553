"""Plain, frozen event objects: what the alert pump turns libtorrent alerts into.

libtorrent alert objects are only valid until the next ``pop_alerts()`` (libtorrent-notes §7), so the pump
thread copies every field anyone needs (hex hashes, error strings, resume-data bytes, counters) into one of
these before it pops again. They are safe to keep, compare, log and hand to any thread.

``id`` is the torrent's id as :class:`~silnode.torrent.session.TorrentSession` returned it from ``add_*``: the
v1 infohash in hex, or the v2 hash in hex for a torrent added by its v2 hash alone (both are accepted by
every method once known). Session-wide events have no ``id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Event:
    """Base class of every event."""


@dataclass(frozen=True)
class TorrentEvent(Event):
    id: str


# ---------------------------------------------------------------------------------------------- session-wide
@dataclass(frozen=True)
class ListenSucceeded(Event):
    address: str
    port: int
    socket_type: str  # "tcp", "utp", ...


@dataclass(frozen=True)
class ListenFailed(Event):
    address: str
    port: int
    socket_type: str
    error: str


@dataclass(frozen=True)
class SessionStats(Event):
    """The session's counters (``post_session_stats``), by metric name, e.g. ``"dht.dht_nodes"``."""

    counters: Mapping[str, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "counters", MappingProxyType(dict(self.counters)))

    def __hash__(self) -> int:  # a frozen dataclass would hash the mapping, which is unhashable
        return id(self)


@dataclass(frozen=True)
class DhtPut(Event):
    """A BEP 44 put finished. ``target`` is all zeros for mutable puts (libtorrent-notes §6a)."""

    target: str  # hex
    public_key: str  # hex, "" for immutable items
    salt: bytes
    seq: int
    num_success: int


@dataclass(frozen=True)
class DhtItem(Event):
    """A BEP 44 get answered. Mutable gets answer twice: non-authoritative first, then authoritative."""

    mutable: bool
    key: str  # hex: the public key (mutable) or the target hash (immutable)
    salt: bytes
    seq: int
    value: Any  # the decoded bencoded value (bytes, int, list, dict with bytes keys)
    authoritative: bool


# ---------------------------------------------------------------------------------------------- per torrent
@dataclass(frozen=True)
class TorrentAdded(TorrentEvent):
    name: str
    error: str | None  # None when it was added


@dataclass(frozen=True)
class MetadataReceived(TorrentEvent):
    """The info dict arrived from peers (magnet); both hashes are now known."""

    v1: str | None
    v2: str | None
    name: str


@dataclass(frozen=True)
class MetadataFailed(TorrentEvent):
    error: str


@dataclass(frozen=True)
class StateChanged(TorrentEvent):
    state: str  # checking_files, downloading_metadata, downloading, finished, seeding, checking_resume_data
    prev_state: str


@dataclass(frozen=True)
class TorrentChecked(TorrentEvent):
    """The files were checked (after add, ``force_recheck`` or metadata): pieces/status are now accurate."""


@dataclass(frozen=True)
class TorrentFinished(TorrentEvent):
    """Every wanted piece passed its hash check AND was written to the files, which are at their final
    (flat) names. Not reported for a torrent that only has nothing wanted yet (``hold``)."""


@dataclass(frozen=True)
class TorrentPaused(TorrentEvent):
    pass


@dataclass(frozen=True)
class TorrentResumed(TorrentEvent):
    pass


@dataclass(frozen=True)
class StorageError(TorrentEvent):
    """A file read/write/allocate failed. On the first one the torrent is paused (libtorrent would retry
    forever); further errors are not reported until it is resumed."""

    file: str  # the path libtorrent used, "" when it did not name one
    error: str  # the OS/libtorrent error text, e.g. "No space left on device"
    errno: int  # the error code's value (ENOSPC = 28, ...)
    message: str  # one readable sentence for a user
    paused: bool


@dataclass(frozen=True)
class TorrentFailed(TorrentEvent):
    """libtorrent put the torrent into its error state (torrent_error_alert)."""

    error: str
    file: str
    # libtorrent's torrent_inconsistent_hashes ("v1 and v2 hashes do not describe the same data"): a hybrid's
    # merkle tree took SHA-256 block hashes from a piece that failed SHA-1 (a hostile peer's); libtorrent
    # dropped every piece and paused. A fresh torrent object gets past it (DistributionService._recover).
    hashes_disagree: bool = False


@dataclass(frozen=True)
class HashFailed(TorrentEvent):
    """A downloaded piece failed its hash check and will be fetched again. libtorrent does not say which
    peer sent it (``peer`` is None); repeated offenders are banned and reported as :class:`PeerBanned`."""

    piece: int
    peer: str | None


@dataclass(frozen=True)
class PeerBanned(TorrentEvent):
    peer: str  # "ip:port"


@dataclass(frozen=True)
class PeerBlocked(TorrentEvent):
    peer: str
    reason: str  # libtorrent's reason name, e.g. "ip_filter", "privileged_ports"


@dataclass(frozen=True)
class ResumeDataSaved(TorrentEvent):
    data: bytes  # bencoded (``lt.write_resume_data_buf``); write it atomically, pass it to add_download


@dataclass(frozen=True)
class ResumeDataFailed(TorrentEvent):
    error: str


@dataclass(frozen=True)
class TorrentRemoved(TorrentEvent):
    pass


@dataclass(frozen=True)
class FilesDeleted(TorrentEvent):
    pass


@dataclass(frozen=True)
class DeleteFailed(TorrentEvent):
    error: str


@dataclass(frozen=True)
class FileRenamed(TorrentEvent):
    index: int
    name: str


@dataclass(frozen=True)
class FileRenameFailed(TorrentEvent):
    index: int
    error: str


@dataclass(frozen=True)
class PerformanceWarning(TorrentEvent):
    message: str


@dataclass(frozen=True)
class SeedLimitReached(TorrentEvent):
    """network.seed_ratio_limit / seed_time_limit reached: the torrent was paused."""

    reason: str
