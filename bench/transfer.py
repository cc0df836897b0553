#!/usr/bin/env python3
"""BitTorrent transfer benchmarks, each figure next to its anchor measured in the same run.

    python bench/transfer.py [--size-mib 512] [--runs 3] [--json] [--netns]

1. loopback, 1 seeder -> 1 leecher, transfer time only (add -> every piece hash-checked and on disk), with
   silnode's session settings (TCP only) and with uTP on, vs an aiohttp static file fetched to disk by curl.
   Speed ratio = HTTP time / BitTorrent time (1.0 = as fast as HTTP).
2. web seed: an HTTP origin capped at 40 MiB/s plus one peer capped at 20 MiB/s, vs the origin alone.
3. (--netns, root) network namespaces, every host capped at 200 Mbit/s: see bench/netns.py.
4. (--pipeline) the whole `get` on a real node: metadata, download, the store's SHA-256 pass, the move into
   the store and the .torrent it seeds from (add -> transfer done), the seeder in another process. Reports the
   downloading node's CPU-seconds per GiB (every thread of the process: libtorrent's piece checks and all
   hashing included) and its speed against HTTP (curl to disk).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from ggufgen import make_sized_gguf  # noqa: E402
from origin import Origin  # noqa: E402

from silnode.config import NetworkConfig  # noqa: E402
from silnode.store import sha256_file  # noqa: E402
from silnode.torrent.create import make_torrent  # noqa: E402
from silnode.torrent.events import TorrentFinished  # noqa: E402
from silnode.torrent.session import TorrentSession  # noqa: E402

LOOPBACK = NetworkConfig(
    listen_address="127.0.0.1",
    listen_port=0,
    dht_enabled=False,
    lsd_enabled=False,
    upnp_enabled=False,
    natpmp_enabled=False,
)


async def bt_once(
    torrent: bytes,
    src_dir: Path,
    dst: Path,
    net: NetworkConfig,
    *,
    web_seed: str | None = None,
    peer: bool = True,
    seeder_limit: int = 0,
) -> float:
    """Seconds from add_download to TorrentFinished (all pieces checked and flushed)."""
    seeder = TorrentSession(replace(net, upload_rate_limit=seeder_limit)) if peer else None
    leecher = TorrentSession(net)
    if seeder:
        await seeder.start()
    await leecher.start()
    try:
        if seeder:
            await seeder.add_seed(torrent, src_dir, seed_mode=True)
        finished = leecher.expect(lambda e: isinstance(e, TorrentFinished))
        t0 = time.perf_counter()
        tid = await leecher.add_download(torrent, dst, peers=[("127.0.0.1", seeder.listen_port())] if seeder else [])
        if web_seed:
            leecher.add_web_seed(tid, web_seed)
        await asyncio.wait_for(finished, 600)
        return time.perf_counter() - t0
    finally:
        await leecher.stop()
        if seeder:
            await seeder.stop()


SEEDER = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from silnode.config import NetworkConfig
from silnode.torrent.session import TorrentSession
async def main():
    net = NetworkConfig(listen_address="127.0.0.1", listen_port=0, dht_enabled=False, lsd_enabled=False,
                        upnp_enabled=False, natpmp_enabled=False)
    async with TorrentSession(net) as s:
        await s.add_seed(open(sys.argv[2], "rb").read(), sys.argv[3], seed_mode=True)
        print(s.listen_port(), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""


async def pipeline_once(torrent_file: Path, src_dir: Path, home: Path, infohash: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for one `get` through a node, add -> done."""
    from silnode.config import load_config
    from silnode.node import Node

    seeder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SEEDER,
        str(ROOT),
        str(torrent_file),
        str(src_dir),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        port = int((await seeder.stdout.readline()).decode())
        node = Node(load_config(home, overrides={"daemon.port": 0, "storage.min_free_bytes": 0}))
        await node.start()
        try:
            cpu0, t0 = time.process_time(), time.perf_counter()
            t = await node.distribution.download(infohash, peers=(f"127.0.0.1:{port}",), name="bench/m", force=True)
            await node.distribution.wait(t.id)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            assert t.state == "done", t.error
        finally:
            await node.stop()
    finally:
        seeder.stdin.close()
        await seeder.wait()
    return wall, cpu


async def http_once(origin: Origin, dst: Path) -> float:
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec("curl", "-s", "-o", str(dst), origin.url)
    assert await proc.wait() == 0
    return time.perf_counter() - t0


def median(xs: list[float]) -> float:
    return statistics.median(xs)


