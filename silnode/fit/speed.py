"""How fast a model will generate on this machine: tokens per second, from memory bandwidth.

Generating one token reads every weight the forward pass multiplies by (all layers, and the output matrix)
once, plus the KV cache so far. Decode is memory-bound, so

    seconds per token = bytes on the GPU / GPU bandwidth + bytes on the CPU / CPU bandwidth + a fixed cost

Measured here (bench/speed_estimate.py prints the error table, README): on a 2-vCPU Xeon the estimate
from numpy's one-core read rate (9.5-11.7 GB/s) is 12-45 % below llama.cpp's 2-thread generation for 0.2-0.4
GiB of weights: low, the safe side for the fit.min_tokens_per_s cut (a 2-thread probe errs up to 66 % high,
see measure_cpu_bandwidth). On an H100 (research/gpu-notes.md) a 1.1 GiB q8_0 model ran at 639 tok/s, which
70 % of the card's 3.35 TB/s plus a 1 ms launch floor per token predicts within 5 %.

* The CPU bandwidth is measured once (a numpy reduction over a buffer far larger than the caches, best of 3,
  ~0.1 s) and cached in SILNODE_HOME/cache/bandwidth.json, keyed by the CPU's name and count.
* A GPU's comes from NVML (memory bus width x memory clock x 2, the DDR factor), see fit/probes.py; a GPU
  NVML does not describe has no estimate (None) rather than a guess.
* The fixed cost per token is what a tiny model shows: sampling, Python and one graph launch.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from silnode.fit.estimate import ModelShape

CPU_FIXED_SECONDS = 0.15e-3  # per token on a CPU: 7,000 tok/s measured on the 0.7 MB generated model
GPU_FIXED_SECONDS = 1.0e-3  # per token with a GPU in the loop: the H100's floor for small models
GPU_EFFICIENCY = 0.7  # share of the nominal GPU bandwidth decode reaches (H100, research/gpu-notes.md)
KV_FILL = 512  # tokens of context a typical chat turn has read by the middle of its answer
PROBE_BYTES = 256 << 20  # well above any L3 cache, so the probe reads DRAM
USABLE = "usable"
SLOW = "slow"

_lock = threading.Lock()
_cpu_bandwidth: float | None = None


def bytes_per_token(shape: ModelShape, *, kv_tokens: int = KV_FILL) -> tuple[list[int], int]:
    """(bytes read per repeating layer, bytes of the output layer) to generate one token.

    token_embd is only gathered (one row per token) unless the embeddings are tied, when the output layer
    reads all of it. Layers without a per-layer size (shapes from published facts) share the rest evenly."""
    out = shape.token_embd_bytes if shape.tied_embeddings else shape.output_bytes
    layers = layer_weight_bytes(shape)
    kv_per_cell = [h * (shape.head_dim_k + shape.head_dim_v) * 2 for h in shape.n_head_kv]
    return [w + kv * kv_tokens for w, kv in zip(layers, kv_per_cell)], out


def layer_weight_bytes(shape: ModelShape) -> list[int]:
    """Weight bytes of each repeating layer: the header's own sizes, or an even share of what is neither
    token_embd nor the output layer."""
    if len(shape.layer_bytes) == shape.n_layer:
        return list(shape.layer_bytes)
    rest = shape.tensor_bytes - shape.token_embd_bytes - (0 if shape.tied_embeddings else shape.output_bytes)
    return [max(rest, 0) // max(shape.n_layer, 1)] * shape.n_layer


def tokens_per_second(
    shape: ModelShape, *, gpu_layers: int = 0, cpu_bandwidth: float | None, gpu_bandwidth: float | None = None
) -> float | None:
    """Estimated generation tok/s with `gpu_layers` of the model's layers on the GPU (llama.cpp counts:
    n_layer + 1 puts the output layer there too; the last layers are the ones offloaded). None when a
    bandwidth it needs is unknown."""
    layers, out = bytes_per_token(shape)
    n = shape.n_layer
    on_gpu = min(max(gpu_layers, 0), n)
    gpu_bytes = sum(layers[n - on_gpu :]) + (out if gpu_layers > n else 0)
    cpu_bytes = sum(layers[: n - on_gpu]) + (0 if gpu_layers > n else out)
    seconds = 0.0
    if gpu_bytes:
        if not gpu_bandwidth:
            return None
        seconds += gpu_bytes / (gpu_bandwidth * GPU_EFFICIENCY) + GPU_FIXED_SECONDS
    if cpu_bytes:
        if not cpu_bandwidth:
            return None
        seconds += cpu_bytes / cpu_bandwidth
    seconds += 0.0 if gpu_bytes else CPU_FIXED_SECONDS
    return 1.0 / seconds if seconds > 0 else None


def speed_class(tok_s: float | None, minimum: float) -> str:
    """ "usable" at or above `minimum` tok/s (fit.min_tokens_per_s), else "slow"; unknown speeds are usable
    (no estimate is no reason to refuse)."""
    return SLOW if tok_s is not None and tok_s < minimum else USABLE


def probe_threads() -> int:
    """The threads a worker decodes with by default: the CPUs this process may run on (serving/worker.py)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # no sched_getaffinity on macOS
        return max(os.cpu_count() or 1, 1)


