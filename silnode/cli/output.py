"""One output sink: data to stdout (human text or JSON), progress, errors and hints to stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click


class Output:
    def __init__(self, json_mode: bool = False) -> None:
        self.json_mode = json_mode

    def data(self, obj: Any, human: str | None = None) -> None:
        """Print a result: the JSON object in --json mode, else the human text (when given)."""
        if self.json_mode:
            click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))
        elif human is not None:
            click.echo(human)

    def info(self, message: str) -> None:
        if not self.json_mode:
            click.echo(message, err=True)

    def warn(self, message: str) -> None:
        click.echo(click.style("warning: ", fg="yellow") + message, err=True)

    def error(self, message: str, hint: str | None = None, envelope: dict[str, Any] | None = None) -> None:
        if self.json_mode and envelope is not None:
            click.echo(json.dumps(envelope, sort_keys=True), err=True)
            return
        click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
        if hint:
            click.echo(click.style("hint: ", fg="cyan") + hint, err=True)

    def progress(self, total: int, desc: str):
        """A byte progress bar on stderr (silent in --json mode or when stderr is not a terminal)."""
        # tqdm only for commands that show progress
        from tqdm import tqdm

        return tqdm(
            total=total or None,
            desc=desc,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            disable=self.json_mode or not sys.stderr.isatty(),
            leave=False,
        )


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)  # pragma: no cover


def human_params(n: int | None) -> str:
    if not n:
        return "-"
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.1f}{suffix}"
    return str(n)


def lines(items: Iterable[str]) -> str:
    return "\n".join(items)
