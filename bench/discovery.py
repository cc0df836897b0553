#!/usr/bin/env python3
"""Benchmark: catalog discovery.

    python bench/discovery.py [--repeat 5] [--entries 100000] [--json]

1. Publish -> visible: node A (with an identity) and node B (following A) on a private DHT of three real
   libtorrent sessions on loopback, all in this process; A shares one more model, and the clock runs from
   the end of the share until B's merged index holds A's new catalog (A's publish, the BEP 46 put, B's
   pointer poll, the catalog-torrent fetch, the checks). discovery.refresh_interval = 1 s here; the
   public-DHT default is 600 s. Target: <= 5 s.
2. discover over N merged entries (100 publishers x N/100) vs a plain SQLite ``LIKE '%…%'`` over the same
   rows in an in-memory table, both returning the rows sorted by name; median of --repeat, min-max, ratio.
3. Catalog bytes per 1,000 entries (signed, canonical JSON, with and without each entry's model shape).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # ggufgen (test models) and the private-DHT helper
sys.path.insert(0, str(ROOT / "tests" / "discovery"))
try:
    import silnode  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT))

from silnode.discovery.document import Catalog, Entry, build_catalog  # noqa: E402
from silnode.discovery.index import Index  # noqa: E402
from silnode.identity import Identity  # noqa: E402

QUANTS = ["Q4_K_M", "Q5_K_M", "Q8_0", "Q4_0", "F16"]
FAMILIES = ["llama", "qwen", "gemma", "mistral", "phi", "granite", "olmo", "falcon"]


def fake_entry(i: int, publisher: str = "", shape: dict | None = None) -> Entry:
    fam = FAMILIES[i % len(FAMILIES)]
    quant = QUANTS[i % len(QUANTS)]
    name = f"org{i % 997}/{fam}-{(i * 7919) % 100000}-{quant.lower()}"
    ih = f"{(i * 2654435761) % (1 << 160):040x}"
    size = 100_000_000 + (i * 104729) % 8_000_000_000
    return Entry(
        name=name,
        size=size,
        files=({"path": f"{fam}-{i}.gguf", "size": size, "sha256": f"{i:064x}"},),
        infohash=ih,
        magnet=f"magnet:?xt=urn:btih:{ih}&dn={name}",
        arch=fam,
        params=1_000_000_000 + i,
        quant=quant,
        context_length=8192,
        memory=size + 500_000_000,
        license="apache-2.0",
        tags=(fam, "chat"),
        shape=shape,
        publisher=publisher,
    )


def stats(times: list[float]) -> dict:
    return {
        "median_ms": round(statistics.median(times) * 1000, 3),
        "min_ms": round(min(times) * 1000, 3),
        "max_ms": round(max(times) * 1000, 3),
        "runs": len(times),
    }


def bench_search(n: int, repeat: int) -> dict:
    per = max(1, n // 100)
    cats = []
    for p in range(100):
        pub = f"{p:064x}"
        cats.append(Catalog(pub, 1, "t", tuple(fake_entry(p * per + i, pub) for i in range(per))))
    index = Index(cats)
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE e (name TEXT, publisher TEXT, quant TEXT, size INTEGER, tags TEXT, infohash TEXT)")
    db.executemany(
        "INSERT INTO e VALUES (?,?,?,?,?,?)",
        [
            (r.entry.name, r.entry.publisher, r.entry.quant, r.entry.size, ",".join(r.entry.tags), r.entry.infohash)
            for r in index.rows
        ],
    )
    db.commit()
    queries = ["llama-7", "qwen", "zzz-no-match", "org12/"]
    ours, sql = [], []
    for _ in range(repeat):
        for q in queries:
            t = time.perf_counter()
            a = index.search(q)
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            b = db.execute(
                "SELECT name, publisher FROM e WHERE name LIKE ? ORDER BY name, publisher", (f"%{q}%",)
            ).fetchall()
            sql.append(time.perf_counter() - t)
            assert len(a) == len(b), (q, len(a), len(b))
    o, s = stats(ours), stats(sql)
    return {
        "entries": len(index),
        "queries": queries,
        "discover": o,
        "sqlite_like": s,
        "ratio_median": round(o["median_ms"] / s["median_ms"], 2),
    }


def bench_bytes() -> dict:
    import ggufgen

    from silnode.fit.estimate import portable_shape
    from silnode.gguf import read_header

    with tempfile.TemporaryDirectory() as d:
        shape = portable_shape(read_header(ggufgen.make_gguf(Path(d) / "m.gguf")))
    ident = Identity.generate()
    plain = build_catalog(ident, [fake_entry(i) for i in range(1000)], seq=1, updated="2026-01-01T00:00:00Z")
    shaped = build_catalog(ident, [fake_entry(i, shape=shape) for i in range(1000)], seq=1, updated="x")
    return {
        "per_1000_entries_bytes": len(plain.to_bytes()),
        "per_1000_entries_with_shape_bytes": len(shaped.to_bytes()),
    }


async def bench_visible(repeat: int) -> dict:
    import ggufgen
    from dht import start_dht

    from silnode.config import load_config
    from silnode.node import Node

    tmp = Path(tempfile.mkdtemp(prefix="silnode-bench-disc-"))
    sessions = await start_dht(3)
    boot = [f"127.0.0.1:{s.listen_port()}" for s in sessions]

    def cfg(label: str):
        return load_config(
            tmp / label,
            environ={},
            overrides={
                "daemon.port": 0,
                "storage.min_free_bytes": 0,
                "network.listen_address": "127.0.0.1",
                "network.listen_port": 0,
                "network.dht_enabled": True,
                "network.dht_bootstrap": boot,
                "network.dht_private": True,
                "network.lsd_enabled": False,
                "network.upnp_enabled": False,
                "network.natpmp_enabled": False,
                "discovery.refresh_interval": 1,
            },
        )

    ident = Identity.generate()
    a, b = Node(cfg("a"), identity=ident), Node(cfg("b"))
    await a.start()
    await b.start()
    pub = ident.catalog.public_key_hex
    times = []
    try:

        async def share(i: int) -> None:
            path = ggufgen.make_gguf(tmp / f"m{i}.gguf", seed=i)
            task = a.models.share(f"bench/m{i}", path=str(path), license="mit")
            await a.tasks.wait(task)
            assert task.state == "done", task.error

        await share(0)
        while pub not in a.discovery.catalogs:
            await asyncio.sleep(0.01)
        await b.discovery.follow(pub)
        for i in range(1, repeat + 1):
            await share(i)
            t = time.perf_counter()
            want = i + 1  # model m0 made seq 1; each further share adds one
            while pub not in b.discovery.catalogs or b.discovery.catalogs[pub].seq < want:
                if time.perf_counter() - t > 120:
                    raise RuntimeError("B never saw A's update")
                await asyncio.sleep(0.01)
            times.append(time.perf_counter() - t)
    finally:
        await b.stop()
        await a.stop()
        for s in sessions:
            await s.stop(save_resume=False)
    return {
        "publish_to_visible_s": {
            "median": round(statistics.median(times), 2),
            "min": round(min(times), 2),
            "max": round(max(times), 2),
            "runs": len(times),
        },
        "refresh_interval_s": 1,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = {
        "visible": asyncio.run(bench_visible(args.repeat)),
        "search": bench_search(args.entries, args.repeat),
        "bytes": bench_bytes(),
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    v, s, b = out["visible"]["publish_to_visible_s"], out["search"], out["bytes"]
    print("discovery")
    print(
        f"  publish on A -> visible on B (private DHT, 3 bootstrap nodes, refresh 1 s): median {v['median']} s "
        f"(min {v['min']}, max {v['max']}, {v['runs']} runs; target <= 5 s)"
    )
    print(
        f"  discover over {s['entries']:,} merged entries: median {s['discover']['median_ms']} ms "
        f"(min {s['discover']['min_ms']}, max {s['discover']['max_ms']}) vs SQLite LIKE median "
        f"{s['sqlite_like']['median_ms']} ms (min {s['sqlite_like']['min_ms']}, max {s['sqlite_like']['max_ms']}); "
        f"ratio {s['ratio_median']}x (target <= 1.5x)"
    )
    print(
        f"  catalog bytes per 1,000 entries: {b['per_1000_entries_bytes']:,} "
        f"({b['per_1000_entries_with_shape_bytes']:,} with each model's shape)"
    )


if __name__ == "__main__":
    main()
