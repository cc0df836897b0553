"""`silnode tokens create|list|revoke`: scoped API tokens.

They work on SILNODE_HOME/tokens.json directly (under a lock), so they work whether the daemon runs or not;
a running daemon sees a change on its next request. The token itself is printed once, at creation; only its
SHA-256 is kept.
"""

from __future__ import annotations

import datetime as _dt

import click

from silnode.cli.context import Ctx, json_option
from silnode.cli.output import table
from silnode.home import TOKEN_SCOPES, TokenStore

pass_ctx = click.make_pass_decorator(Ctx, ensure=True)


def _store(ctx: Ctx) -> TokenStore:
    return TokenStore.for_config(ctx.config())


@click.group("tokens")
def tokens() -> None:
    """Scoped API tokens: an inference token lets a LAN client chat (/v1) and nothing else.

    \b
      silnode tokens create --scope inference --name laptop
      silnode tokens list
      silnode tokens revoke laptop
    """


@tokens.command("create")
@click.option("--scope", type=click.Choice(TOKEN_SCOPES), required=True, help="inference: /v1 only; admin: all.")
@click.option("--name", help="A label to list and revoke it by (default: <scope>-xxxx).")
@json_option
@pass_ctx
def create(ctx: Ctx, scope: str, name: str | None) -> None:
    """Make a token and print it (the only time it is shown)."""
    tok, secret = _store(ctx).create(scope, name)
    ctx.out.data({**tok.public(), "token": secret}, f"{secret}\n")
    ctx.out.info(
        f"token {tok.name!r} ({tok.scope}, id {tok.id}): shown once, keep it now. "
        f"Use it as 'Authorization: Bearer <token>' (OpenAI clients: api_key)."
    )


@tokens.command("list")
@json_option
@pass_ctx
def list_(ctx: Ctx) -> None:
    """The tokens: id, name, scope, created (never the token)."""
    items = [t.public() for t in _store(ctx).tokens()]
    rows = [
        (t["id"], t["name"], t["scope"], _dt.datetime.fromtimestamp(t["created"]).strftime("%Y-%m-%d %H:%M"))
        for t in items
    ]
    human = table(rows, ["ID", "NAME", "SCOPE", "CREATED"]) if rows else "no tokens (the admin token is api.token)"
    ctx.out.data({"tokens": items}, human)


@tokens.command("revoke")
@click.argument("ref")
@json_option
@pass_ctx
def revoke(ctx: Ctx, ref: str) -> None:
    """Revoke a token by id or name; a running daemon refuses it from its next request on."""
    tok = _store(ctx).revoke(ref)
    ctx.out.data({"revoked": tok.public()}, f"revoked {tok.name} ({tok.id})")


COMMANDS = [tokens]
