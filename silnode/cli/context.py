"""What every command gets: the context (home, daemon URL, --json) and the --json option."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from silnode.cli.output import Output
from silnode.config import Config, load_config

if TYPE_CHECKING:
    from silnode.client import Client


@dataclass
class Ctx:
    home: str | None = None
    api_url: str | None = None
    json_mode: bool = False
    _config: Any = field(default=None, repr=False)

    @property
    def out(self) -> Output:
        return Output(self.json_mode)

    def config(self, **overrides: Any) -> Config:
        if overrides:
            return load_config(self.home, overrides=overrides)
        if self._config is None:
            self._config = load_config(self.home)
        return self._config

    def client(self) -> Client:
        from silnode.client import Client  # http.client and friends: only for commands that call the daemon

        return Client.from_config(self.config(), self.api_url)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --json to a command (it may also be given before the command: `silnode --json list`)."""

    def callback(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        if value:
            ctx.ensure_object(Ctx).json_mode = True
        return value

    return click.option(
        "--json",
        "json_flag",
        is_flag=True,
        expose_value=False,
        callback=callback,
        is_eager=True,
        help="Print machine-readable JSON on stdout.",
    )(fn)
