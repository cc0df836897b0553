"""Running the node as a service: `silnode service install|uninstall` (a systemd --user unit) and
`silnode logs [-f]` (the daemon's log, or one model worker's)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click

from silnode.cli.context import Ctx, json_option
from silnode.errors import BadRequest, NotFound

pass_ctx = click.make_pass_decorator(Ctx, ensure=True)

UNIT = "silnode.service"


def unit_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def unit_text(home: Path, password_file: Path | None) -> str:
    """A systemd --user unit that runs the daemon in front (systemd supervises it) for this SILNODE_HOME.
    The keystore password is never in the unit: a file path at most (yours, or the one `silnode up` keeps)."""
    cmd = [sys.executable, "-m", "silnode", "daemon", "start", "--foreground"]
    if password_file is not None:
        cmd += ["--password-file", str(password_file)]
    return (
        "[Unit]\n"
        "Description=silnode: share, serve and sell GGUF models\n"
        "After=network-online.target\n"
        "Wants=network-online.target\n\n"
        "[Service]\n"
        f"Environment=SILNODE_HOME={home}\n"
        f"ExecStart={shlex.join(cmd)}\n"
        "Restart=on-failure\n"
        "RestartSec=5\n"
        # SIGTERM is the daemon's clean stop: workers end, resume data is saved
        "KillSignal=SIGTERM\n"
        "TimeoutStopSec=60\n\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


@click.group()
def service() -> None:
    """Run the node as a systemd --user service."""


@service.command("install")
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, exists=True, resolve_path=True),
    help="Keystore password file the service unlocks the keys with (default: the one `silnode up` keeps, if any).",
)
@click.option("--start", is_flag=True, help="Also run `systemctl --user enable --now silnode`.")
@json_option
@pass_ctx
def install(ctx: Ctx, password_file: str | None, start: bool) -> None:
    """Write ~/.config/systemd/user/silnode.service for this SILNODE_HOME."""
    from silnode.cli.identity import saved_password_path

    config = ctx.config()
    pw = Path(password_file) if password_file else None
    if pw is None and saved_password_path(config).exists():
        pw = saved_password_path(config)
    path = unit_dir() / UNIT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(unit_text(config.home, pw))
    data = {"unit": str(path), "home": str(config.home), "unlocks_keys": pw is not None, "started": False}
    if start:
        if shutil.which("systemctl") is None:
            raise NotFound("systemctl not found", hint=f"the unit is at {path}; start the daemon another way")
        for args in (["daemon-reload"], ["enable", "--now", UNIT]):
            r = subprocess.run(["systemctl", "--user", *args], capture_output=True, text=True, check=False)
            if r.returncode != 0:
                raise BadRequest(f"systemctl --user {' '.join(args)} failed: {r.stderr.strip()}")
        data["started"] = True
    lines = [f"wrote {path}"]
    if pw is None:
        lines.append("no password file: the service runs with the keys locked (`--password-file` to unlock them)")
    if not start:
        lines.append(f"next: systemctl --user daemon-reload && systemctl --user enable --now {UNIT}")
    ctx.out.data(data, "\n".join(lines))


@service.command("uninstall")
@json_option
@pass_ctx
def uninstall(ctx: Ctx) -> None:
    """Remove the unit (stop it first: `systemctl --user disable --now silnode`)."""
    path = unit_dir() / UNIT
    existed = path.exists()
    path.unlink(missing_ok=True)
    ctx.out.data({"unit": str(path), "removed": existed}, f"removed {path}" if existed else "no unit installed")


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C ends).")
@click.option("-n", "--lines", "n", default=50, show_default=True, help="How many of the last lines.")
@click.option("--worker", metavar="MODEL", help="A model worker's log (llama.cpp's own output) instead.")
@pass_ctx
def logs(ctx: Ctx, follow: bool, n: int, worker: str | None) -> None:
    """The daemon's log (SILNODE_HOME/logs), or one model worker's."""
    config = ctx.config()
    path = config.log_file if worker is None else config.home / "logs" / f"worker-{worker.replace('/', '--')}.log"
    if not path.exists():
        raise NotFound(
            f"no log at {path}",
            hint="the daemon writes it once started in the background (`silnode daemon start`)"
            if worker is None
            else f"`silnode serve {worker}` starts its worker",
        )
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        end = fh.tell()
        fh.seek(max(0, end - 256 * 1024))  # enough for the last lines of any log, without reading it all
        tail = fh.read().decode(errors="replace").splitlines()[-n:] if n > 0 else []
        for line in tail:
            click.echo(line)
        if not follow:
            return
        fh.seek(end)
        try:
            while True:
                chunk = fh.read()
                if chunk:
                    click.echo(chunk.decode(errors="replace"), nl=False)
                else:
                    time.sleep(0.3)
        except KeyboardInterrupt:
            pass


COMMANDS = [service, logs]
