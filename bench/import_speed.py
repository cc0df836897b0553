#!/usr/bin/env python3
"""Import of a 1 GiB GGUF into the store (hardlink path and copy path) next to `cp` of the same file.

Run: python bench/import_speed.py [--size-mib 1024] [--runs 3] [--json]
Both import paths hash the file (SHA-256 for the manifest); the copy path also fsyncs, so `cp` is shown
alone and as `cp + sync`. Everything runs side by side in one process on the same (warm) file.
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from ggufgen import make_sized_gguf  # noqa: E402

from silnode.store import Store  # noqa: E402


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--dir", default=None, help="scratch dir (default: a temp dir under bench/)")
    a = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="import-bench-", dir=a.dir or ROOT / "bench"))
    try:
        src = scratch / "big.gguf"
        make_sized_gguf(src, a.size_mib << 20)
        src.read_bytes() if a.size_mib <= 2048 else None  # warm the page cache for every contender
        results: dict[str, list[float]] = {"cp": [], "cp + sync": [], "import (hardlink)": [], "import (copy)": []}
        for i in range(a.runs):
            dst = scratch / f"cp-{i}.gguf"
            results["cp"].append(timed(lambda: subprocess.run(["cp", str(src), str(dst)], check=True)))
            dst.unlink()
            results["cp + sync"].append(
                timed(lambda: subprocess.run(f"cp '{src}' '{dst}' && sync -f '{dst}'", shell=True, check=True))
            )
            dst.unlink()
            store = Store(scratch / f"store-{i}")
            store.ensure_dirs()
            results["import (hardlink)"].append(
                timed(lambda: store.import_files(store.resolve_sources(src), "bench/link"))
            )
            results["import (copy)"].append(
                timed(lambda: store.import_files(store.resolve_sources(src), "bench/copy", link=False))
            )
            shutil.rmtree(scratch / f"store-{i}")
        med = {k: statistics.median(v) for k, v in results.items()}
        out = {
            "size_mib": a.size_mib,
            "runs": a.runs,
            "median_s": {k: round(v, 3) for k, v in med.items()},
            "ratio_vs_cp": {k: round(med["cp"] / v, 2) for k, v in med.items()},
            "ratio_vs_cp_sync": {k: round(med["cp + sync"] / v, 2) for k, v in med.items()},
        }
        if a.json:
            print(json.dumps(out, indent=2))
        else:
            print(f"import of a {a.size_mib} MiB GGUF, median of {a.runs} (speed ratio: >1 is faster than the anchor)")
            print(f"{'method':<20} {'time s':>8} {'vs cp':>7} {'vs cp+sync':>11}")
            for k in results:
                print(f"{k:<20} {med[k]:>8.3f} {out['ratio_vs_cp'][k]:>6.2f}x {out['ratio_vs_cp_sync'][k]:>10.2f}x")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
