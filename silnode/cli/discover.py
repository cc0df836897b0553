"""Discovery commands: discover, catalog publish|show, follow, unfollow, following. All talk to the daemon."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import click

from silnode.cli.context import Ctx, json_option
from silnode.cli.output import human_size, table

pass_ctx = click.make_pass_decorator(Ctx, ensure=True)


def _short(pub: str | None) -> str:
    return f"{pub[:12]}…" if pub else "-"


def entries_table(rows: list[dict[str, Any]], *, fits: bool = False) -> str:
    headers = ["NAME", "SIZE", "QUANT", "PUBLISHER", "SEEDERS", "INFOHASH"]
    body = []
    for r in rows:
        who = (
            _short(r.get("publisher"))
            + (" (followed)" if r.get("followed") else "")
            + (" (me)" if r.get("mine") else "")
        )
        line = [
            r["name"] + (" [conflict]" if r.get("conflict") else ""),
            human_size(r.get("size")),
            r.get("quant") or "-",
            who,
            "-" if r.get("seeders") is None else r["seeders"],
            r["infohash"][:12],
        ]
        if fits:
            line.append(r.get("fit_reason") or "")
        body.append(line)
    return table(body, headers + (["FIT"] if fits else []))


@click.command()
@click.argument("pattern", required=False)
@click.option("--tag", help="Only entries with this tag (e.g. llama).")
@click.option("--quant", help="Only this quantisation (e.g. Q4_K_M).")
@click.option("--max-size", help="Only entries up to this size (8GB, 500MB, 4GiB).")
@click.option("--fits", is_flag=True, help="Only what fits this machine, with the fit estimate's reason.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many results.")
@json_option
@pass_ctx
def discover(
    ctx: Ctx,
    pattern: str | None,
    tag: str | None,
    quant: str | None,
    max_size: str | None,
    fits: bool,
    limit: int | None,
) -> None:
    """Search the catalogs of the publishers this node follows (merged; no central server).

    \b
    silnode discover llama --quant Q4_K_M --max-size 8GB --fits
    silnode get org/model          download one by name
    """
    query = {
        k: v
        for k, v in (
            ("pattern", pattern),
            ("tag", tag),
            ("quant", quant),
            ("max_size", max_size),
            ("fits", "true" if fits else None),
            ("limit", limit),
        )
        if v
    }
    data = ctx.client().request("GET", "/api/v1/discover" + (f"?{urlencode(query)}" if query else ""))
    rows = data["results"]
    if not rows:
        hint = (
            "follow a publisher first: `silnode follow <catalog magnet | pubkey>`"
            if not data.get("following")
            else "try a shorter pattern, or `silnode following` to see what the catalogs hold"
        )
        ctx.out.data(
            {k: v for k, v in data.items() if k != "ok"}, f"no matches in {data.get('entries', 0)} entries; {hint}"
        )
        return
    ctx.out.data({k: v for k, v in data.items() if k != "ok"}, entries_table(rows, fits=fits))


@click.group()
def catalog() -> None:
    """This node's own signed catalog (published automatically after share / rm / seeding changes)."""


@catalog.command("show")
@json_option
@pass_ctx
def catalog_show(ctx: Ctx) -> None:
    """Seq, catalog infohash, the BEP 46 magnet others follow, and the entries."""
    cat = ctx.client().request("GET", "/api/v1/catalog")["catalog"]
    ctx.out.data(cat, _catalog_text(cat))


@catalog.command("publish")
@json_option
@pass_ctx
def catalog_publish(ctx: Ctx) -> None:
    """Publish now (a new seq if the shared models changed) and put the DHT pointer again."""
    cat = ctx.client().request("POST", "/api/v1/catalog/publish", {})["catalog"]
    ctx.out.data(cat, _catalog_text(cat))


def _catalog_text(cat: dict[str, Any]) -> str:
    lines = [f"publisher  {cat['publisher']}", f"magnet     {cat['magnet']}"]
    if not cat.get("published"):
        lines.append("not published yet: share a model (`silnode share FILE --name org/model`)")
        return "\n".join(lines)
    lines += [
        f"seq        {cat['seq']}  (updated {cat['updated']})",
        f"infohash   {cat['infohash']}  ({human_size(cat['bytes'])})",
    ]
    if cat.get("last_error"):
        lines.append(f"warning    {cat['last_error']}")
    if not cat.get("dht"):
        lines.append("warning    the DHT is off: nobody can find this catalog (network.dht_enabled)")
    lines.append(entries_table(cat.get("entries") or []) if cat.get("entries") else "no entries")
    return "\n".join(lines)


@click.command()
@click.argument("publisher")
@json_option
@pass_ctx
def follow(ctx: Ctx, publisher: str) -> None:
    """Follow a catalog: its catalog key (64 hex), a magnet:?xs=urn:btpk:… link, or an npub already known."""
    res = ctx.client().request("POST", "/api/v1/following", {"publisher": publisher})["follow"]
    ctx.out.data(res, follow_text(res))


def follow_text(res: dict[str, Any]) -> str:
    head = f"following {res['publisher']}"
    if res.get("seq") is None:
        return (
            f"{head}\nits catalog was not found yet ({res.get('refresh', 'not looked up')}); the daemon keeps looking"
        )
    body = entries_table(res["entries"]) if res["entries"] else "its catalog is empty"
    return f"{head} (catalog seq {res['seq']}, {len(res['entries'])} entries)\n{body}"


@click.command()
@click.argument("publisher")
@json_option
@pass_ctx
def unfollow(ctx: Ctx, publisher: str) -> None:
    """Stop following a catalog (its cached copy and seed are dropped)."""
    res = ctx.client().request("DELETE", f"/api/v1/following/{quote(publisher, safe='')}")["follow"]
    ctx.out.data(res, f"no longer following {res['publisher']}")


@click.command()
@json_option
@pass_ctx
def following(ctx: Ctx) -> None:
    """The catalogs this node follows (and those in discovery.publishers)."""
    rows = ctx.client().request("GET", "/api/v1/following")["following"]
    text = (
        table(
            [[r["publisher"], r["source"], r["seq"] if r["seq"] is not None else "-", r["entries"]] for r in rows],
            ["PUBLISHER", "SOURCE", "SEQ", "ENTRIES"],
        )
        if rows
        else "following nobody yet: `silnode follow <catalog magnet | pubkey>`"
    )
    ctx.out.data({"following": rows}, text)


COMMANDS = [discover, catalog, follow, unfollow, following]
