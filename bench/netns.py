#!/usr/bin/env python3
"""Swarm vs HTTP origin on a shaped network: Linux network namespaces, every host capped at RATE (tc tbf).

    sudo python bench/netns.py [--size-mib 256] [--rate 200mbit] [--json]

Topology: a "switch" namespace with a bridge and HOSTS host namespaces (10.77.0.1 ...), each attached by a
veth pair shaped to RATE on both ends. Host 1 holds the model. Measured in one run:
  a. one peer -> one leecher            vs  HTTP origin (aiohttp static) -> one curl
  b. one seeder -> 4 leechers (a swarm) vs  one HTTP origin -> 4 concurrent curls   (time until all done)
Each BitTorrent node is its own process in its own namespace (bench/netns_node.py). Needs root, ip, tc.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
PREFIX = "snb"  # namespace/interface prefix
HOSTS = 5


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def ns(i: int) -> str:
    return f"{PREFIX}h{i}"


def ip_of(i: int) -> str:
    return f"10.77.0.{i}"


def setup(rate: str) -> None:
    teardown()
    sh("ip", "netns", "add", f"{PREFIX}sw")
    sh("ip", "netns", "exec", f"{PREFIX}sw", "ip", "link", "add", "br0", "type", "bridge")
    sh("ip", "netns", "exec", f"{PREFIX}sw", "ip", "link", "set", "br0", "up")
    for i in range(1, HOSTS + 1):
        h, a, b = ns(i), f"{PREFIX}a{i}", f"{PREFIX}b{i}"
        sh("ip", "netns", "add", h)
        sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
        sh("ip", "link", "set", a, "netns", h)
        sh("ip", "link", "set", b, "netns", f"{PREFIX}sw")
        sh("ip", "netns", "exec", h, "ip", "addr", "add", f"{ip_of(i)}/24", "dev", a)
        sh("ip", "netns", "exec", h, "ip", "link", "set", a, "up")
        sh("ip", "netns", "exec", h, "ip", "link", "set", "lo", "up")
        sh("ip", "netns", "exec", f"{PREFIX}sw", "ip", "link", "set", b, "master", "br0")
        sh("ip", "netns", "exec", f"{PREFIX}sw", "ip", "link", "set", b, "up")
        for where, dev in ((h, a), (f"{PREFIX}sw", b)):  # both directions
            sh(
                "ip",
                "netns",
                "exec",
                where,
                "tc",
                "qdisc",
                "add",
                "dev",
                dev,
                "root",
                "tbf",
                "rate",
                rate,
                "burst",
                "256kb",
                "latency",
                "50ms",
            )


def teardown() -> None:
    for i in range(1, HOSTS + 1):
        sh("ip", "netns", "del", ns(i), check=False)
    sh("ip", "netns", "del", f"{PREFIX}sw", check=False)


def in_ns(i: int, *cmd: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", ns(i), *cmd], **kw)


def bt_round(work: Path, src: Path, torrent: Path, leechers: list[int]) -> float:
    """Seeder on host 1, leechers on the given hosts; seconds until every leecher is done."""
    node = str(ROOT / "bench" / "netns_node.py")
    all_hosts = [1, *leechers]
    seeder = in_ns(
        1, sys.executable, node, "seed", str(torrent), str(src.parent), ip_of(1), stdout=subprocess.PIPE, text=True
    )
    assert seeder.stdout is not None
    assert seeder.stdout.readline().strip() == "ready"
    procs = []
    for i in leechers:
        d = work / f"leech-{i}-{time.monotonic_ns()}"
        d.mkdir()
        peers = ",".join(f"{ip_of(j)}:6881" for j in all_hosts if j != i)
        procs.append(
            in_ns(
                i,
                sys.executable,
                node,
                "leech",
                str(torrent),
                str(d),
                ip_of(i),
                peers,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    # each leecher times itself from its own add (they start together); they linger a few seconds afterwards
    # to keep serving the others, which is not counted
    times = [float(p.communicate(timeout=600)[0].strip().splitlines()[-1]) for p in procs]
    seeder.terminate()
    seeder.wait(30)
    for d in work.glob("leech-*"):
        shutil.rmtree(d, ignore_errors=True)
    return max(times)


def http_round(work: Path, src: Path, clients: list[int]) -> float:
    server = in_ns(
        1,
        sys.executable,
        "-c",
        (
            "import sys; from aiohttp import web; app = web.Application(); "
            f"app.router.add_static('/', {str(src.parent)!r}); "
            f"web.run_app(app, host={ip_of(1)!r}, port=8080, print=lambda *a: print('ready', flush=True))"
        ),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "ready"
    t0 = time.monotonic()
    procs = [
        in_ns(i, "curl", "-s", "-o", str(work / f"http-{i}.gguf"), f"http://{ip_of(1)}:8080/{src.name}")
        for i in clients
    ]
    for p in procs:
        assert p.wait(600) == 0
    elapsed = time.monotonic() - t0
    server.terminate()
    server.wait(30)
    for f in work.glob("http-*.gguf"):
        f.unlink()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--rate", default="200mbit")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    from ggufgen import make_sized_gguf

    from silnode.store import sha256_file
    from silnode.torrent.create import make_torrent

    work = Path(tempfile.mkdtemp(prefix="netns-bench-", dir=ROOT / "bench"))
    try:
        setup(a.rate)
        src_dir = work / "src"
        src_dir.mkdir()
        src = make_sized_gguf(src_dir / "model.gguf", a.size_mib << 20, seed=13)
        torrent = work / "model.torrent"
        torrent.write_bytes(
            make_torrent(src_dir, [{"path": src.name, "size": src.stat().st_size, "sha256": sha256_file(src)}])
        )
        out = {"size_mib": a.size_mib, "rate_per_host": a.rate}
        single_bt = bt_round(work, src, torrent, [2])
        single_http = http_round(work, src, [2])
        swarm_bt = bt_round(work, src, torrent, [2, 3, 4, 5])
        swarm_http = http_round(work, src, [2, 3, 4, 5])
        out["single"] = {
            "bittorrent_s": round(single_bt, 2),
            "http_s": round(single_http, 2),
            "speed_vs_http": round(single_http / single_bt, 3),
        }
        out["one_to_four"] = {
            "bittorrent_s": round(swarm_bt, 2),
            "http_s": round(swarm_http, 2),
            "time_vs_http": round(swarm_bt / swarm_http, 3),
        }
    finally:
        teardown()
        shutil.rmtree(work, ignore_errors=True)
    if a.json:
        print(json.dumps(out))
    else:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
