"""A private DHT of real libtorrent sessions on loopback, bootstrapped only to each other (libtorrent-notes §6)."""

from __future__ import annotations

import asyncio

from silnode.config import NetworkConfig
from silnode.torrent.session import TorrentSession


def private_net(bootstrap: tuple[str, ...] = ()) -> NetworkConfig:
    return NetworkConfig(
        listen_address="127.0.0.1",
        listen_port=0,
        dht_enabled=True,
        dht_bootstrap=bootstrap,
        lsd_enabled=False,
        upnp_enabled=False,
        natpmp_enabled=False,
        dht_private=True,
    )


async def start_dht(n: int) -> list[TorrentSession]:
    """``n`` sessions that know each other; returns once every routing table holds the others."""
    sessions = [TorrentSession(private_net(), private=True) for _ in range(n)]
    for s in sessions:
        await s.start()
    for s in sessions:
        for o in sessions:
            if o is not s:
                s.add_dht_node("127.0.0.1", o.listen_port())
    await until_async(lambda: all_know(sessions, n - 1), f"{n} DHT nodes to find each other")
    return sessions


async def all_know(sessions: list[TorrentSession], k: int) -> bool:
    counts = [await s.dht_nodes() for s in sessions]
    return all(c >= k for c in counts)


async def until_async(check, what: str, timeout: float = 120.0) -> None:
    """Poll an async ``check``; a hang guard, not a speed limit."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


def addrs(sessions: list[TorrentSession]) -> list[tuple[str, int]]:
    return [("127.0.0.1", s.listen_port()) for s in sessions]
