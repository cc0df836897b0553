"""`silnode` command line. One module per command group; errors become messages in ONE place (here).

Every command takes ``--json``. Data goes to stdout; progress, errors and hints go to stderr. An error is
one line plus a hint; a traceback only with SILNODE_DEBUG=1.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import click

from silnode import __version__
from silnode.cli import daemon_cmds, discover, dvm, fit, identity, models, serve, service, status, transfers, up
from silnode.cli import dashboard as dashboard_cmds
from silnode.cli import payments as payments_cmds
from silnode.cli import tasks as tasks_cmds
from silnode.cli import tokens as tokens_cmds
from silnode.cli.context import Ctx, json_option
from silnode.errors import SilnodeError


def render_error(ctx: Ctx, exc: BaseException) -> int:
    """The one place that turns exceptions into what the user reads. Returns the exit code."""
    out = ctx.out
    if os.environ.get("SILNODE_DEBUG"):
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, SilnodeError):
        out.error(exc.message, exc.hint, exc.to_json())
        return 1
    if isinstance(exc, PermissionError):
        out.error(f"permission denied: {exc.filename or exc}", "check the owner of SILNODE_HOME")
        return 1
    if isinstance(exc, OSError):
        out.error(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
        return 1
    out.error(
        f"unexpected {exc.__class__.__name__}: {exc}",
        None if os.environ.get("SILNODE_DEBUG") else "set SILNODE_DEBUG=1 for the full traceback",
    )
    return 1


class SilnodeGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            code = render_error(ctx.ensure_object(Ctx), exc)
            ctx.exit(code)


@click.group(cls=SilnodeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="silnode")
@click.option(
    "--home",
    envvar="SILNODE_HOME",
    type=click.Path(file_okay=False),
    help="Node home (SILNODE_HOME, default ~/.silnode).",
)
@click.option("--api-url", envvar="SILNODE_API_URL", help="Daemon URL (default: from SILNODE_HOME/daemon.json).")
@json_option
@click.pass_context
def cli(ctx: click.Context, home: str | None, api_url: str | None) -> None:
    """silnode: share GGUF models peer to peer, serve and sell inference.

    \b
    Start here:
      silnode init                  create SILNODE_HOME (config, token, store)
      silnode daemon start          run the node in the background
      silnode import FILE --name org/model
      silnode list
    """
    obj = ctx.ensure_object(Ctx)
    obj.home = home
    obj.api_url = api_url


def _register() -> None:
    for mod in (
        daemon_cmds,
        models,
        transfers,
        identity,
        fit,
        serve,
        up,
        service,
        tokens_cmds,
        discover,
        dvm,
        payments_cmds,
        status,
        tasks_cmds,
        dashboard_cmds,
    ):
        for cmd in mod.COMMANDS:
            cli.add_command(cmd)


_register()


def main() -> None:
    try:
        cli.main(prog_name="silnode")
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
