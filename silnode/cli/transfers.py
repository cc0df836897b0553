"""BitTorrent commands: share, get, transfers, seeding."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from silnode.cli.context import Ctx, json_option
from silnode.cli.models import _run_task
from silnode.cli.output import human_size, table
from silnode.errors import BadRequest, SilnodeError

pass_ctx = click.make_pass_decorator(Ctx, ensure=True)


@click.command()
@click.argument("model")
@click.option("--name", help="With a file: the store name to import it as (org/model).")
@click.option("--license", "license_", metavar="LICENSE", help="With a file: license for the manifest.")
@click.option("--web-seed", "web_seeds", multiple=True, metavar="URL", help="HTTP origin with the same files (BEP 19).")
@click.option(
    "--v1-compat",
    is_flag=True,
    help="Also seed a v1-only torrent for clients without BitTorrent v2 (e.g. Debian 12's transmission and aria2).",
)
@json_option
@pass_ctx
def share(
    ctx: Ctx, model: str, name: str | None, license_: str | None, web_seeds: tuple[str, ...], v1_compat: bool
) -> None:
    """Seed a model: `share org/model`, `share ./file.gguf --name org/model --license L`, or
    `share hf://org/repo/file.gguf` (downloaded through huggingface_hub, resumable; the Hub stays a web seed).

    Prints the magnet link others pass to `silnode get`.
    """
    client = ctx.client()
    path = source = None
    if model.startswith("hf://"):
        source = model
    elif Path(model).suffix.lower() == ".gguf" or "/" not in model or Path(model).exists():
        if not Path(model).is_file():
            raise BadRequest(f"{model}: no such file (a store model is named org/model)")
        if not name:
            raise BadRequest("sharing a file needs --name org/model (and --license)")
        path = str(Path(model).expanduser().absolute())
    else:
        name = model
    task = client.share(
        name, path=path, source=source, license=license_, web_seeds=list(web_seeds) or None, v1_compat=v1_compat
    )
    result = _run_task(ctx, client, task, f"share {name or model}")
    text = f"seeding {result['name']}\ninfohash {result['infohash']}\n{result['magnet']}"
    if result.get("v1_compat"):
        c = result["v1_compat"]
        text += f"\nv1-only twin (older clients): {c['infohash']}\n{c['magnet']}\ntorrent file: {c['torrent_file']}"
    ctx.out.data(result, text)


def _fmt_rate(n: int) -> str:
    return f"{human_size(n)}/s"


@click.command()
@click.argument("target", required=False)
@click.option(
    "--auto", is_flag=True, help="The best model that fits this machine (on disk first, else the seed catalog)."
)
@click.option("--force", is_flag=True, help="Download even when the model won't fit this machine's memory.")
@click.option("--ctx", "n_ctx", type=click.IntRange(min=1), help="Context size the fit check assumes.")
@click.option("--peer", "peers", multiple=True, metavar="HOST:PORT", help="A peer to connect to (repeatable).")
@click.option("--name", help="Store name (default: from the magnet, else derived from the files).")
@click.option("--license", "license_", metavar="LICENSE", help="License for the manifest.")
@click.option("--web-seed", "web_seeds", multiple=True, metavar="URL", help="HTTP origin with the same files (BEP 19).")
@click.option("--no-wait", is_flag=True, help="Print the transfer id and return at once.")
@json_option
@pass_ctx
def get(
    ctx: Ctx,
    target: str | None,
    auto: bool,
    force: bool,
    n_ctx: int | None,
    peers: tuple[str, ...],
    name: str | None,
    license_: str | None,
    web_seeds: tuple[str, ...],
    no_wait: bool,
) -> None:
    """Download a model by magnet link, infohash, seed-catalog or discovered name, verify it, and add it.

    A name (org/model) found through the followed catalogs resolves to its publisher's magnet; a catalog
    magnet (magnet:?xs=urn:btpk:…) follows that publisher and lists its catalog.

    A model that won't fit this machine's memory is refused (--force overrides); --auto takes the best one
    that fits. Blocks with a progress bar until the model is verified and placed; Ctrl-C detaches (the daemon
    goes on).
    """
    if bool(target) == auto:
        raise click.UsageError("give a magnet link, an infohash or a catalog model name, or --auto")
    client = ctx.client()
    result = client.get(
        target,
        auto=auto,
        force=force,
        n_ctx=n_ctx,
        peers=list(peers) or None,
        name=name,
        license=license_,
        web_seeds=list(web_seeds) or None,
    )
    if "followed" in result:  # a catalog magnet (magnet:?xs=urn:btpk:…): followed, its catalog listed
        from silnode.cli.discover import follow_text

        ctx.out.data(result["followed"], follow_text(result["followed"]))
        return
    if result.get("on_disk"):
        ctx.out.data(result, f"{result['model']} is already in the store and is the best fit: {result['reason']}")
        return
    if "task" in result:  # a seed-catalog model, from its origin
        ctx.out.info(f"getting {result['model']}: {result['reason']}")
        if no_wait:
            ctx.out.data(result, result["task"]["id"])
            return
        done = _run_task(ctx, client, result["task"], f"get {result['model']}")
        ctx.out.data(done, f"got {done['name']}, sha256 verified; now seeding it\n{done['magnet']}")
        return
    t = result["transfer"]
    if no_wait:
        ctx.out.data(t, t["id"])
        return
    bar = ctx.out.progress(t.get("total_bytes") or 0, f"get {t.get('name') or t['id'][:12]}")
    try:
        while t["state"] not in ("done", "seeding", "error", "cancelled", "paused"):
            time.sleep(0.2)
            t = client.transfer(t["id"])
            if t.get("total_bytes") and bar.total != t["total_bytes"]:
                bar.total = t["total_bytes"]
            bar.n = t.get("done_bytes", 0)
            bar.set_postfix_str(
                f"{t['state']} {_fmt_rate(t.get('download_rate', 0))} peers {t.get('num_peers', 0)}"
                + (f" eta {t['eta_s']}s" if t.get("eta_s") else ""),
                refresh=False,
            )
            bar.refresh()
    except KeyboardInterrupt:
        bar.close()
        ctx.out.info(f"detached; the daemon goes on with transfer {t['id']} (`silnode transfers`)")
        sys.exit(130)
    bar.close()
    if t["state"] not in ("done", "seeding"):
        won_t_fit = "won't fit" in (t.get("error") or "")
        raise SilnodeError(
            f"download {t['state']}: {t.get('error') or 'stopped'}",
            hint="`silnode recommend` lists what fits"
            if won_t_fit
            else f"`silnode transfers resume {t['id'][:12]}` after fixing the cause",
        )
    ctx.out.data(t, f"got {t['name']} ({human_size(t.get('total_bytes'))}), sha256 verified; now seeding it")


@click.group(invoke_without_command=True)
@json_option
@click.pass_context
def transfers(click_ctx: click.Context) -> None:
    """List transfers (downloads and seeds); `transfers pause|resume|cancel ID`."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx = click_ctx.ensure_object(Ctx)
    items = ctx.client().transfers()
    rows = [
        (
            t["id"][:12],
            t["kind"],
            t.get("name") or "-",
            t["state"],
            f"{t['progress'] * 100:.0f}%",
            _fmt_rate(t["download_rate"]),
            _fmt_rate(t["upload_rate"]),
            t["num_peers"],
            f"{t['ratio']:.2f}",
        )
        for t in items
    ]
    ctx.out.data(
        {"transfers": items},
        table(rows, ["ID", "KIND", "NAME", "STATE", "DONE", "DOWN", "UP", "PEERS", "RATIO"])
        if rows
        else "no transfers",
    )
    errors = [t for t in items if t["state"] == "error"]
    for t in errors:
        ctx.out.info(f"{t['id'][:12]}: {t['error']}")


