"""Fixtures for the BitTorrent engine tests: private loopback sessions and a model directory.

Every session listens on 127.0.0.1 with a free port (listen_port 0), DHT/LSD/UPnP/NAT-PMP off, TCP only:
nothing leaves the machine. Two sessions in one process are two separate libtorrent nodes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from torrent_helpers import LOOPBACK

from silnode.config import NetworkConfig
from silnode.torrent.session import TorrentSession


@pytest.fixture
async def make_session() -> Callable[..., Awaitable[TorrentSession]]:
    """``await make_session(**network_overrides, extra_settings=..., private=True)``; all stopped at teardown."""
    sessions: list[TorrentSession] = []

    async def factory(*, private: bool = True, extra_settings: dict | None = None, **net: Any) -> TorrentSession:
        cfg = NetworkConfig(**{**LOOPBACK.__dict__, **net})
        s = TorrentSession(cfg, private=private, extra_settings=extra_settings)
        await s.start()
        sessions.append(s)
        return s

    yield factory
    for s in sessions:
        await s.stop()


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """Where a store keeps a model: <base>/models/<org>/<model>/."""
    d = tmp_path / "seed" / "models" / "org" / "model"
    d.mkdir(parents=True)
    return d
