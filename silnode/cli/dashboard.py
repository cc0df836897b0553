"""`silnode dashboard [login]`: the dashboard's URL, and a one-time login link for its actions.

Without a login the page is read-only (on a loopback bind); the link (single use, 2 minutes) sets an HttpOnly,
SameSite=Strict cookie in the browser that opens it, and that cookie counts as the admin token there. The
admin token itself never goes into a page or a link.
"""

from __future__ import annotations

import click

from silnode.cli.context import Ctx, json_option

pass_ctx = click.make_pass_decorator(Ctx, ensure=True)


@click.group("dashboard", invoke_without_command=True)
@json_option
@pass_ctx
@click.pass_context
def dashboard(click_ctx: click.Context, ctx: Ctx) -> None:
    """The dashboard's URL (read-only); `silnode dashboard login` prints a one-time login link for its actions."""
    if click_ctx.invoked_subcommand is None:
        url = ctx.client().base_url.rstrip("/") + "/"
        ctx.out.data({"url": url}, f"{url}  (read-only; `silnode dashboard login` for actions)")


@dashboard.command("login")
@json_option
@pass_ctx
def login(ctx: Ctx) -> None:
    """A one-time login link: open it within 2 minutes; it works once, in one browser."""
    link = login_link(ctx)
    ctx.out.data(link, f"{link['url']}\n(open within {link['expires_in']} s; it works once)")


def login_link(ctx: Ctx) -> dict:
    return ctx.client().request("POST", "/api/v1/dashboard/login")


COMMANDS = [dashboard]
