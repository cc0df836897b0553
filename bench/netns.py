#!/usr/bin/env python3
"""Swarm vs HTTP origin on a shaped network: Linux network namespaces, every host capped at RATE (tc tbf).

    sudo python bench/netns.py [--size-mib 256] [--rate 200mbit] [--runs 5] [--json]

Topology: a "switch" namespace with a bridge and HOSTS host namespaces (10.77.0.1 ...), each attached by a
veth pair shaped to RATE on both ends. Host 1 holds the model. Measured in one run:
  a. one peer -> one leecher            vs  HTTP origin (aiohttp static) -> one curl
  b. one seeder -> 4 leechers (a swarm) vs  one HTTP origin -> 4 concurrent curls   (time until all done)
Each BitTorrent node is its own process in its own namespace (bench/netns_node.py). Needs root, ip, tc.

Fair clocks: on both sides every process is started and ready first (the seeder has checked its pieces, each
leecher's session is up; the HTTP server listens and each curl waits in a shell for its go), then ONE go
signal starts the clock, and it stops when the last byte of the last client is on disk (a leecher's finish
time on the shared monotonic clock; a curl's exit). Each round is repeated --runs times, BitTorrent and HTTP
alternating, and reported as median and min-max.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
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
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:  # every leecher's process and session are up before any clock starts
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    t0 = time.monotonic()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    # each leecher prints its finish time on the shared clock; they linger a few seconds afterwards to keep
    # serving the others, which is not counted
    ends = [float(p.communicate(timeout=600)[0].strip().splitlines()[-1]) for p in procs]
    seeder.terminate()
    seeder.wait(30)
    for d in work.glob("leech-*"):
        shutil.rmtree(d, ignore_errors=True)
    return max(ends) - t0


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
    # each curl waits in its namespace for the go, like the leechers: process start-up is outside the clock
    url = f"http://{ip_of(1)}:8080/{src.name}"
    procs = [
        in_ns(
            i,
            "sh",
            "-c",
            f'echo ready; read go; exec curl -s -o "{work / f"http-{i}.gguf"}" "{url}"',
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in clients
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    t0 = time.monotonic()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        assert p.wait(600) == 0
    elapsed = time.monotonic() - t0  # the last curl's exit: its last byte is on disk
    server.terminate()
    server.wait(30)
    for f in work.glob("http-*.gguf"):
        f.unlink()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--rate", default="200mbit")
    ap.add_argument("--runs", type=int, default=5)
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
        out: dict = {"size_mib": a.size_mib, "rate_per_host": a.rate, "runs": a.runs}
        runs: dict[str, list[float]] = {"single_bt": [], "single_http": [], "swarm_bt": [], "swarm_http": []}
        for _ in range(a.runs):  # alternating, so drift on the machine hits both sides alike
            runs["single_bt"].append(bt_round(work, src, torrent, [2]))
            runs["single_http"].append(http_round(work, src, [2]))
            runs["swarm_bt"].append(bt_round(work, src, torrent, [2, 3, 4, 5]))
            runs["swarm_http"].append(http_round(work, src, [2, 3, 4, 5]))
        med = {k: statistics.median(v) for k, v in runs.items()}
        spread = {k: [round(min(v), 2), round(max(v), 2)] for k, v in runs.items()}
        out["single"] = {
            "bittorrent_s": round(med["single_bt"], 2),
            "bittorrent_min_max": spread["single_bt"],
            "http_s": round(med["single_http"], 2),
            "http_min_max": spread["single_http"],
            "speed_vs_http": round(med["single_http"] / med["single_bt"], 3),
        }
        out["one_to_four"] = {
            "bittorrent_s": round(med["swarm_bt"], 2),
            "bittorrent_min_max": spread["swarm_bt"],
            "http_s": round(med["swarm_http"], 2),
            "http_min_max": spread["swarm_http"],
            "time_vs_http": round(med["swarm_bt"] / med["swarm_http"], 3),
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
