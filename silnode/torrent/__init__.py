"""BitTorrent engine: deterministic torrents (create), the libtorrent settings (settings) and the session
owner with its alert pump (session). libtorrent is imported lazily, so ``silnode.torrent.errors`` and this
package import without it."""

from silnode.torrent.errors import BadTorrent, TorrentError

__all__ = ["BadTorrent", "TorrentError"]
