#!/usr/bin/env python3
"""One BitTorrent node inside a namespace, for bench/netns.py (silnode's own session settings, TCP).

netns_node.py seed  TORRENT DIR ADDR             prints "ready", seeds until terminated
netns_node.py leech TORRENT DIR ADDR PEERS       prints "ready" once its session is up, waits for "go" on
                                                 stdin, adds the torrent, and prints time.monotonic() when
                                                 every piece is checked and on disk (CLOCK_MONOTONIC is one
                                                 clock for every process on the machine, namespaces too)
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from silnode.config import NetworkConfig  # noqa: E402
from silnode.torrent.events import TorrentChecked, TorrentFinished  # noqa: E402
from silnode.torrent.session import TorrentSession  # noqa: E402


async def main(role: str, torrent_path: str, directory: str, addr: str, peers: str = "") -> None:
    net = NetworkConfig(
        listen_address=addr,
        listen_port=6881,
        dht_enabled=False,
        lsd_enabled=False,
        upnp_enabled=False,
        natpmp_enabled=False,
    )
    s = TorrentSession(net)
    await s.start()
    torrent = Path(torrent_path).read_bytes()
    try:
        if role == "seed":
            checked = s.expect(lambda e: isinstance(e, TorrentChecked))
            await s.add_seed(torrent, directory, seed_mode=False)  # checked once, before anyone asks
            await checked
            print("ready", flush=True)
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            await stop.wait()
        else:
            finished = s.expect(lambda e: isinstance(e, TorrentFinished))
            print("ready", flush=True)
            go = await asyncio.to_thread(sys.stdin.readline)  # the parent starts every clock at once
            assert go.strip() == "go", go
            await s.add_download(torrent, directory, peers=[p for p in peers.split(",") if p])
            await finished
            print(f"{time.monotonic():.6f}", flush=True)
            await asyncio.sleep(3)  # keep serving the others a moment: a swarm, not a race to leave
    finally:
        await s.stop()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
