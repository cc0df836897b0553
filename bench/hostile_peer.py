#!/usr/bin/env python3
"""How often does one hostile peer end a hybrid (v1+v2) download? Failure rate with what a node does (both
hash checks, and the recovery from libtorrent's "v1 and v2 hashes do not describe the same data"), without
that recovery (what a node did before it), and with SHA-256 checks only (libtorrent's disable_v1_hashes, off).

    python bench/hostile_peer.py [--runs 30] [--hogs 1] [--mode all|default|no-recovery|v2-only] [--json]

Each run is the swarm of tests/integration/test_swarm.py's bad-peer test, built fresh: an honest node shares a
16 MiB model (upload capped at 4 MiB/s), an evil libtorrent session seeds the same torrent with every piece
altered on disk (after its own check, so it serves bad bytes), listening on its own address (127.0.0.2:
libtorrent bans by address, so a ban of it must not hit the honest peer on 127.0.0.1), and a third node
fetches the model by its bare infohash (metadata from the peers, so no piece layers up front) from both. ``--hogs`` busy-loop processes run
for the whole bench: the failure depends on timing, and load is what exposes it.

"default": the download verifies both SHA-1 and SHA-256 (libtorrent's default for a hybrid, and silnode's);
libtorrent stops it with "v1 and v2 hashes do not describe the same data" in some runs, and the distribution
adds it again (``DistributionService._recover``, at most ``MAX_RECOVERIES`` times). "no-recovery": the same
with that recovery off (``MAX_RECOVERIES = 0``): such a run ends in error. "v2-only": SHA-256 only
(``silnode.torrent.create.HYBRID_V2_ONLY``; see the comment there for why it is off). A run counts as a
success when the transfer is ``done`` and the stored file's SHA-256 is the model's.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from ggufgen import make_sized_gguf  # noqa: E402

import silnode.distribution as distribution  # noqa: E402
from silnode.config import load_config  # noqa: E402
from silnode.node import Node  # noqa: E402
from silnode.store import sha256_file  # noqa: E402
from silnode.torrent import create as tcreate  # noqa: E402
from silnode.torrent.events import TorrentChecked  # noqa: E402
from silnode.torrent.session import TorrentSession  # noqa: E402

RUN_TIMEOUT = float(os.environ.get("HOSTILE_RUN_TIMEOUT", "180"))
DEFAULT_RECOVERIES = distribution.MAX_RECOVERIES

# busy-loops until its parent is gone, so a killed run leaves no hog behind
HOG = "import os\np = os.getppid()\nwhile os.getppid() == p:\n    pass"


async def _node(base: Path, label: str, **overrides) -> Node:
    cfg = load_config(base / label, overrides={"daemon.port": 0, "storage.min_free_bytes": 0, **overrides})
    node = Node(cfg)
    await node.start()
    return node


async def one_run(base: Path, src: Path) -> tuple[bool, str, float, int]:
    """One evil-peer download; returns (completed with the right bytes, outcome text, seconds, recoveries)."""
    nodes: list[Node] = []
    evil = None
    try:
        honest = await _node(base, "honest", **{"network.upload_rate_limit": 4 << 20})
        nodes.append(honest)
        task = honest.models.share("alice/m", path=str(src), license="mit")
        await honest.tasks.wait(task)
        infohash = task.result["infohash"]
        torrent = (honest.store.model_dir("alice/m") / ".silnode.torrent").read_bytes()
        evil_dir = base / "evil"
        evil_dir.mkdir()
        shutil.copy(src, evil_dir / src.name)
        evil_net = dataclasses.replace(honest.config.network, listen_address="127.0.0.2", listen_port=0)
        evil = TorrentSession(evil_net)
        await evil.start()
        checked = evil.expect(lambda e: isinstance(e, TorrentChecked))
        await evil.add_seed(torrent, evil_dir, seed_mode=False)
        await asyncio.wait_for(checked, 60)
        with open(evil_dir / src.name, "r+b") as fh:
            for off in range(4096, src.stat().st_size, 64 * 1024):
                fh.seek(off)
                fh.write(b"\xde\xad\xbe\xef")
        leech = await _node(base, "leech")
        nodes.append(leech)
        peers = (f"127.0.0.2:{evil.listen_port()}", f"127.0.0.1:{honest.distribution.session.listen_port()}")
        t0 = time.monotonic()
        t = await leech.distribution.download(infohash, peers=peers, name="bob/m", force=True)
        try:
            await asyncio.wait_for(leech.distribution.wait(t.id), RUN_TIMEOUT)
        except TimeoutError:
            return False, f"stuck in {t.state} after {RUN_TIMEOUT:.0f} s", time.monotonic() - t0, t.recovered
        took = time.monotonic() - t0
        if t.state != "done":
            return False, f"{t.state}: {t.error}", took, t.recovered
        got = sha256_file(leech.store.model_dir("bob/m") / src.name)
        ok = got == sha256_file(src)
        honest_banned = peers[1] in t.banned_peers
        note = f" ({len(t.banned_peers)} ban(s){', honest peer banned too' if honest_banned else ''}"
        note += f", {t.recovered} recovery(ies))" if t.recovered else ")"
        return ok, ("done" if ok else "done with WRONG bytes") + note, took, t.recovered
    finally:
        if evil is not None:
            await evil.stop()
        for n in reversed(nodes):
            await n.stop()


async def series(mode: str, runs: int, src: Path, verbose: bool) -> dict:
    tcreate.HYBRID_V2_ONLY = mode == "v2-only"
    distribution.MAX_RECOVERIES = 0 if mode == "no-recovery" else DEFAULT_RECOVERIES
    ok, outcomes, times, recoveries = 0, [], [], []
    for i in range(runs):
        with tempfile.TemporaryDirectory(prefix="silnode-hostile-") as tmp:
            good, what, took, rec = await one_run(Path(tmp), src)
        ok += good
        outcomes.append(what)
        times.append(took)
        recoveries.append(rec)
        if verbose:
            print(f"  {mode} run {i + 1:2d}/{runs}: {what} ({took:.1f} s)", flush=True)
    failed = runs - ok
    return {
        "mode": mode,
        "runs": runs,
        "completed": ok,
        "failed": failed,
        "failure_rate": failed / runs,
        "median_s": sorted(times)[len(times) // 2],
        "failures": [o for o in outcomes if not o.startswith("done")],
        "honest_banned": sum("honest peer banned" in o for o in outcomes),
        "runs_recovered": sum(1 for r in recoveries if r),
        "recoveries": sum(recoveries),
        "max_recoveries_in_a_run": max(recoveries, default=0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--hogs", type=int, default=1, help="busy-loop processes for the whole bench (CPU load)")
    ap.add_argument("--mode", choices=("all", "default", "no-recovery", "v2-only"), default="default")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(args.hogs)]
    try:
        with tempfile.TemporaryDirectory(prefix="silnode-hostile-src-") as tmp:
            src = make_sized_gguf(Path(tmp) / "m.gguf", 16 << 20, seed=2)
            modes = ["default", "no-recovery", "v2-only"] if args.mode == "all" else [args.mode]
            results = [asyncio.run(series(m, args.runs, src, not args.json)) for m in modes]
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    if args.json:
        print(json.dumps({"hogs": args.hogs, "results": results}, indent=2))
        return
    for r in results:
        print(
            f"{r['mode']:>6}: {r['completed']}/{r['runs']} completed, failure rate {r['failure_rate']:.0%}, "
            f"median {r['median_s']:.1f} s, honest peer banned in {r['honest_banned']}, "
            f"recovered in {r['runs_recovered']} run(s) ({r['recoveries']} in all, at most "
            f"{r['max_recoveries_in_a_run']} in one); "
            f"failures: {sorted(set(r['failures'])) or 'none'}"
        )


if __name__ == "__main__":
    main()
