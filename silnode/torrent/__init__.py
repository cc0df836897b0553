"""BitTorrent engine: deterministic torrents (create), the libtorrent settings (settings), the session
(session), its alert pump (alerts) and the Node service that owns it (engine). libtorrent is imported lazily
(``_lt``), so this package imports without it."""