def measure_cpu_bandwidth(n_bytes: int = PROBE_BYTES, repeats: int = 3, threads: int = 1) -> float:
    """Bytes per second `threads` cores read from RAM together: the best of `repeats` rounds in which each
    thread sums its own slice of an `n_bytes` buffer (numpy releases the GIL inside the reduction, and a
    barrier starts the threads together).

    The estimate uses ONE core on purpose. On the 2-vCPU Xeon measured (bench/speed_estimate.py, README), two
    threads read 22.5 GB/s, yet llama.cpp's 2-thread decode of a 0.2-0.4 GiB model streams only 9-13 GB/s:
    with few cores decode is bound by compute, not memory, and the 2-thread figure would promise 61-121 %
    more tokens/s than llama.cpp makes. One core's rate (11.7 GB/s) errs a little low, the safe side for the
    fit.min_tokens_per_s cut. (Many-core servers, where decode really is memory-bound, are the case where
    this under-promises most; the GPU path has its own bandwidth.)"""
    import numpy as np  # llama-cpp-python's dependency; imported here so `silnode --version` stays light

    n = max(threads, 1)
    buf = np.ones(n_bytes // 8, dtype=np.uint64)
    parts = np.array_split(buf, n)
    best = 0.0
    for _ in range(repeats):
        start = threading.Barrier(n + 1)

        def read(part: Any, start: threading.Barrier = start) -> None:
            start.wait()
            np.add.reduce(part)

        workers = [threading.Thread(target=read, args=(part,), daemon=True) for part in parts]
        for w in workers:
            w.start()
        start.wait()
        t0 = time.perf_counter()
        for w in workers:
            w.join()
        dt = time.perf_counter() - t0
        best = max(best, buf.nbytes / dt) if dt > 0 else best
    return best


def _machine_key() -> str:
    from silnode.fit.probes import _cpu_name

    return f"{_cpu_name()} x{os.cpu_count()}"


def cpu_bandwidth(home: Path | None = None) -> float:
    """This machine's CPU read bandwidth (bytes/s): measured once per machine and cached under `home`."""
    global _cpu_bandwidth
    with _lock:
        if _cpu_bandwidth is not None:
            return _cpu_bandwidth
        cache = home / "cache" / "bandwidth.json" if home is not None else None
        key = _machine_key()
        if cache is not None:
            try:
                data = json.loads(cache.read_text())
                if data.get("machine") == key and float(data["cpu_bytes_per_s"]) > 0:
                    _cpu_bandwidth = float(data["cpu_bytes_per_s"])
                    return _cpu_bandwidth
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                pass  # no cache, or a damaged one: measure again
        _cpu_bandwidth = measure_cpu_bandwidth()
        if cache is not None:
            from silnode.fsutil import atomic_write_json

            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_json(cache, {"machine": key, "cpu_bytes_per_s": _cpu_bandwidth, "at": time.time()})
            except OSError:
                pass  # a read-only home only costs the next process 0.1 s
        return _cpu_bandwidth


def describe(tok_s: float | None, minimum: float) -> dict[str, Any]:
    return {
        "tokens_per_s": round(tok_s, 1) if tok_s is not None else None,
        "speed": speed_class(tok_s, minimum),
        "min_tokens_per_s": minimum,
    }
