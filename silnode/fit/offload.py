"""Where a model's layers go: all on one GPU, split over several, partly on the GPU and the rest on the CPU,
or all on the CPU, and how fast each choice will generate.

    plan_offload(shape, gpus, cpu, ...) -> OffloadPlan

llama.cpp offloads the *last* `n_gpu_layers` repeating layers (with their KV cache); n_layer + 1 also puts
the output layer on the GPU. What a GPU then holds, from the full-offload estimate (fit/estimate.py):

    gpu(k) = weights and KV of the k offloaded layers [+ the output layer when k > n_layer]
             + the compute buffer + the CUDA context + pool headroom          (k > 0)
    cpu(k) = the CPU estimate less the weights (with their CPU repack copies) and KV of those layers

For k = n_layer + 1 this is exactly the full-offload estimate. The auto choice (serve.n_gpu_layers = -1):
the whole model on the GPU with the most free memory; else, with several GPUs, split by free memory
(llama.cpp's tensor_split), every GPU paying its own context and compute buffer; else the largest k that
fits the best GPU while the rest fits in RAM; else the CPU. serve.n_gpu_layers >= 0 forces k,
serve.main_gpu >= 0 pins one GPU. A llama.cpp build that cannot offload always plans the CPU.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from silnode.fit.devices import Device
from silnode.fit.estimate import ESTIMATE_ERROR, MemoryEstimate, ModelShape, estimate, fmt_size, keep_free, room_for
from silnode.fit.speed import layer_weight_bytes, tokens_per_second

GPU, SPLIT, PARTIAL, CPU = "gpu", "split", "partial", "cpu"


@dataclass(frozen=True)
class OffloadPlan:
    mode: str  # "gpu" (all on one GPU), "split" (all on several GPUs), "partial" (GPU + CPU), "cpu"
    n_gpu_layers: int  # what the worker gives llama.cpp: 0 = none, n_layer + 1 = all, output layer included
    n_layer: int
    main_gpu: int | None  # index of the GPU in llama.cpp's order (CUDA<i>); None on the CPU
    tensor_split: tuple[float, ...] | None  # per GPU index, the share of layers (split mode only)
    per_device: dict[str, int]  # bytes each device needs
    fits: bool
    reason: str
    tokens_per_s: float | None  # estimated generation speed of this plan (None: a bandwidth is unknown)
    best_tokens_per_s: float | None = None  # the same model wholly on the best GPU (for the slowdown)
    notes: tuple[str, ...] = field(default=())

    @property
    def slowdown(self) -> str | None:
        """None when the model runs wholly on its best device; else "moderate" (at least half the full-GPU
        speed) or "heavy"."""
        if self.mode in (GPU, SPLIT) or self.best_tokens_per_s is None:
            return None
        if self.tokens_per_s is None:
            return "heavy"
        return "moderate" if self.tokens_per_s >= 0.5 * self.best_tokens_per_s else "heavy"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["per_device"] = dict(self.per_device)
        d["tensor_split"] = list(self.tensor_split) if self.tensor_split else None
        d["notes"] = list(self.notes)
        d["slowdown"] = self.slowdown
        return d


@dataclass(frozen=True)
class _Layers:
    """The per-layer and fixed parts of a model's need on a GPU and on the CPU."""

    n: int
    gpu_layer: list[int]  # weights + KV of each repeating layer on a GPU
    cpu_layer: list[int]  # the same layer on the CPU (CPU_REPACK copies included)
    gpu_out: int  # what full offload adds beyond the layers (output layer or tied embeddings, norms)
    cpu_out: int
    gpu_fixed: int  # compute buffer + CUDA context + pool headroom, on every GPU used
    cpu_total: int
    cpu_host_min: int  # what stays in RAM even at full offload

    def gpu(self, k: int, *, layers: int | None = None) -> int:
        """GPU bytes for k = n_gpu_layers (the last min(k, n) layers); `layers`: only that many of them."""
        if k <= 0:
            return 0
        on = min(k, self.n) if layers is None else layers
        return sum(self.gpu_layer[self.n - on :]) + (self.gpu_out if k > self.n else 0) + self.gpu_fixed

    def cpu(self, k: int) -> int:
        on = min(max(k, 0), self.n)
        moved = sum(self.cpu_layer[self.n - on :]) + (self.cpu_out if k > self.n else 0)
        return max(self.cpu_total - moved, self.cpu_host_min)


