"""Payments commands: earnings."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import click

from silnode.cli.context import Ctx, json_option
from silnode.cli.output import table
from silnode.errors import DaemonNotRunning

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


COMMANDS = [earnings]
