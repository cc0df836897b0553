"""Errors raised by the BitTorrent engine (kept here, next to the code that raises them).

    SilnodeError
    └── TorrentError         500 torrent_error   libtorrent failed, or a torrent/session is in a bad state
        └── BadTorrent       400 bad_torrent     input we refuse: a malformed magnet/hash, a tampered
                                                 or malformed "silnode" key, an unsafe file name

Third-party exceptions (libtorrent's RuntimeError, ValueError, ...) are translated at this boundary
(``raise TorrentError(...) from exc``), so callers only ever see the silnode error tree.
"""

from __future__ import annotations

from silnode.errors import SilnodeError


class TorrentError(SilnodeError):
    status = 500
    code = "torrent_error"


class BadTorrent(TorrentError):
    """Input we refuse; a subclass so ``except TorrentError`` still catches it, but the API answers 400."""

    status = 400
    code = "bad_torrent"