def _layers(shape: ModelShape, est_gpu: MemoryEstimate, est_cpu: MemoryEstimate) -> _Layers:
    n = shape.n_layer
    weights = layer_weight_bytes(shape)
    kv = []
    for il in range(n):
        cells = est_gpu.kv_cells_swa if shape.swa_layers[il] and est_gpu.kv_cells_swa is not None else est_gpu.kv_cells
        kv.append(shape.n_head_kv[il] * (shape.head_dim_k + shape.head_dim_v) * cells * 2)
    repack = 1 + (est_cpu.repack_bytes / shape.tensor_bytes if shape.tensor_bytes else 0)
    return _Layers(
        n=n,
        gpu_layer=[w + k for w, k in zip(weights, kv)],
        cpu_layer=[int(w * repack) + k for w, k in zip(weights, kv)],
        gpu_out=max(est_gpu.weights_bytes - sum(weights), 0),
        cpu_out=int(shape.output_bytes * repack),
        gpu_fixed=est_gpu.total_bytes - est_gpu.weights_bytes - est_gpu.kv_bytes,
        cpu_total=est_cpu.total_bytes,
        cpu_host_min=est_gpu.host_bytes,
    )


def _capacity(free: int, margin: float | None) -> int:
    """The biggest need the fit rule admits on a device with `free` bytes free."""
    return max(int((free - keep_free(free, margin)) / (1 + ESTIMATE_ERROR)), 0)


def plan_offload(
    shape: ModelShape,
    gpus: Sequence[Device],
    cpu: Device | None,
    *,
    free: dict[str, int] | None = None,
    n_ctx: int | None = None,
    flash_attn: bool = False,
    n_gpu_layers: int = -1,
    main_gpu: int = -1,
    offload_supported: bool = True,
    cpu_bandwidth: float | None = None,
    margin: float | None = None,
) -> OffloadPlan:
    """Plan where the model runs. `gpus` in llama.cpp's order (CUDA0, CUDA1, ...); `free`: device id ->
    bytes free for this model (default: each device's free_bytes); GPU bandwidths from Device.bandwidth."""
    free = dict(free or {})
    for d in [*gpus, *([cpu] if cpu else [])]:
        free.setdefault(d.id, d.free_bytes or 0)
    est_cpu = estimate(shape, n_ctx=n_ctx, flash_attn=flash_attn, gpu=False)
    usable = [(i, g) for i, g in enumerate(gpus) if g.usable]
    if main_gpu >= 0:
        usable = [(i, g) for i, g in usable if i == main_gpu]
    n = shape.n_layer
    cpu_free = free.get(cpu.id, 0) if cpu else 0

    def cpu_plan(reason: str = "", notes: tuple[str, ...] = ()) -> OffloadPlan:
        ok = cpu is not None and room_for(est_cpu.total_bytes, cpu_free, margin)
        why = (
            f"fits: needs {fmt_size(est_cpu.total_bytes)} at ctx {est_cpu.n_ctx}; {fmt_size(cpu_free)} free on CPU"
            if ok
            else f"needs {fmt_size(est_cpu.total_bytes)} at ctx {est_cpu.n_ctx}; {fmt_size(cpu_free)} free on CPU "
            f"(keeping {fmt_size(keep_free(cpu_free, margin))} + {ESTIMATE_ERROR:.0%} spare)"
        )
        return OffloadPlan(
            mode=CPU,
            n_gpu_layers=0,
            n_layer=n,
            main_gpu=None,
            tensor_split=None,
            per_device={"CPU": est_cpu.total_bytes},
            fits=ok,
            reason=f"{reason}; {why}" if reason else why,
            tokens_per_s=tokens_per_second(shape, cpu_bandwidth=cpu_bandwidth),
            best_tokens_per_s=best,
            notes=notes,
        )

    if not offload_supported or not usable or n_gpu_layers == 0:
        best = None
        why = ""
        if gpus and not offload_supported:
            why = "this llama.cpp build cannot offload to a GPU"
        elif gpus and n_gpu_layers == 0:
            why = "serve.n_gpu_layers is 0"
        return cpu_plan(why)

    i_best, g_best = max(usable, key=lambda ig: free[ig[1].id])
    est_gpu = estimate(shape, n_ctx=n_ctx, flash_attn=flash_attn, gpu=True, device=g_best.id)
    parts = _layers(shape, est_gpu, est_cpu)
    gpu_bw = g_best.bandwidth
    best = tokens_per_second(shape, gpu_layers=n + 1, cpu_bandwidth=cpu_bandwidth, gpu_bandwidth=gpu_bw)

    def single(k: int, note: str = "") -> OffloadPlan:
        k = min(k, n + 1)
        need_gpu, need_cpu = parts.gpu(k), parts.cpu(k)
        gfree = free[g_best.id]
        ok = room_for(need_gpu, gfree, margin) and cpu is not None and room_for(need_cpu, cpu_free, margin)
        mode = GPU if k > n else PARTIAL
        where = "all layers" if k > n else f"{min(k, n)} of {n} layers"
        reason = (
            f"{'fits' if ok else 'does not fit'}: {where} on {g_best.id} ({fmt_size(need_gpu)} of "
            f"{fmt_size(gfree)} free)"
            + ("" if k > n else f", the rest on the CPU ({fmt_size(need_cpu)} of {fmt_size(cpu_free)} free)")
            + f" at ctx {est_gpu.n_ctx}"
        )
        return OffloadPlan(
            mode=mode,
            n_gpu_layers=k,
            n_layer=n,
            main_gpu=i_best,
            tensor_split=None,
            per_device={g_best.id: need_gpu, "CPU": need_cpu},
            fits=ok,
            reason=f"{reason}; {note}" if note else reason,
            tokens_per_s=tokens_per_second(shape, gpu_layers=k, cpu_bandwidth=cpu_bandwidth, gpu_bandwidth=gpu_bw),
            best_tokens_per_s=best,
        )

    if n_gpu_layers > 0:  # forced by serve.n_gpu_layers
        return single(n_gpu_layers, "serve.n_gpu_layers sets the split")

    full = single(n + 1)
    if full.fits:
        return full

    if len(usable) > 1:
        plan = _split(parts, usable, free, margin, cpu, cpu_free, shape, cpu_bandwidth, best, est_gpu.n_ctx)
        if plan is not None:
            return plan

    # partial: the most layers that fit the best GPU while the rest fits in RAM
    fitting = [k for k in range(n, 0, -1) if room_for(parts.gpu(k), free[g_best.id], margin)]
    for k in fitting:
        p = single(k, "the whole model does not fit the GPU: the largest split that fits")
        if p.fits:
            return p
    cpu_only = cpu_plan(f"not even one layer fits {g_best.id} beside its compute buffer")
    return cpu_only if cpu_only.fits else full


