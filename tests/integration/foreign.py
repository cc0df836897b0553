"""A foreign BitTorrent client in the test process: a bare libtorrent session seeding a torrent made by
libtorrent's own ``create_torrent`` (no ``silnode`` key), the way another client would make and seed it."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import libtorrent as lt


def make_foreign_torrent(root: Path, *, v1_only: bool = True, piece_size: int = 16 << 10) -> bytes:
    """A torrent of ``root`` (a file, or a directory: multi-file) with no silnode key."""
    flags = lt.create_torrent.v1_only if v1_only else 0
    ct = lt.create_torrent(lt.list_files(str(root)), piece_size, flags)
    ct.set_creator("foreign-client/1.0")
    lt.set_piece_hashes(ct, str(root.parent))
    return lt.bencode(ct.generate())


class ForeignSeeder:
    """One plain libtorrent session on 127.0.0.1 (TCP only, no DHT/LSD/UPnP) seeding one torrent."""

    def __init__(self, torrent: bytes, save_path: Path) -> None:
        self.ses = lt.session(
            {
                "listen_interfaces": "127.0.0.1:0",
                "enable_dht": False,
                "enable_lsd": False,
                "enable_upnp": False,
                "enable_natpmp": False,
                "enable_outgoing_utp": False,
                "enable_incoming_utp": False,
                "allow_multiple_connections_per_ip": True,
            }
        )
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(torrent)
        atp.save_path = str(save_path)
        atp.flags |= lt.torrent_flags.seed_mode
        self.handle = self.ses.add_torrent(atp)
        self.info = atp.ti
        deadline = time.monotonic() + 10
        while not self.ses.listen_port() and time.monotonic() < deadline:
            time.sleep(0.05)

    @property
    def peer(self) -> str:
        return f"127.0.0.1:{self.ses.listen_port()}"

    @property
    def infohash(self) -> str:
        return str(self.info.info_hashes().v1)

    def close(self) -> None:
        self.ses.pause()
        del self.handle
        del self.ses


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
