"""`get MAGNET --peer HOST:PORT` against a standard client (aria2 seeding a plain v1 torrent, no DHT, no
tracker): the explicit peer is the only way to the data, so it must never be lost."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
from foreign import make_foreign_torrent
from nodes import get, sha256

pytestmark = pytest.mark.timeout(900)

RUNS = 10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"aria2 never listened on {port}")


@pytest.fixture
def aria2_seed(tmp_path, tiny_q8):
    aria2 = shutil.which("aria2c")
    assert aria2, "aria2c is required (apt-get install aria2)"
    data = tmp_path / "aria2-data"
    data.mkdir()
    src = data / "tiny-q8_0.gguf"
    shutil.copy(tiny_q8, src)
    torrent = tmp_path / "plain.torrent"
    torrent.write_bytes(make_foreign_torrent(src))
    port = _free_port()
    proc = subprocess.Popen(
        [
            aria2,
            "--dir",
            str(data),
            "--check-integrity=true",
            "--seed-ratio=0.0",
            f"--listen-port={port}",
            "--enable-dht=false",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
            "--summary-interval=0",
            "--quiet=true",
            str(torrent),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port)
        import libtorrent as lt

        yield str(lt.torrent_info(torrent.read_bytes()).info_hashes().v1), f"127.0.0.1:{port}", src
    finally:
        proc.terminate()
        proc.wait(10)


async def test_explicit_peer_is_redialled_until_the_download_completes(make_node, aria2_seed):
    infohash, peer, src = aria2_seed
    outcomes = []
    for i in range(RUNS):
        node = await make_node(f"n{i}")
        t = await get(node, f"magnet:?xt=urn:btih:{infohash}", peers=(peer,), name=f"bob/m{i}", timeout=90)
        outcomes.append((t.state, t.error))
        assert node.store.read_manifest(f"bob/m{i}").to_json()["files"][0]["sha256"] == sha256(src)
        await node.stop()
    assert outcomes == [("done", None)] * RUNS
