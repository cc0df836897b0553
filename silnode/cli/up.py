"""`silnode up`: from nothing to a serving node in one command, and back again for a returning user.

    silnode up [--auto] [--detach]

1. SILNODE_HOME: config.yaml, api.token, the store (as `init`).
2. The identity. A returning user's keystore is unlocked (SILNODE_PASSWORD, --password-file, the saved
   password of step 2b, or a prompt). A first run with a terminal asks for a new password; without a terminal
   (a script, `make run` in CI, a container) it generates the seed phrase, shows it once, and keeps a random
   keystore password in SILNODE_HOME/identity.password (0600): a documented convenience that `doctor` flags
   and `identity change-password` removes.
3. The daemon, in the background (or the one already running).
4. A model served: what was served before; else the best model on disk that fits; else the starter model
   (Gemma-3-270M, a base model: it continues text, so the hint uses /v1/completions). --auto takes the best
   model that fits this machine, downloading it from the seed catalog if needed.
5. The URLs. Then it stays in front until Ctrl-C, which stops the daemon it started (--detach returns at once;
   a daemon that was already running is left running).
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from typing import Any

import click

from silnode.cli.context import Ctx, json_option
from silnode.cli.daemon_cmds import _daemon_password, ensure_home, spawn_daemon
from silnode.cli.identity import create_identity, read_password, saved_password_path, show_phrase_once, warn_weak
from silnode.cli.serve import _default_models, _load_all, _show
from silnode.fsutil import atomic_write_bytes
from silnode.home import daemon_state
from silnode.identity import Keystore

pass_ctx = click.make_pass_decorator(Ctx, ensure=True)


def _first_identity(ctx: Ctx, password_file: str | None) -> str | None:
    """Create the node's identity on a first run; returns the npub (None when the user declines)."""
    config = ctx.config()
    if password_file or "SILNODE_PASSWORD" in os.environ:
        password = read_password(password_file)
    elif sys.stdin.isatty():
        if not click.confirm(
            "Create this node's identity (a seed phrase for its Nostr and catalog keys)?", default=True, err=True
        ):
            ctx.out.info(
                "no identity: sharing and serving work; selling and publishing need one (`silnode identity new`)"
            )
            return None
        password = read_password(None, new=True, prompt="New keystore password")
    else:
        # no terminal to ask: a strong random password, kept where the daemon finds it (0600, never inside the
        # keystore file); the user replaces it with `silnode identity change-password`
        password = secrets.token_urlsafe(24)
        atomic_write_bytes(saved_password_path(config), password.encode(), mode=0o600)
        ctx.out.info(
            f"no terminal: generated the keystore password and kept it in {saved_password_path(config)} (0600); "
            "`silnode identity change-password` sets your own and removes that file"
        )
    assert password is not None
    warn_weak(ctx, password)
    _, ident = create_identity(ctx, password, 12)
    show_phrase_once(ctx, ident)
    return str(ident.npub)


@click.command()
@click.option("--auto", is_flag=True, help="Serve the best model that fits this machine (downloading it if needed).")
@click.option("--detach", is_flag=True, help="Return once the node is up instead of staying in front.")
@click.option("--port", type=int, help="Override daemon.port.")
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, exists=True),
    help="Keystore password (else SILNODE_PASSWORD, the saved one, or a prompt).",
)
@json_option
@pass_ctx
def up(ctx: Ctx, auto: bool, detach: bool, port: int | None, password_file: str | None) -> None:
    """Set up (if needed), start, serve a model and print the URLs; Ctrl-C stops the node."""

    config = ctx.config(**{"daemon.port": port})
    created = ensure_home(config)
    if created:
        ctx.out.info(f"created {config.home}")
    ks = Keystore.for_config(config)
    npub = ks.read_public_info()["npub"] if ks.exists() else _first_identity(ctx, password_file)

    state, info = daemon_state(config)
    started = not (state == "running" and info)
    if started:
        if state == "stale":
            config.daemon_file.unlink(missing_ok=True)
        password = _daemon_password(config, password_file, None)
        ctx.out.info("starting the daemon ...")
        pid, url = spawn_daemon(config, password, port=port)
    else:
        assert info is not None
        pid, url = info.pid, info.url
        ctx.out.info(f"the daemon is already running (pid {pid})")

    client = ctx.client()
    if auto:
        from silnode.cli.models import _run_task

        result = client.get(None, auto=True)
        if "task" in result:
            ctx.out.info(f"getting {result['model']}: {result['reason']}")
            _run_task(ctx, client, result["task"], f"get {result['model']}")
        names = [result["model"]]
    else:
        names = _default_models(ctx, client, None)
    _load_all(ctx, client, names, None, False)
    served = _settled(ctx, client, ctx.config().serve.load_timeout or 600)
    data: dict[str, Any] = {
        "home": str(config.home),
        "pid": pid,
        "url": url,
        "openai_base_url": f"{url}/v1",
        "dashboard": f"{url}/",
        "npub": npub,
        "models": served,
        "started": started,
    }
    if ctx.json_mode:
        ctx.out.data(data, "")
    else:
        _show(ctx, served, url)
        ctx.out.info(
            f"node up: API {url}/api/v1, OpenAI-compatible {url}/v1" + (f", npub {npub}" if npub else ", no identity")
        )
        ctx.out.info(_dashboard_line(client, url))
    if detach or not started:
        return
    ctx.out.info("Ctrl-C stops the node")
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop["now"]:
        state, info = daemon_state(config)
        if state != "running" or info is None or info.pid != pid:
            ctx.out.error("the daemon stopped", f"see {config.log_file}", None)
            sys.exit(1)
        time.sleep(0.5)
    ctx.out.info("stopping the node ...")
    client.shutdown()
    deadline = time.monotonic() + 30
    while daemon_state(config)[0] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    ctx.out.info("stopped")


def _settled(ctx: Ctx, client: Any, limit: float) -> list[dict[str, Any]]:
    """The served models once none is still loading: a restarted daemon loads its remembered models in the
    background, and `up` should end with them ready (or failed, with the reason), not "loading"."""
    deadline = time.monotonic() + limit
    said: set[str] = set()
    while True:
        served = client.serving()
        busy = [m["name"] for m in served if m["state"] in ("loading", "restarting")]
        if not busy or time.monotonic() > deadline:
            return served
        for name in set(busy) - said:
            ctx.out.info(f"waiting for {name} to load ...")
        said |= set(busy)
        time.sleep(0.25)


def _dashboard_line(client: Any, url: str) -> str:
    """The dashboard's URL, and a one-time login link for its actions (works once, within 2 minutes)."""
    try:
        link = client.request("POST", "/api/v1/dashboard/login")
    except Exception:  # noqa: BLE001 - an older daemon without the login: the read-only URL still helps
        return f"dashboard: {url}/ (read-only)"
    return (
        f"dashboard: {url}/ (read-only); to log in for its actions open {link['url']} "
        f"within {link['expires_in']} s (once; `silnode dashboard login` makes another)"
    )


COMMANDS = [up]
