"""Fit commands: what this machine has (`hardware`)."""

from __future__ import annotations

import click

from silnode.cli import Ctx, json_option
from silnode.cli.output import human_size, table

pass_ctx = click.make_pass_decorator(Ctx, ensure=True)


@click.command()
@click.option("--local", is_flag=True, help="Probe in this process instead of asking the daemon.")
@json_option
@pass_ctx
def hardware(ctx: Ctx, local: bool) -> None:
    """Each device: name, backend, total/free memory, which probe answered; failed probes and why."""
    if local:
        from silnode.fit.hardware import probe

        hw = ctx.config().hardware
        overrides = {k: v for k, v in (("ram_bytes", hw.ram_bytes), ("vram_bytes", hw.vram_bytes)) if v}
        report = probe(overrides or None).to_dict()
    else:
        report = ctx.client().hardware()
    rows = [(d["id"], d["name"], d["backend"], human_size(d["total_bytes"]),
             human_size(d["free_bytes"]) if d["free_bytes"] is not None else "unknown",
             d["source"] + (" (capped by config)" if d.get("overridden") else "")) for d in report["devices"]]
    lines = [table(rows, ["DEVICE", "NAME", "BACKEND", "TOTAL", "FREE", "PROBE"]) if rows else "no devices found"]
    notes = [f"  {d['id']}: {d['note']}" for d in report["devices"] if d.get("note")]
    lines += notes
    lines.append("probes: " + ", ".join(f"{p['name']} {p['status']}" for p in report["probes"]))
    lines += [f"  {p['name']}: {p['detail']}" for p in report["probes"] if p["status"] == "failed"]
    if report.get("best_device"):
        lines.append(f"models are fitted to: {report['best_device']}")
    ctx.out.data(report, "\n".join(lines))


@click.command()
@click.argument("model")
@click.option("--ctx", "n_ctx", type=int, help="Context size (default: the model's, capped at 4096).")
@click.option("--flash-attn", is_flag=True, help="Estimate with flash attention (smaller compute buffer).")
@json_option
@pass_ctx
def inspect(ctx: Ctx, model: str, n_ctx: int | None, flash_attn: bool) -> None:
    """GGUF facts and memory need (weights, KV, compute, overhead, total) of a file or a store model,
    and whether it fits this machine's best device."""
    from pathlib import Path

    from silnode.cli.output import human_params
    from silnode.fit.estimate import estimate, fits
    from silnode.fit.gguf import read_header
    from silnode.fit.hardware import best_device, probe
    from silnode.names import is_valid_name
    from silnode.store import Store

    path = Path(model)
    if not path.is_file() and is_valid_name(model):
        config = ctx.config()
        store = Store(config.base_dir)
        manifest = store.read_manifest(model)
        path = store.model_dir(model) / manifest["files"][0]["path"]
    elif not path.is_file():
        from silnode.errors import NotFound

        raise NotFound(f"{model}: no such file or store model", hint="give a .gguf path or an org/model name")
    header = read_header(path)
    hw = ctx.config().hardware
    overrides = {k: v for k, v in (("ram_bytes", hw.ram_bytes), ("vram_bytes", hw.vram_bytes)) if v}
    report = probe(overrides or None)
    dev = best_device(report)
    gpu = bool(dev and dev.is_gpu)
    est = estimate(header, n_ctx=n_ctx, flash_attn=flash_attn, gpu=gpu, device=dev.id if dev else None)
    ok_, reason = fits(est, dev.free_bytes) if dev and dev.free_bytes else (False, "no device with known free memory")
    from silnode.fit.gguf import facts_from_header

    facts = facts_from_header(header).to_dict()
    data = {"path": str(path), "gguf": facts, "estimate": est.to_dict(), "device": dev.id if dev else None,
            "fits": ok_, "reason": reason}
    mib = 2**20
    lines = [
        f"{path.name}: {facts.get('arch')} {human_params(facts.get('params'))} {facts.get('quant')}, "
        f"context {facts.get('context_length')}, vocab {facts.get('vocab_size')}",
        f"memory at ctx {est.to_dict().get('n_ctx', n_ctx or '')} on {est.device}: weights "
        f"{est.weights_bytes / mib:.0f} MiB + KV {est.kv_bytes / mib:.0f} + compute {est.compute_bytes / mib:.0f}"
        f" + overhead {est.overhead_bytes / mib:.0f} = {est.total_bytes / mib:.0f} MiB",
        reason if ok_ else f"does not fit: {reason}",
    ]
    lines += [f"note: {n}" for n in est.notes]
    ctx.out.data(data, "\n".join(lines))


COMMANDS = [hardware, inspect]
