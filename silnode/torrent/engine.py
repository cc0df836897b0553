"""The torrent engine: the Node service that owns the one libtorrent session.

libtorrent has one owner (this service), started before the services that move bytes with it (distribution
now, catalog discovery next) and stopped after them, so each of those holds the engine rather than reaching
through another service for the session. Those services save what they need (resume data of their
downloads) in their own ``stop()``; the engine then destroys the session.
"""

from __future__ import annotations

import logging

from silnode.config import Config
from silnode.errors import TorrentError
from silnode.torrent.session import TorrentSession

log = logging.getLogger(__name__)


class TorrentEngine:
    name = "torrent-engine"

    def __init__(self, config: Config) -> None:
        self.config = config
        self._session: TorrentSession | None = None

    @property
    def running(self) -> bool:
        return self._session is not None and self._session.running

    @property
    def session(self) -> TorrentSession:
        if self._session is None:
            raise TorrentError("the torrent engine is not running")
        return self._session

    async def start(self) -> None:
        session = TorrentSession(self.config.network, private=self.config.network.dht_private)
        await session.start()
        self._session = session
        log.info("BitTorrent listening on port %d", session.listen_port())

    async def stop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.stop(save_resume=False)  # the services above saved what they keep