async def run(a: argparse.Namespace) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix="bt-bench-", dir=ROOT / "bench"))
    out: dict = {"size_mib": a.size_mib, "runs": a.runs}
    try:
        src_dir = scratch / "src"
        src_dir.mkdir()
        src = make_sized_gguf(src_dir / "model.gguf", a.size_mib << 20, seed=11)
        rec = {"path": src.name, "size": src.stat().st_size, "sha256": sha256_file(src)}
        torrent = make_torrent(src_dir, [rec])
        src.read_bytes()  # warm the page cache for every contender

        if not a.only_pipeline:
            # 1. loopback: silnode settings (TCP), uTP, HTTP
            times: dict[str, list[float]] = {
                "bittorrent (silnode: TCP)": [],
                "bittorrent (uTP on)": [],
                "http (aiohttp static -> curl to disk)": [],
            }
            utp = replace(LOOPBACK, utp_enabled=True)
            async with Origin(src) as origin:
                for i in range(a.runs):
                    for label, net in (("bittorrent (silnode: TCP)", LOOPBACK), ("bittorrent (uTP on)", utp)):
                        if label.endswith("(uTP on)") and i > 0:
                            continue  # uTP is slow; one run shows it
                        dst = scratch / f"dl-{i}-{len(times[label])}"
                        dst.mkdir()
                        times[label].append(await bt_once(torrent, src_dir, dst, net))
                        shutil.rmtree(dst)
                    dst = scratch / f"http-{i}.gguf"
                    times["http (aiohttp static -> curl to disk)"].append(await http_once(origin, dst))
                    dst.unlink()
            http = median(times["http (aiohttp static -> curl to disk)"])
            out["loopback"] = {
                k: {
                    "median_s": round(median(v), 3),
                    "runs": [round(x, 3) for x in v],
                    "speed_vs_http": round(http / median(v), 3),
                }
                for k, v in times.items()
            }

            # 2. web seed + capped peer vs web seed alone
            ws_times: dict[str, list[float]] = {"web seed alone (40 MiB/s)": [], "web seed + 1 peer (20 MiB/s)": []}
            ws_src = src if a.size_mib <= 256 else make_sized_gguf(src_dir / "ws.gguf", 256 << 20, seed=12)
            ws_dir = ws_src.parent
            ws_torrent = (
                torrent
                if ws_src == src
                else make_torrent(
                    ws_dir, [{"path": ws_src.name, "size": ws_src.stat().st_size, "sha256": sha256_file(ws_src)}]
                )
            )
            async with Origin(ws_src, cap=40 << 20, chunk=256 * 1024) as origin:
                for i in range(a.runs):
                    for label, peer in (("web seed alone (40 MiB/s)", False), ("web seed + 1 peer (20 MiB/s)", True)):
                        dst = scratch / f"ws-{i}-{peer}"
                        dst.mkdir()
                        ws_times[label].append(
                            await bt_once(
                                ws_torrent, ws_dir, dst, LOOPBACK, web_seed=origin.url, peer=peer, seeder_limit=20 << 20
                            )
                        )
                        shutil.rmtree(dst)
            alone = median(ws_times["web seed alone (40 MiB/s)"])
            out["web_seed"] = {
                "size_mib": ws_src.stat().st_size >> 20,
                **{
                    k: {"median_s": round(median(v), 3), "speedup_vs_web_seed_alone": round(alone / median(v), 3)}
                    for k, v in ws_times.items()
                },
            }

        if a.pipeline:
            from silnode.torrent.create import infohashes, load_torrent_info

            tfile = scratch / "m.torrent"
            tfile.write_bytes(torrent)
            ih = infohashes(load_torrent_info(torrent))[0]
            walls, cpus, https = [], [], []
            async with Origin(src) as origin:
                for i in range(a.runs):
                    wall, cpu = await pipeline_once(tfile, src_dir, scratch / f"node-{i}", ih)
                    shutil.rmtree(scratch / f"node-{i}", ignore_errors=True)
                    walls.append(wall)
                    cpus.append(cpu)
                    dst = scratch / f"http-p{i}.gguf"
                    https.append(await http_once(origin, dst))
                    dst.unlink()
            gib = src.stat().st_size / 2**30
            out["pipeline"] = {
                "median_s": round(median(walls), 3),
                "runs_s": [round(x, 3) for x in walls],
                "cpu_s_per_gib": round(median(cpus) / gib, 3),
                "cpu_s_per_gib_runs": [round(c / gib, 3) for c in cpus],
                "http_median_s": round(median(https), 3),
                "speed_vs_http": round(median(https) / median(walls), 3),
            }

        if a.netns:
            r = subprocess.run(
                [sys.executable, str(ROOT / "bench" / "netns.py"), "--json"], capture_output=True, text=True
            )
            out["netns"] = json.loads(r.stdout) if r.returncode == 0 else {"error": r.stderr.strip()[-500:]}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--netns", action="store_true", help="also run bench/netns.py (root, ip, tc)")
    ap.add_argument("--pipeline", action="store_true", help="also time a whole `get` on a node (CPU-s per GiB)")
    ap.add_argument("--only-pipeline", action="store_true", help="run only section 4")
    a = ap.parse_args()
    a.pipeline = a.pipeline or a.only_pipeline
    out = asyncio.run(run(a))
    if a.json:
        print(json.dumps(out, indent=2))
        return
    if a.only_pipeline:
        out["loopback"], out["web_seed"] = {}, {"size_mib": 0}
    print(f"1. loopback, {a.size_mib} MiB, 1 seeder -> 1 leecher (median of {a.runs}; uTP: 1 run)")
    for k, v in out["loopback"].items():
        print(f"   {k:<40} {v['median_s']:>8.3f} s   {v['speed_vs_http']:.2f}x HTTP speed")
    ws = out["web_seed"]
    print(f"2. web seed, {ws['size_mib']} MiB")
    for k, v in ws.items():
        if isinstance(v, dict):
            print(f"   {k:<40} {v['median_s']:>8.3f} s   {v['speedup_vs_web_seed_alone']:.2f}x")
    if "pipeline" in out:
        p = out["pipeline"]
        print(f"4. whole get on a node, {a.size_mib} MiB (median of {a.runs})")
        print(f"   {p['median_s']:.3f} s, {p['cpu_s_per_gib']:.2f} CPU-s per GiB, {p['speed_vs_http']:.2f}x HTTP speed")
    if "netns" in out:
        print("3. network namespaces:", json.dumps(out["netns"], indent=2))


if __name__ == "__main__":
    main()
