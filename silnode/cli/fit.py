"""Fit commands: what this machine has (`hardware`) and what a model needs (`inspect`)."""

from __future__ import annotations

from pathlib import Path

import click

from silnode.cli.context import Ctx, json_option
from silnode.cli.output import human_params, human_size, table

pass_ctx = click.make_pass_decorator(Ctx, ensure=True)


@click.command()
@click.option("--local", is_flag=True, help="Probe in this process instead of asking the daemon.")
@json_option
@pass_ctx
def hardware(ctx: Ctx, local: bool) -> None:
    """Each device: name, backend, total/free memory, which probe answered; failed probes and why."""
    if local:
        # the fit modules (GGUF reader, estimate, probes) load only for the command that judges in this process
        from silnode.fit.hardware import probe
        from silnode.fit.inspect import hardware_overrides

        report = probe(hardware_overrides(ctx.config())).to_dict()
    else:
        report = ctx.client().hardware()
    rows = [
        (
            d["id"],
            d["name"],
            d["backend"],
            human_size(d["total_bytes"]),
            human_size(d["free_bytes"]) if d["free_bytes"] is not None else "unknown",
            d["source"] + (" (capped by config)" if d.get("overridden") else ""),
        )
        for d in report["devices"]
    ]
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

    # the fit modules (GGUF reader, estimate, probes) load only for the command that judges in this process
    from silnode.fit.inspect import inspect_model

    data = inspect_model(ctx.config(), model, n_ctx=n_ctx, flash_attn=flash_attn)
    facts, est = data["gguf"], data["estimate"]
    name = Path(data["path"]).name
    mib = 2**20
    lines = [
        f"{name}: {facts.get('arch')} {human_params(facts.get('params'))} {facts.get('quant')}, "
        f"context {facts.get('context_length')}, vocab {facts.get('vocab_size')}",
        f"memory at ctx {est.get('n_ctx', n_ctx or '')} on {est['device']}: weights "
        f"{est['weights_bytes'] / mib:.0f} MiB + KV {est['kv_bytes'] / mib:.0f} + compute "
        f"{est['compute_bytes'] / mib:.0f} + overhead {est['overhead_bytes'] / mib:.0f} = "
        f"{est['total_bytes'] / mib:.0f} MiB",
        data["reason"] if data["fits"] else f"does not fit: {data['reason']}",
    ]
    if data.get("offload"):
        lines.append(placement(data["offload"]))
    lines.append(speed_line(data.get("speed") or {}))
    if data.get("tool_path"):
        how = "its chat template (<tool_call> blocks)" if data["tool_path"] == "template" else "the grammar fallback"
        lines.append(f"tool calls: {data['tool_path']} path, through {how}")
    lines += [f"note: {n}" for n in est.get("notes", [])]
    ctx.out.data(data, "\n".join(lines))


@click.command()
@click.option(
    "--ctx", "n_ctx", type=click.IntRange(min=1), help="Context size (default: each model's, capped at 4096)."
)
@click.option("--no-catalog", is_flag=True, help="Only the models in the store.")
@click.option(
    "--min-tps",
    type=click.FloatRange(min=0),
    help="Rank first the models estimated to generate at least this many tokens/s (fit.min_tokens_per_s).",
)
@click.option("--local", is_flag=True, help="Compute in this process instead of asking the daemon.")
@json_option
@pass_ctx
def recommend(ctx: Ctx, n_ctx: int | None, no_catalog: bool, min_tps: float | None, local: bool) -> None:
    """What fits this machine, best first (the store and the seed catalog), and why the others don't.

    Ranked by parameters x bits per weight among the models fast enough here (estimated tokens/s at least
    fit.min_tokens_per_s, default 5), then the slower ones; a model on disk wins a tie."""

    if local:
        # the fit modules (GGUF reader, estimate, probes) load only for the command that judges in this process
        from silnode.fit.recommend import rank

        data = rank(ctx.config(), n_ctx=n_ctx, catalog=not no_catalog, min_tokens_per_s=min_tps)
    else:
        data = ctx.client().recommend(n_ctx, catalog=not no_catalog, min_tps=min_tps)

    def row(i: int | str, c: dict) -> tuple:
        where = "on disk" if c["on_disk"] else "catalog"
        tps = "?" if c.get("tokens_per_s") is None else f"{c['tokens_per_s']:.0f}"
        if c.get("speed") == "slow":
            tps += " slow"
        return (
            i,
            c["name"],
            human_params(c["params"]),
            c["quant"] or "-",
            human_size(c["need_bytes"]),
            tps,
            short_placement(c.get("offload")),
            where,
        )

    free = human_size(data["free_bytes"]) if data["free_bytes"] else "unknown"
    lines = [f"device {data['device'] or 'unknown'}: {free} free"]
    headers = ["#", "MODEL", "PARAMS", "QUANT", "NEEDS", "TOK/S", "ON", "WHERE"]
    if data["fits"]:
        lines += ["fits, best first:", table([row(i + 1, c) for i, c in enumerate(data["fits"])], headers)]
    else:
        lines.append("nothing fits" + (f" at ctx {n_ctx}" if n_ctx else ""))
    if data["others"]:
        lines.append("does not fit or cannot be judged:")
        lines += [f"  {c['name']}: {c['reason']}" for c in data["others"]]
    if data["fits"]:
        best = data["fits"][0]
        lines.append(
            f"next: `silnode serve {best['name']}`"
            if best["on_disk"]
            else f"next: `silnode get {best['name']}` (or `silnode get --auto`)"
        )
    ctx.out.data(data, "\n".join(lines))


def short_placement(plan: dict | None) -> str:
    """GPU | CUDA0+CUDA1 | 20/32 on GPU | CPU, for a table cell."""
    if not plan:
        return "-"
    if plan["mode"] == "partial":
        return f"{plan['n_gpu_layers']}/{plan['n_layer']} on GPU"
    if plan["mode"] == "split":
        return "+".join(d for d in plan["per_device"] if d != "CPU")
    return "GPU" if plan["mode"] == "gpu" else "CPU"


def placement(plan: dict) -> str:
    mode = plan["mode"]
    if mode == "gpu":
        where = f"all {plan['n_layer']} layers on the GPU"
    elif mode == "split":
        shares = ", ".join(f"{s:.0%}" for s in plan["tensor_split"] or [])
        where = f"all layers split over {short_placement(plan)} ({shares})"
    elif mode == "partial":
        where = (
            f"{min(plan['n_gpu_layers'], plan['n_layer'])} of {plan['n_layer']} layers on the GPU, the rest on the CPU"
        )
        if plan.get("slowdown"):
            where += f" ({plan['slowdown']} slowdown against the whole model on the GPU)"
    else:
        where = "on the CPU"
    return f"placement: {where}"


def speed_line(speed: dict) -> str:
    tps = speed.get("tokens_per_s")
    if tps is None:
        return "speed: unknown (no memory bandwidth known for the device)"
    slow = f", below fit.min_tokens_per_s = {speed['min_tokens_per_s']:g}" if speed.get("speed") == "slow" else ""
    return f"speed: about {tps:.0f} tokens/s generated (estimated from memory bandwidth{slow})"


COMMANDS = [hardware, inspect, recommend]
