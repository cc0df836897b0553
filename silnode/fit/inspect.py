"""`inspect`: a GGUF's facts, its memory need, and whether it fits this machine's best device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from silnode.config import Config
from silnode.errors import NotFound
from silnode.fit import backend as llama_build
from silnode.fit.devices import HardwareReport
from silnode.fit.estimate import ModelShape, estimate, fmt_size, model_shape
from silnode.fit.hardware import probe_recent
from silnode.fit.offload import OffloadPlan, plan_offload
from silnode.fit.speed import cpu_bandwidth, describe
from silnode.gguf import facts_from_header, read_header
from silnode.names import is_valid_name
from silnode.serving.tools import tool_path
from silnode.store import Store


def resolve_model_path(config: Config, model: str) -> Path:
    """A .gguf path, or a store model's first file (part 1 of a split model carries the facts)."""

    path = Path(model).expanduser()
    store = Store(config.base_dir)
    # a store name wins over a relative path that happens to spell it ("etc/passwd" from a daemon in /), so a
    # caller allowed store names only (the API without admin) never reaches a file outside the store
    if path.is_file() and not (is_valid_name(model) and store.exists(model)):
        return path
    if is_valid_name(model):
        manifest = store.read_manifest(model)  # ModelNotFound (404) when absent
        return store.model_dir(model) / manifest.files[0].path
    raise NotFound(f"{model}: no such file or store model", hint="give a .gguf path or an org/model name")


def hardware_overrides(config: Config) -> dict[str, int] | None:
    hw = config.hardware
    caps = {k: v for k, v in (("ram_bytes", hw.ram_bytes), ("vram_bytes", hw.vram_bytes)) if v}
    return caps or None


def free_for_one_more(dev: Any, held_total: int = 0, held_mapped: int = 0) -> int:
    """Free memory on `dev` for one more model, given what silnode's loaded models hold there.

    The probe's free memory already excludes what those models allocated, except their mmapped weights:
    page cache counts as available, yet evicting it makes the loaded model read its weights from disk
    again. So those are subtracted. A configured cap (hardware.ram_bytes / vram_bytes) is a budget for
    silnode's own models, so everything they need comes off it."""
    probed = dev.probed_free_bytes if dev.overridden else dev.free_bytes
    free = (probed or 0) - held_mapped
    if dev.overridden:
        free = min(free, (dev.total_bytes or 0) - held_total)
    return max(free, 0)


def plan_for(
    config: Config,
    shape: ModelShape,
    *,
    n_ctx: int | None = None,
    flash_attn: bool = False,
    held: dict[str, tuple[int, int]] | None = None,
    report: HardwareReport | None = None,
) -> OffloadPlan | None:
    """Where this machine would run the model (fit/offload.py), with serve.n_gpu_layers / main_gpu and what
    the loaded models already hold; None when no device's free memory is known."""
    report = report or probe_recent(hardware_overrides(config))
    cpu = next((d for d in report.devices if d.backend == "cpu" and d.usable), None)
    gpus = report.gpus
    if cpu is None and not any(g.usable for g in gpus):
        return None
    free = {}
    for d in [*gpus, *([cpu] if cpu else [])]:
        total, mapped = (held or {}).get(d.id, (0, 0))
        free[d.id] = free_for_one_more(d, total, mapped)
    offload = llama_build.gpu_offload() if gpus else False
    return plan_offload(
        shape,
        gpus,
        cpu,
        free=free,
        n_ctx=n_ctx,
        flash_attn=flash_attn,
        n_gpu_layers=config.serve.n_gpu_layers,
        main_gpu=config.serve.main_gpu,
        offload_supported=offload,
        cpu_bandwidth=config.hardware.cpu_bandwidth or cpu_bandwidth(config.home),
    )


def inspect_model(
    config: Config,
    model: str,
    *,
    n_ctx: int | None = None,
    flash_attn: bool = False,
    held: dict[str, tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """Blocking (reads a header, probes hardware): call it off the event loop. `held`: device id ->
    (bytes needed, bytes of mmapped weights) of the models already loaded (see free_for_one_more)."""

    path = resolve_model_path(config, model)
    header = read_header(path)
    report = probe_recent(hardware_overrides(config))
    shape = model_shape(header)
    plan = plan_for(config, shape, n_ctx=n_ctx, flash_attn=flash_attn, held=held, report=report)
    on_gpu = plan is not None and plan.mode != "cpu"
    main = next((d for d in plan.per_device if d != "CPU"), "CPU") if on_gpu and plan else "CPU"
    dev = report.device(main) if plan else None
    est = estimate(header, n_ctx=n_ctx, flash_attn=flash_attn, gpu=on_gpu, device=dev.id if dev else None)
    est_d = est.to_dict()
    if plan is not None:
        est_d["per_device"] = dict(plan.per_device)  # what the plan puts where (a split uses several)
        ok, reason = plan.fits, plan.reason
        held_total = sum((held or {}).get(d, (0, 0))[0] for d in plan.per_device)
        if held_total:
            reason += f" (after {fmt_size(held_total)} for the models already loaded)"
    else:
        ok, reason = False, "no device with known free memory (see `silnode hardware`)"
    return {
        "path": str(path),
        "gguf": facts_from_header(header).to_dict(),
        "estimate": est_d,
        "device": dev.id if dev else None,
        "offload": plan.to_dict() if plan else None,
        "speed": describe(plan.tokens_per_s if plan else None, config.fit.min_tokens_per_s),
        "fits": ok,
        "reason": reason,
        # how OpenAI tool calls work on it: its own template ("template") or the grammar fallback
        "tool_path": tool_path(header.metadata.get("tokenizer.chat_template")),
    }
