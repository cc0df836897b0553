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


COMMANDS = [hardware]
