"""`silnode tasks show|cancel ID`: the daemon's long operations (import, share hf://, get from the seed catalog,
verify). A cancelled task stops at its next progress step (a download: within its next MiB) and cleans up after
itself: nothing half-done stays in the store or the Hugging Face cache."""

from __future__ import annotations

from typing import Any

import click

from silnode.cli.context import Ctx, json_option
from silnode.cli.output import human_size

pass_ctx = click.make_pass_decorator(Ctx, ensure=True)


def _line(t: dict[str, Any]) -> str:
    done, total = t.get("done_bytes") or 0, t.get("total_bytes") or 0
    size = f" {human_size(done)}/{human_size(total)}" if total else ""
    state = "cancelling" if t.get("cancelling") else t["state"]
    error = f": {t['error'].get('error')}" if t.get("error") else ""
    return f"{t['id']} {t['description']}: {state}{size}{error}"


@click.group("tasks")
def tasks() -> None:
    """The daemon's long operations; `tasks cancel ID` stops one (IDs are printed when a task starts)."""


@tasks.command("show")
@click.argument("task_id")
@json_option
@pass_ctx
def show(ctx: Ctx, task_id: str) -> None:
    """A task's state and progress."""
    t = ctx.client().task(task_id)
    ctx.out.data(t, _line(t))


@tasks.command("cancel")
@click.argument("task_id")
@json_option
@pass_ctx
def cancel(ctx: Ctx, task_id: str) -> None:
    """Cancel a running task: it stops at its next progress step (a download: its next chunk)."""
    t = ctx.client().cancel_task(task_id)
    ctx.out.data(t, f"{_line(t)}\n`silnode tasks show {t['id']}` follows it")


COMMANDS = [tasks]
