"""Payments commands: earnings (the seller's side) and wallet (a small cashu wallet for the customer's side)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

import click

from silnode.cli.context import Ctx, json_option
from silnode.cli.identity import password_option
from silnode.cli.output import table
from silnode.errors import BadRequest, DaemonNotRunning

pass_ctx = click.make_pass_decorator(Ctx, ensure=True)


def _sats(msats: int) -> str:
    return f"{msats / 1000:g}"


@click.command()
@click.option("--since", metavar="AGE", help="Only payments of the last AGE: 7d, 12h, 30m, 90s (default: all).")
@json_option
@pass_ctx
def earnings(ctx: Ctx, since: str | None) -> None:
    """What this node was paid: totals by state, per model and per day (UTC), in sats (JSON: msats).

    Reads the running daemon's ledger; with no daemon running, reads SILNODE_HOME/state/payments.db itself.
    """
    from silnode.payments.ledger import parse_since

    parse_since(since)  # a bad --since is the user's error, named before any daemon is asked
    try:
        data: dict[str, Any] = ctx.client().request(
            "GET", "/api/v1/earnings" + (f"?{urlencode({'since': since})}" if since else "")
        )["earnings"]
    except DaemonNotRunning:
        from silnode.payments.service import read_earnings  # the ledger module only when no daemon answers

        ctx.out.info("(no daemon running: read from the ledger file)")
        data = read_earnings(ctx.config(), since)
    t = data["totals"]
    lines = [
        f"earned {_sats(data['earned_msats'])} sat"
        + (f" since {since}" if since else "")
        + f"  (paid {t['paid']['count']}, unpaid {t['unpaid']['count']} = {_sats(t['unpaid']['msats'])} sat, "
        f"refunded {t['refunded']['count']} = {_sats(t['refunded']['msats'])} sat, free {t['free']['count']}, "
        f"expired {t['expired']['count']}, failed {t['failed']['count']})"
    ]
    if data["per_model"]:
        rows = [(m["model"], m["jobs"], _sats(m["paid_msats"]), _sats(m["unpaid_msats"]), _sats(m["refunded_msats"]),
                 m["tokens"]) for m in data["per_model"]]  # fmt: skip
        lines += ["", table(rows, ["MODEL", "JOBS", "PAID SAT", "UNPAID SAT", "REFUNDED SAT", "TOKENS"])]
    if data["per_day"]:
        rows = [(d["day"], d["jobs"], _sats(d["paid_msats"]), _sats(d["unpaid_msats"]), _sats(d["refunded_msats"]))
                for d in data["per_day"]]  # fmt: skip
        lines += ["", table(rows, ["DAY", "JOBS", "PAID SAT", "UNPAID SAT", "REFUNDED SAT"])]
    if not data["per_model"]:
        lines.append("no payments yet (config: payments.require_payment and the prices; see README, Payments)")
    ctx.out.data(data, "\n".join(lines))


def open_wallet(ctx: Ctx, password_file: str | None) -> tuple[Any, Any]:
    """(the customer wallet, the unlocked identity): the wallet is encrypted with the identity's customer key."""
    from silnode.cli.identity import read_password
    from silnode.identity import Keystore
    from silnode.payments.wallet import CustomerWallet, customer_secret

    ks = Keystore.for_config(ctx.config())
    if not ks.exists():
        raise BadRequest(
            "the cashu wallet is encrypted with the identity's key, and there is no identity",
            hint="`silnode identity new` makes one",
        )
    identity = ks.unlock(read_password(password_file))
    return CustomerWallet.open(ctx.config().home, customer_secret(identity)), identity


def _run_wallet(ctx: Ctx, password_file: str | None, fn: Any) -> Any:
    async def go() -> Any:
        wallet, _ = open_wallet(ctx, password_file)
        try:
            return await fn(wallet)
        finally:
            await wallet.close()

    return asyncio.run(go())


@click.group()
def wallet() -> None:
    """A small cashu wallet for buying (tests and demos): SILNODE_HOME/wallet/cashu.enc, encrypted with the
    identity's customer key. `silnode ask --pay cashu --mint URL` pays from it."""


@wallet.command("balance")
@password_option
@json_option
@pass_ctx
def wallet_balance(ctx: Ctx, password_file: str | None) -> None:
    """The sats the wallet holds, per mint."""

    async def fn(w: Any) -> dict[str, int]:
        return w.balances()

    held = _run_wallet(ctx, password_file, fn)
    text = "\n".join(f"{sats:>8} sats  {mint}" for mint, sats in held.items()) or (
        "the wallet is empty (`silnode wallet fund SATS --mint URL`)"
    )
    ctx.out.data({"balances": held, "total_sats": sum(held.values())}, text)


@wallet.command("fund")
@click.argument("sats", type=click.IntRange(min=1))
@click.option("--mint", "mint_url", required=True, help="The cashu mint's URL.")
@click.option("--timeout", type=click.FloatRange(min=1), default=600, show_default=True, help="Seconds to wait.")
@password_option
@json_option
@pass_ctx
def wallet_fund(ctx: Ctx, sats: int, mint_url: str, timeout: float, password_file: str | None) -> None:
    """Buy SATS of ecash at a mint (NUT-04): prints the mint's Lightning invoice and waits until it is paid."""

    async def fn(w: Any) -> int:
        return await w.fund(
            mint_url,
            sats,
            timeout=timeout,
            on_invoice=lambda b: click.echo(f"pay this invoice ({sats} sats): {b}", err=True),
        )

    held = _run_wallet(ctx, password_file, fn)
    ctx.out.data(
        {"mint": mint_url, "funded_sats": sats, "balance_sats": held}, f"funded {sats} sats; {held} at {mint_url}"
    )


@wallet.command("receive")
@click.argument("token")
@password_option
@json_option
@pass_ctx
def wallet_receive(ctx: Ctx, token: str, password_file: str | None) -> None:
    """Redeem a cashu token (change, a refund, a gift) into the wallet; TOKEN '-' reads it from stdin."""
    text = click.get_text_stream("stdin").read().strip() if token == "-" else token

    async def fn(w: Any) -> int:
        return await w.receive(text)

    got = _run_wallet(ctx, password_file, fn)
    ctx.out.data({"received_sats": got}, f"received {got} sats")


@wallet.command("send")
@click.argument("sats", type=click.IntRange(min=1))
@click.option("--mint", "mint_url", required=True, help="Which mint's ecash to send.")
@password_option
@json_option
@pass_ctx
def wallet_send(ctx: Ctx, sats: int, mint_url: str, password_file: str | None) -> None:
    """Cut a token worth SATS from the wallet and print it (bearer money: e.g. for X-Cashu on /v1)."""

    async def fn(w: Any) -> str:
        return await w.send(mint_url, sats)

    token = _run_wallet(ctx, password_file, fn)
    ctx.out.data({"token": token, "sats": sats, "mint": mint_url}, token)


COMMANDS = [earnings, wallet]
