"""Store commands: import, list, show, rm, verify, gc. All of them talk to the daemon."""

from __future__ import annotations

import calendar
import sys
import time
from pathlib import Path
from typing import Any

import click

from silnode.cli.context import Ctx, json_option
from silnode.cli.output import human_params, human_size, table
from silnode.errors import BadRequest

pass_ctx = click.make_pass_decorator(Ctx, ensure=True)


def _run_task(ctx: Ctx, client: Any, task: dict[str, Any], desc: str) -> Any:
    """Follow a daemon task with a progress bar; Ctrl-C detaches (the daemon finishes the work)."""
    bar = ctx.out.progress(task.get("total_bytes") or 0, desc)
    try:

        def update(t: dict[str, Any]) -> None:
            if t.get("total_bytes") and bar.total != t["total_bytes"]:
                bar.total = t["total_bytes"]
            bar.n = t.get("done_bytes", 0)
            bar.refresh()

        return client.wait(task, update)
    except KeyboardInterrupt:
        ctx.out.info(
            f"\ndetached; the daemon goes on with task {task['id']} (`silnode tasks cancel {task['id']}` stops it)"
        )
        sys.exit(130)
    finally:
        bar.close()


@click.command("import")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.option("--name", help="Store name, org/model.")
@click.option("--license", "license_", metavar="LICENSE", help="License recorded in the manifest (e.g. apache-2.0).")
@click.option("--from", "from_", type=click.Choice(["hf", "ollama"]), help="Import models already on disk.")
@click.option("--copy", is_flag=True, help="Copy even when a hardlink is possible.")
@click.argument("pattern", required=False)
@json_option
@pass_ctx
def import_(
    ctx: Ctx,
    path: str | None,
    name: str | None,
    license_: str | None,
    from_: str | None,
    copy: bool,
    pattern: str | None,
) -> None:
    """Import a GGUF file (or a split GGUF's first part) into the store.

    \b
    silnode import ./model.gguf --name org/model --license apache-2.0
    silnode import --from hf [PATTERN]       models in the Hugging Face cache
    silnode import --from ollama [PATTERN]   models in Ollama's blob store
    """
    client = ctx.client()
    if from_:
        pattern = pattern or path  # `import --from hf qwen`: the pattern lands in PATH
        result = _run_task(ctx, client, client.import_from(from_, pattern), f"import from {from_}")
        lines = [f"imported {m['name']} ({human_size(m['size'])})" for m in result["imported"]]
        lines += [f"skipped {s['name']}: {s['reason']}" for s in result["skipped"]]
        ctx.out.data(result, "\n".join(lines) or "nothing to import")
        return
    if not path or not name:
        raise BadRequest(
            "give a file and --name org/model (or --from hf|ollama)",
            hint="example: silnode import ./model.gguf --name myorg/mymodel",
        )
    abspath = str(Path(path).expanduser().absolute())
    task = client.import_path(abspath, name, license=license_, link=not copy)
    manifest = _run_task(ctx, client, task, f"import {name}")
    files = manifest["files"]
    how = "hardlinked" if all(f.get("linked") for f in files) else "copied"
    ctx.out.data(
        manifest,
        f"imported {name}: {len(files)} file(s), {human_size(manifest['total_size'])}, {how}, "
        f"sha256 {files[0]['sha256'][:16]}…",
    )


@click.command("list")
@json_option
@pass_ctx
def list_(ctx: Ctx) -> None:
    """Models in the store: name, size, arch, params, quant, sha256 state, when last verified in full."""
    models = ctx.client().models()
    if not models:
        ctx.out.data({"models": []}, "no models yet")
        ctx.out.info("add one: `silnode import FILE.gguf --name org/model` or `silnode import --from hf`")
        return
    rows = [
        (
            m["name"],
            human_size(m.get("size")),
            m.get("arch") or "-",
            human_params(m.get("params")),
            m.get("quant") or "-",
            m.get("state"),
            _ago(m.get("verified_at")),
        )
        for m in models
    ]
    ctx.out.data({"models": models}, table(rows, ["NAME", "SIZE", "ARCH", "PARAMS", "QUANT", "SHA256", "VERIFIED"]))


def _ago(stamp: str | None) -> str:
    """When a model's bytes were last hashed in full (the manifest's UTC "2026-12-05T21:35:00Z"): "3 min ago",
    "2 d ago", "never"."""
    if not stamp:
        return "never"
    try:
        then = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return stamp
    s = max(0.0, time.time() - then)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{int(s // size)} {unit} ago"
    return "just now"


@click.command()
@click.argument("name")
@json_option
@pass_ctx
def show(ctx: Ctx, name: str) -> None:
    """One model's manifest: files, hashes, GGUF facts, license, source."""
    m = ctx.client().model(name)
    g = m.get("gguf") or {}
    lines = [
        f"name:      {m['name']}",
        f"state:     {m.get('state')}" + (f" ({'; '.join(m['problems'])})" if m.get("problems") else ""),
        f"size:      {human_size(m.get('total_size'))}",
        f"arch:      {g.get('arch')}  params: {human_params(g.get('params'))}  quant: {g.get('quant')}",
        f"context:   {g.get('context_length')}  layers: {g.get('layers')}  heads: {g.get('heads')}/{g.get('heads_kv')}"
        f"  vocab: {g.get('vocab_size')}  chat template: {'yes' if g.get('has_chat_template') else 'no'}",
        f"license:   {m.get('license') or '-'}",
        f"source:    {(m.get('source') or {}).get('type')}",
        "files:",
    ]
    lines += [f"  {f['path']}  {human_size(f['size'])}  sha256 {f['sha256']}" for f in m.get("files", [])]
    ctx.out.data(m, "\n".join(lines))


@click.command()
@click.argument("name")
@json_option
@pass_ctx
def rm(ctx: Ctx, name: str) -> None:
    """Remove a model from the store."""
    r = ctx.client().remove(name)
    r.pop("ok", None)
    ctx.out.data(r, f"removed {name} (freed {human_size(r['freed'])})")


@click.command()
@click.argument("name", required=False)
@json_option
@pass_ctx
def verify(ctx: Ctx, name: str | None) -> None:
    """Re-hash models against their manifests; damaged files go to quarantine (exit 1)."""
    client = ctx.client()
    result = _run_task(ctx, client, client.verify(name), f"verify {name or 'all'}")
    lines = []
    for m in result["models"]:
        if m["ok"]:
            lines.append(f"ok       {m['name']}")
        else:
            bad = [f"{f['path']}: {f['reason']}" for f in m["files"] if not f["ok"]] or [m.get("error", "failed")]
            lines.append(f"DAMAGED  {m['name']}: {'; '.join(bad)} (moved to quarantine)")
    ctx.out.data(result, "\n".join(lines) or "no models to verify")
    if not result["ok"]:
        ctx.out.info("damaged files were quarantined; `silnode gc` deletes them, re-import or re-download the model")
        sys.exit(1)


@click.command()
@json_option
@pass_ctx
def gc(ctx: Ctx) -> None:
    """Delete orphaned partial files and quarantined files; print what was freed."""
    r = ctx.client().gc()
    r.pop("ok", None)
    ctx.out.data(r, f"freed {human_size(r['freed'])} ({len(r['removed'])} item(s))")


COMMANDS = [import_, list_, show, rm, verify, gc]
