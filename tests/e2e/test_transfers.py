"""BitTorrent between daemon processes: SIGKILL mid-download and resume; interop with a standard client."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from daemons import run_cli, start_daemon, stop_daemon

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


cli = run_cli


def transfer(home: Path, tid: str) -> dict:
    rows = json.loads(cli(home, "transfers", "--json").stdout)["transfers"]
    return next(r for r in rows if r["id"] == tid)


def wait_until(fn, timeout: float = 120, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


def have_pieces(resume_file: Path) -> int:
    import libtorrent as lt

    data = lt.bdecode(resume_file.read_bytes())
    return sum(bin(b).count("1") for b in data[b"pieces"])  # a bitfield, one bit per piece


def test_sigkill_mid_download_resumes_with_only_missing_pieces(tmp_path):
    from ggufgen import make_sized_gguf as big_gguf

    src = big_gguf(tmp_path / "m.gguf", 64 << 20, seed=7)
    a = start_daemon(tmp_path / "a", env={"SILNODE_NETWORK__UPLOAD_RATE_LIMIT": str(6 << 20)})
    b_env = {"SILNODE_NETWORK__RESUME_SAVE_INTERVAL": "1"}
    b = start_daemon(tmp_path / "b", env=b_env)
    try:
        shared = json.loads(cli(a.home, "share", str(src), "--name", "alice/m", "--license", "mit", "--json").stdout)
        tid = shared["infohash"]
        cli(b.home, "get", shared["magnet"], "--no-wait")
        wait_until(lambda: transfer(b.home, tid)["progress"] >= 0.5)
        time.sleep(1.2)  # one more resume save
        os.kill(b.pid, signal.SIGKILL)
        b.proc.wait(10)
        resume = b.home / "state" / "resume" / f"{tid}.resume"
        assert resume.is_file(), "no resume data was saved before the kill"
        pieces_kept = have_pieces(resume)
        torrent_info = json.loads(cli(a.home, "show", "alice/m", "--json").stdout)
        total = torrent_info["total_size"]
        time.sleep(0.5)
        sent_before = transfer(a.home, tid)["uploaded"]

        b2 = start_daemon(tmp_path / "b", env=b_env)
        try:
            wait_until(lambda: cli(b2.home, "show", "alice/m", check=False).returncode == 0, timeout=180)
            sent_after = wait_until(lambda: transfer(a.home, tid)["uploaded"])
            got = json.loads(cli(b2.home, "show", "alice/m", "--json").stdout)
            assert got["files"][0]["sha256"] == shared_sha(src)
            assert not (b2.home / "state" / "resume" / f"{tid}.resume").exists()  # dropped once done
        finally:
            stop_daemon(b2)
        from silnode.torrent.create import piece_length

        plen = piece_length(total)
        n_pieces = -(-total // plen)
        missing = (n_pieces - pieces_kept) * plen
        fetched_after_restart = sent_after - sent_before
        print(
            json.dumps(
                {
                    "total": total,
                    "piece_len": plen,
                    "pieces_kept": pieces_kept,
                    "missing_bytes": missing,
                    "fetched_after_restart": fetched_after_restart,
                }
            )
        )
        assert pieces_kept >= n_pieces // 3
        assert fetched_after_restart <= missing + 4 * plen  # the missing pieces plus a few in flight
        assert fetched_after_restart < total
    finally:
        stop_daemon(a)
        stop_daemon(b)


def shared_sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_standard_client_downloads_a_shared_model(tmp_path, tiny_q8):
    """aria2 (Debian's `aria2` package) fetches a model a silnode node seeds, from the node's .torrent file,
    with a minimal HTTP tracker pointing it at the node (aria2 takes no peer address on its command line)."""
    aria2 = shutil.which("aria2c")
    if not aria2:
        pytest.skip("aria2c not installed (apt-get install aria2)")
    import asyncio
    import threading

    from aiohttp import web

    a = start_daemon(tmp_path / "a")
    loop = asyncio.new_event_loop()
    try:
        shared = json.loads(cli(a.home, "share", str(tiny_q8), "--name", "alice/q8", "--v1-compat", "--json").stdout)
        node_port = json.loads(cli(a.home, "daemon", "status", "--json").stdout)["torrents"]["listen_port"]
        announces = []

        async def announce(request: web.Request) -> web.Response:
            import libtorrent as lt

            announces.append(dict(request.query))
            peers = bytes([127, 0, 0, 1]) + node_port.to_bytes(2, "big")
            return web.Response(body=lt.bencode({b"interval": 60, b"peers": peers}))

        app = web.Application()
        app.router.add_get("/announce", announce)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        tracker = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/announce"
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()

        # Debian 12's clients predate BitTorrent v2 (BEP 52): transmission 3.00 cannot parse a hybrid torrent
        # and aria2 1.36 computes a wrong infohash for one, so they get the v1-only twin of the same files
        torrent = Path(shared["v1_compat"]["torrent_file"])
        assert torrent.parent == a.home / "models" / "alice" / "q8"
        out = tmp_path / "aria2"
        r = subprocess.run(
            [
                aria2,
                "--dir",
                str(out),
                "--bt-tracker",
                tracker,
                "--enable-dht=false",
                "--enable-dht6=false",
                "--bt-enable-lpd=false",
                "--enable-peer-exchange=false",
                "--seed-time=0",
                "--bt-stop-timeout=60",
                "--summary-interval=0",
                "--quiet=true",
                str(torrent),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert announces, "aria2 never asked the tracker"
        got = out / tiny_q8.name
        assert got.read_bytes() == tiny_q8.read_bytes()
    finally:
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
        loop.close()
        stop_daemon(a)