def _action(action: str) -> Any:
    @click.command(action)
    @click.argument("transfer_id")
    @json_option
    @pass_ctx
    def cmd(ctx: Ctx, transfer_id: str) -> None:
        t = ctx.client().transfer_action(transfer_id, action)
        ctx.out.data(t, f"{action}: {t['id'][:12]} {t.get('name') or ''} is {t['state']}")

    cmd.__doc__ = {
        "pause": "Pause a download.",
        "resume": "Resume a paused or failed download.",
        "cancel": "Cancel a download and delete its partial data.",
    }[action]
    return cmd


for _a in ("pause", "resume", "cancel"):
    transfers.add_command(_action(_a))


@click.command()
@click.argument("name")
@click.argument("state", type=click.Choice(["on", "off"]), required=False)
@json_option
@pass_ctx
def seeding(ctx: Ctx, name: str, state: str | None) -> None:
    """Turn seeding of a model on or off (`seeding org/model on|off`)."""
    client = ctx.client()
    if state is None:
        m = client.model(name)
        on = bool(m.get("infohash")) and m.get("seeding", True)
        ctx.out.data({"name": name, "seeding": on}, f"{name}: seeding {'on' if on else 'off'}")
        return
    r = client.seeding(name, state == "on")
    r.pop("ok", None)
    ctx.out.data(r, f"{name}: seeding {state}")


COMMANDS = [share, get, transfers, seeding]