def _split(
    parts: _Layers,
    usable: list[tuple[int, Device]],
    free: dict[str, int],
    margin: float | None,
    cpu: Device | None,
    cpu_free: int,
    shape: ModelShape,
    cpu_bandwidth: float | None,
    best: float | None,
    n_ctx: int,
) -> OffloadPlan | None:
    """All layers over several GPUs, in proportion to what each can take beyond its own context and compute
    buffer (llama.cpp's tensor_split). None when they cannot hold the whole model together."""
    room = {i: _capacity(free[g.id], margin) - parts.gpu_fixed for i, g in usable}
    room = {i: r for i, r in room.items() if r > 0}
    layers_total = sum(parts.gpu_layer) + parts.gpu_out
    if not room or sum(room.values()) < layers_total:
        return None
    total_room = sum(room.values())
    n_gpus = max(i for i, _ in usable) + 1
    split = tuple(room.get(i, 0) / total_room for i in range(n_gpus))
    per_device = {g.id: parts.gpu_fixed + int(layers_total * split[i]) for i, g in usable if i in room}
    if cpu is not None:
        per_device["CPU"] = parts.cpu(parts.n + 1)
    main = max(room, key=lambda i: room[i])
    slowest = min((g.bandwidth for i, g in usable if i in room), default=None, key=lambda b: b or 0)
    return OffloadPlan(
        mode=SPLIT,
        n_gpu_layers=parts.n + 1,
        n_layer=parts.n,
        main_gpu=main,
        tensor_split=split,
        per_device=per_device,
        fits=cpu is None or room_for(per_device["CPU"], cpu_free, margin),
        reason=(
            "fits: all layers split over "
            + ", ".join(
                f"{g.id} {fmt_size(per_device[g.id])} of {fmt_size(free[g.id])}" for i, g in usable if i in room
            )
            + f" at ctx {n_ctx}"
        ),
        tokens_per_s=tokens_per_second(
            shape, gpu_layers=parts.n + 1, cpu_bandwidth=cpu_bandwidth, gpu_bandwidth=slowest
        ),
        best_tokens_per_s=best,
    )
