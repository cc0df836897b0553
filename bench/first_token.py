#!/usr/bin/env python3
"""Benchmark: time from `silnode up` (what `make run` runs, packages already built) to the first served token.

    python bench/first_token.py [--runs 1] [--json]

silnode: `silnode up --port 0` in a clean SILNODE_HOME without a terminal, as a newcomer's first run: it creates
the home and an identity (Argon2id keystore), starts the daemon, imports the starter model (Gemma-3-270M
Q4_K_M, assembled from its pip package and sha256-checked into the store), loads it in a llama.cpp worker
and prints the URLs; then one streamed /v1/completions request. The clock runs from the launch of `silnode up`
to the first token's SSE chunk; the time to the "node up" line is shown too.

Anchor, run right after in the same script: bare llama-cpp-python in a fresh process (the same GGUF already on
disk, the same threads and context): process launch, import, model load, first token of the same prompt.
That is the floor any server on this machine pays; the ratio says what silnode's first run adds (home,
identity, daemon, store import, worker process, HTTP).

Runs: --runs (default 1, as the README reports it: one run, labelled as such). Timings depend on the machine
and its load; the README says which.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Once upon a time"
THREADS = os.cpu_count() or 1
N_CTX = 4096  # serve.n_ctx's default, both sides

ANCHOR = r"""
import sys, time
t0 = float(sys.argv[2])
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=int(sys.argv[3]), n_threads=int(sys.argv[4]), verbose=False)
for chunk in llm.create_completion(sys.argv[5], max_tokens=8, stream=True):
    print(time.time() - t0, flush=True)
    break
"""


def silnode_run(workdir: Path) -> dict[str, float]:
    home = workdir / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SILNODE_")}
    env.update(SILNODE_HOME=str(home), SILNODE_SERVE__N_THREADS=str(THREADS))
    t0 = time.monotonic()
    p = subprocess.Popen(
        [sys.executable, "-m", "silnode", "up", "--port", "0"],
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stderr is not None
        log = []
        while True:  # `up` stays in front once the node serves
            line = p.stderr.readline()
            if not line:
                raise RuntimeError(f"silnode up exited ({p.wait()}): {''.join(log)[-2000:]}")
            log.append(line)
            if "Ctrl-C stops the node" in line:
                break
        t_up = time.monotonic() - t0
        port = json.loads((home / "daemon.json").read_text())["port"]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        body = {"model": "google/gemma-3-270m-q4_k_m", "prompt": PROMPT, "max_tokens": 8, "stream": True}
        conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"/v1/completions: {resp.status} {resp.read()[:500]!r}")
        while True:
            line = resp.readline()
            if not line:
                raise RuntimeError("the stream ended before a token")
            if line.startswith(b"data: ") and b'"text"' in line:
                t_token = time.monotonic() - t0
                break
        conn.close()
    finally:
        p.send_signal(2)  # Ctrl-C: `up` stops the daemon it started
        try:
            p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
    return {"up_s": t_up, "first_token_s": t_token}


def anchor_run(gguf: Path) -> float:
    t0 = time.time()
    out = subprocess.run(
        [sys.executable, "-c", ANCHOR, str(gguf), repr(t0), str(N_CTX), str(THREADS), PROMPT],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.split()[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    a = ap.parse_args()

    from silnode.serving import starter

    pkg = starter.package()
    silnode_runs, anchor_runs = [], []
    for _ in range(a.runs):
        with tempfile.TemporaryDirectory(prefix="silnode-first-token-") as tmp:
            silnode_runs.append(silnode_run(Path(tmp)))
        with tempfile.TemporaryDirectory(prefix="silnode-first-token-anchor-") as tmp:
            gguf = Path(pkg.assemble(Path(tmp) / pkg.MODEL_NAME, overwrite=True))
            anchor_runs.append(anchor_run(gguf))
            shutil.rmtree(tmp, ignore_errors=True)

    def stats(values: list[float]) -> dict[str, Any]:
        return {
            "median": round(statistics.median(values), 2),
            "min": round(min(values), 2),
            "max": round(max(values), 2),
        }

    result = {
        "runs": a.runs,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "load_avg_1min": round(os.getloadavg()[0], 1),  # this machine is shared: the timings depend on it
        "silnode_up_to_node_up_s": stats([r["up_s"] for r in silnode_runs]),
        "silnode_up_to_first_token_s": stats([r["first_token_s"] for r in silnode_runs]),
        "anchor_llama_cpp_first_token_s": stats(anchor_runs),
    }
    result["ratio_silnode_over_anchor"] = round(
        result["silnode_up_to_first_token_s"]["median"] / result["anchor_llama_cpp_first_token_s"]["median"], 2
    )
    if a.json:
        print(json.dumps(result, indent=2))
        return 0
    label = "one run" if a.runs == 1 else f"median (min-max) of {a.runs} runs"
    print(f"first served token after `silnode up` in a clean home, {label}; {result['machine']}, {result['date']}")
    print(f"  (1-min load average at the end: {result['load_avg_1min']})")

    def row(name: str, s: dict[str, Any]) -> None:
        spread = "" if a.runs == 1 else f"  ({s['min']}-{s['max']})"
        print(f"  {name:44} {s['median']:7.2f} s{spread}")

    row("silnode up -> node up (URLs printed)", result["silnode_up_to_node_up_s"])
    row("silnode up -> first token (streamed)", result["silnode_up_to_first_token_s"])
    row("anchor: bare llama-cpp-python -> first token", result["anchor_llama_cpp_first_token_s"])
    print(f"  silnode / anchor: {result['ratio_silnode_over_anchor']}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
