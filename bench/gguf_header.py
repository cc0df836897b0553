#!/usr/bin/env python3
"""Benchmark: silnode.gguf.read_header against gguf.GGUFReader on big-vocabulary headers.

    python bench/gguf_header.py [--json] [--skip-reader]

Writes 32k- and 262k-token GGUFs (tests/ggufgen.py: make_big_vocab_gguf) into a temp dir and times
reading their headers: best of 3 for silnode, best of 2 for gguf.GGUFReader (~10 s on 262k tokens).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # ggufgen: the test-model generator
try:
    import silnode  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT))

from silnode.gguf import read_header  # noqa: E402


def best_of(n: int, fn) -> float:
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ap.add_argument("--skip-reader", action="store_true", help="time silnode only (no gguf.GGUFReader)")
    a = ap.parse_args()

    import gguf
    import ggufgen  # tests/ggufgen.py (the test-model generator)

    results = []
    with tempfile.TemporaryDirectory(prefix="silnode-bench-") as tmp:
        for label, n_vocab in (("32k", 32000), ("262k", 262144)):
            path = Path(tmp) / f"vocab-{n_vocab}.gguf"
            ggufgen.make_big_vocab_gguf(path, n_vocab=n_vocab)
            h = read_header(path)  # warm the page cache, and check the result
            assert h.metadata["tokenizer.ggml.tokens"].length == n_vocab
            ours = best_of(3, lambda p=path: read_header(p))
            row = {
                "vocab": n_vocab,
                "label": label,
                "file_bytes": path.stat().st_size,
                "header_bytes": h.data_offset,
                "silnode_s": round(ours, 4),
            }
            if not a.skip_reader:
                theirs = best_of(2, lambda p=path: gguf.GGUFReader(p))
                row["gguf_reader_s"] = round(theirs, 3)
                row["speedup"] = round(theirs / ours, 1)
            results.append(row)

    out = {
        "benchmark": "gguf_header",
        "python": platform.python_version(),
        "gguf": version("gguf"),
        "machine": platform.machine(),
        "results": results,
    }
    if a.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{'vocab':>7} {'file MB':>8} {'header MB':>10} {'silnode s':>10} {'GGUFReader s':>13} {'speedup':>8}")
    for r in results:
        print(
            f"{r['label']:>7} {r['file_bytes'] / 1e6:8.1f} {r['header_bytes'] / 1e6:10.1f} {r['silnode_s']:10.4f} "
            f"{r.get('gguf_reader_s', float('nan')):13.2f} {r.get('speedup', float('nan')):7.0f}x"
        )
    for r in results:
        if "speedup" in r:
            print(
                f"{r['label']} vocab: silnode {r['silnode_s']:.3f} s, gguf.GGUFReader {r['gguf_reader_s']:.1f} s, "
                f"{r['speedup']:.0f}x faster"
            )
        else:
            print(f"{r['label']} vocab: silnode {r['silnode_s']:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
