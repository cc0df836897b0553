"""init, daemon start|status|stop, doctor: the commands that work without a running daemon."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from silnode.cli.context import Ctx, json_option
from silnode.cli.identity import (
    create_identity,
    read_password,
    saved_password,
    saved_password_path,
    show_phrase_once,
    warn_weak,
)
from silnode.cli.output import human_size
from silnode.errors import DaemonNotRunning, SilnodeError
from silnode.fsutil import atomic_write_bytes
from silnode.home import daemon_state, ensure_token, pid_alive, prepare_home
from silnode.identity import Keystore

pass_ctx = click.make_pass_decorator(Ctx, ensure=True)

CONFIG_TEMPLATE = """\
# silnode configuration. Every key and its default: config.yaml.example in the silnode repository.
# Precedence: defaults < this file < SILNODE_<SECTION>__<KEY> environment variables < command-line flags.
daemon:
  bind_address: 127.0.0.1   # loopback only; any other address requires the API token for every call
  port: 8737
storage:
  base_dir: ""              # empty: models live under SILNODE_HOME
"""


def ensure_home(config: Any, *, force_config: bool = False) -> list[str]:
    """SILNODE_HOME with config.yaml, api.token (0600) and the store's directories; returns what it created."""
    prepare_home(config)
    created = []
    if force_config or not config.config_file.exists():
        atomic_write_bytes(config.config_file, CONFIG_TEMPLATE.encode(), mode=0o600)
        created.append(str(config.config_file))
    had_token = config.token_file.exists()
    ensure_token(config.token_file)
    if not had_token:
        created.append(str(config.token_file))
    from silnode.store import Store  # init only: the store pulls in the GGUF reader

    Store(config.base_dir).ensure_dirs()
    return created


@click.command()
@click.option("--force-config", is_flag=True, help="Rewrite config.yaml even if it exists.")
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, exists=True),
    help="Keystore password for the new identity (else SILNODE_PASSWORD, else a prompt).",
)
@click.option("--no-identity", is_flag=True, help="Do not create an identity now.")
@json_option
@pass_ctx
def init(ctx: Ctx, force_config: bool, password_file: str | None, no_identity: bool) -> None:
    """Create SILNODE_HOME: config.yaml, api.token (0600), the model store and an identity (seed phrase)."""

    config = ctx.config()
    created = ensure_home(config, force_config=force_config)

    ks = Keystore.for_config(config)
    npub = None
    if ks.exists():
        npub = ks.read_public_info()["npub"]
    elif not no_identity:
        password = read_password(password_file, new=True, prompt="New keystore password", required=False)
        if password is None:
            ctx.out.info(
                "no identity created (no password: set SILNODE_PASSWORD or use --password-file); "
                "create one later with `silnode identity new`"
            )
        else:
            warn_weak(ctx, password)
            ks, ident = create_identity(ctx, password, 12)
            created.append(str(ks.path))
            npub = ident.npub
            show_phrase_once(ctx, ident)
    ctx.out.data(
        {
            "home": str(config.home),
            "config": str(config.config_file),
            "token": str(config.token_file),
            "store": str(config.base_dir),
            "created": created,
            "npub": npub,
        },
        f"silnode home ready at {config.home}"
        + (f" (created {len(created)} file(s))" if created else "")
        + (f"\nnpub {npub}" if npub else ""),
    )
    ctx.out.info("next: `silnode daemon start`, then `silnode import FILE.gguf --name org/model`")


@click.group()
def daemon() -> None:
    """Start, inspect or stop the background node."""


@daemon.command()
@click.option("--foreground", is_flag=True, help="Stay in front (logs to stderr); Ctrl-C stops.")
@click.option("--port", type=int, help="Override daemon.port.")
@click.option("--bind", help="Override daemon.bind_address.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the daemon to answer.")
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, exists=True),
    help="Keystore password (else SILNODE_PASSWORD, else a prompt; without one the keys stay locked).",
)
@click.option("--password-fd", type=int, hidden=True)  # how a background daemon gets the password from its CLI
@json_option
@pass_ctx
def start(
    ctx: Ctx,
    foreground: bool,
    port: int | None,
    bind: str | None,
    timeout: float,
    password_file: str | None,
    password_fd: int | None,
) -> None:
    """Start the daemon (in the background unless --foreground)."""

    config = ctx.config(**{"daemon.port": port, "daemon.bind_address": bind})
    state, info = daemon_state(config)
    if state == "running" and info:
        ctx.out.data(
            {"state": "running", "pid": info.pid, "url": info.url, "already": True},
            f"daemon already running (pid {info.pid}) at {info.url}",
        )
        return
    if state == "stale":
        ctx.out.info(f"removing stale {config.daemon_file}")
        config.daemon_file.unlink(missing_ok=True)
    password = _daemon_password(config, password_file, password_fd)
    if foreground:
        # costly (aiohttp, the whole node): only when this process becomes the daemon, so every other
        # command starts in a tenth of a second
        from silnode.daemon import run_foreground

        sys.exit(run_foreground(config, password))

    pid, url = spawn_daemon(config, password, port=port, bind=bind, timeout=timeout)
    ctx.out.data({"state": "running", "pid": pid, "url": url, "already": False}, f"daemon started (pid {pid}) at {url}")


def spawn_daemon(
    config: Any, password: str | None, *, port: int | None = None, bind: str | None = None, timeout: float = 30.0
) -> tuple[int, str]:
    """Start the daemon in the background and wait until it answers: (pid, url)."""
    prepare_home(config)
    # the password goes to the daemon through an inherited pipe: never on its command line or in its
    # environment (both are readable in /proc by other processes of the user)
    env = {k: v for k, v in os.environ.items() if k != "SILNODE_PASSWORD"}
    env["SILNODE_HOME"] = str(config.home)
    args = [sys.executable, "-m", "silnode", "daemon", "start", "--foreground"]
    if port is not None:
        args += ["--port", str(port)]
    if bind is not None:
        args += ["--bind", bind]
    pass_fds: tuple[int, ...] = ()
    if password is not None:
        r, w = os.pipe()
        os.write(w, password.encode())  # a pipe buffer (64 KiB) holds any password
        os.close(w)
        args += ["--password-fd", str(r)]
        pass_fds = (r,)
    with open(config.log_file, "ab") as log:
        proc = subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
            pass_fds=pass_fds,
        )
    for fd in pass_fds:
        os.close(fd)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = _log_tail(config.log_file)
            raise SilnodeError(
                f"daemon exited during startup (code {proc.returncode}): {tail}", hint=f"full log: {config.log_file}"
            )
        state, info = daemon_state(config)
        if state == "running" and info and info.pid == proc.pid:
            return info.pid, info.url
        time.sleep(0.05)
    proc.terminate()
    raise SilnodeError(f"daemon did not answer within {timeout:.0f} s", hint=f"see {config.log_file}")


def _daemon_password(config: Any, password_file: str | None, password_fd: int | None) -> str | None:
    """The keystore password for the daemon, or None (no identity, or none given: keys stay locked)."""

    if password_fd is not None:
        with os.fdopen(password_fd, "rb") as fh:
            return fh.read().decode()
    if not Keystore.for_config(config).exists():
        return None
    if password_file is None and "SILNODE_PASSWORD" not in os.environ:
        saved = saved_password(config)  # a node set up by `silnode up` without a terminal
        if saved is not None:
            return saved
    return read_password(password_file, prompt="Keystore password (to unlock the node's keys)", required=False)


def _log_tail(path: Path, n: int = 1) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    errors = [line for line in lines if " ERROR " in line or "error" in line.lower()]
    return (errors or lines or ["(empty log)"])[-n]


@daemon.command()
@json_option
@pass_ctx
def status(ctx: Ctx) -> None:
    """Is the daemon running? With it: uptime, store size, services."""

    config = ctx.config()
    state, info = daemon_state(config)
    if state != "running" or info is None:
        data: dict[str, Any] = {"state": state, "home": str(config.home)}
        if info:
            data.update(pid=info.pid, port=info.port)
        msg = {
            "stopped": "daemon not running",
            "stale": f"daemon not running (stale {config.daemon_file.name}: "
            f"pid {info.pid if info else '?'} gone or not answering)",
        }[state]
        ctx.out.data(data, msg)
        if not ctx.json_mode:
            ctx.out.info("start it with `silnode daemon start`")
        sys.exit(3)
    st = ctx.client().status()
    st.pop("ok", None)
    st.update(state="running", url=info.url)
    store = st["store"]

    ctx.out.data(
        st,
        (
            f"daemon running (pid {st['pid']}, version {st['version']}) at {info.url}\n"
            f"uptime {st['uptime_s']:.0f} s; services: {', '.join(st['services'])}\n"
            f"store {store['path']}: {store['models']} model(s), {human_size(store['bytes'])}, "
            f"{human_size(store['free_bytes'])} free"
        ),
    )


@daemon.command()
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait before SIGTERM/SIGKILL.")
@json_option
@pass_ctx
def stop(ctx: Ctx, timeout: float) -> None:
    """Stop the daemon cleanly (admin/shutdown, then SIGTERM if it does not go)."""

    config = ctx.config()
    state, info = daemon_state(config)
    if state == "stale":
        config.daemon_file.unlink(missing_ok=True)
        ctx.out.data({"state": "stopped", "stale_removed": True}, "daemon was not running; removed stale daemon.json")
        return
    if state != "running" or info is None:
        raise DaemonNotRunning("daemon not running", hint="nothing to stop")
    try:
        ctx.client().shutdown()
    except DaemonNotRunning:
        pass
    deadline = time.monotonic() + timeout
    sent_term = False
    while pid_alive(info.pid):
        if time.monotonic() > deadline:
            if sent_term:
                os.kill(info.pid, signal.SIGKILL)
                break
            os.kill(info.pid, signal.SIGTERM)
            sent_term, deadline = True, time.monotonic() + 5
        time.sleep(0.05)
    ctx.out.data({"state": "stopped", "pid": info.pid}, f"daemon stopped (pid {info.pid})")


def _port_free(host: str, port: int) -> bool:
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
        return True
    except OSError:
        return False


@click.command()
@json_option
@pass_ctx
def doctor(ctx: Ctx) -> None:
    """Check ports, disk, store, daemon and token; print what to fix."""

    checks: list[dict[str, Any]] = []

    def add(name: str, status: str, detail: str, hint: str | None = None) -> None:
        checks.append({"check": name, "status": status, "detail": detail, "hint": hint})

    try:
        config = ctx.config()
        add("config", "ok", f"{config.config_file}" if config.config_file.exists() else "defaults (no config.yaml)")
    except SilnodeError as exc:
        add("config", "fail", str(exc), "fix the key named above in config.yaml or the environment")
        return _doctor_report(ctx, checks)

    home = config.home
    if not home.exists():
        add("home", "fail", f"{home} does not exist", "run `silnode init`")
    else:
        mode = home.stat().st_mode & 0o777
        add(
            "home",
            "ok" if not mode & 0o077 else "warn",
            f"{home} (mode {mode:o})",
            None if not mode & 0o077 else f"chmod 700 {home}",
        )
    tok = config.token_file
    if not tok.exists():
        add("token", "warn", f"{tok} missing", "run `silnode init` (the daemon also creates it)")
    else:
        mode = tok.stat().st_mode & 0o777
        add(
            "token",
            "ok" if mode == 0o600 else "fail",
            f"{tok} (mode {mode:o})",
            None if mode == 0o600 else f"chmod 600 {tok}",
        )
    base = config.base_dir
    probe = base if base.exists() else base.parent
    if probe.exists():
        usage = shutil.disk_usage(probe)
        free_gib = usage.free / 2**30
        add(
            "disk",
            "ok" if usage.free > config.storage.min_free_bytes else "fail",
            f"{free_gib:.1f} GiB free at {probe}",
            None if usage.free > config.storage.min_free_bytes else "free space or move storage.base_dir",
        )
        models = base / "models"
        if models.exists():
            add(
                "store",
                "ok" if os.access(models, os.W_OK) else "fail",
                f"{models}",
                None if os.access(models, os.W_OK) else f"make {models} writable",
            )
        else:
            add("store", "warn", f"{models} not created yet", "run `silnode init`")
    state, info = daemon_state(config)
    daemon_relays: list[dict[str, Any]] | None = None  # the running daemon's view of its relays
    if state == "running" and info:
        add("daemon", "ok", f"running, pid {info.pid}, {info.url}")
        try:
            daemon_relays = ctx.client().dvm().get("relays") or []
        except SilnodeError:
            daemon_relays = None
        try:
            bt = ctx.client().status().get("torrents") or {}
            if bt.get("dht_enabled"):
                nodes = bt.get("dht_nodes", 0)
                add(
                    "dht",
                    "ok" if nodes else "warn",
                    f"{nodes} node(s) in the routing table",
                    None
                    if nodes
                    else "no DHT peers yet: check network.dht_bootstrap and that UDP "
                    f"{bt.get('listen_port')} is reachable",
                )
            else:
                add("dht", "ok", "off (peers come from --peer and magnet hints)")
            add(
                "bittorrent",
                "ok",
                f"listening on port {bt.get('listen_port')}, {bt.get('seeding', 0)} seed(s), "
                f"{bt.get('downloads', 0)} download(s)",
            )
        except SilnodeError as exc:
            add("bittorrent", "warn", f"status unavailable: {exc}")
    elif state == "stale":
        add("daemon", "warn", "stale daemon.json (process gone or not answering)", "run `silnode daemon start`")
    else:
        add("daemon", "warn", "not running", "run `silnode daemon start`")
        port_ok = _port_free(config.daemon.bind_address, config.daemon.port)
        add(
            "api port",
            "ok" if port_ok else "fail",
            f"{config.daemon.bind_address}:{config.daemon.port} {'free' if port_ok else 'in use'}",
            None if port_ok else "set daemon.port to a free port",
        )
    bt_ok = _port_free("0.0.0.0", config.network.listen_port) if config.network.listen_port else True
    add(
        "bittorrent port",
        "ok" if bt_ok else "warn",
        f"{config.network.listen_port} {'free' if bt_ok else 'in use (fine if the daemon holds it)'}",
    )
    saved = saved_password_path(config)
    if saved.exists():
        add(
            "keystore password",
            "warn",
            f"kept in {saved} by `silnode up` (anyone who can read it can unlock the node's keys)",
            "`silnode identity change-password` sets your own and removes the file",
        )
    try:
        import libtorrent  # noqa: F401

        add("libtorrent", "ok", f"libtorrent {libtorrent.__version__}")
    except ImportError as exc:
        add("libtorrent", "warn", f"not importable ({exc})", "pip install libtorrent==2.1.1")
    # doctor only: the probes and the llama.cpp build check stay out of every other command's start-up
    from silnode.fit.backend import build_info, judge
    from silnode.fit.hardware import probe as probe_hardware

    report = probe_hardware(probes={"cpu": None, "ggml": None})  # NVML, AMD sysfs, Apple: no VRAM used
    gpus = [d.name for d in report.gpus]
    add("llama.cpp", *judge(build_info(), gpus))
    from silnode.cli.doctor_checks import dht_check, gpu_check, relay_check

    add("gpu", *gpu_check(report))
    add("dht bootstrap", *dht_check(config))
    add("relays", *relay_check(config, daemon_relays))
    _doctor_report(ctx, checks)


def _doctor_report(ctx: Ctx, checks: list[dict[str, Any]]) -> None:
    marks = {
        "ok": click.style("ok  ", fg="green"),
        "warn": click.style("warn", fg="yellow"),
        "fail": click.style("FAIL", fg="red"),
    }
    lines = []
    for c in checks:
        lines.append(f"{marks[c['status']]}  {c['check']:<16} {c['detail']}")
        if c["hint"] and c["status"] != "ok":
            lines.append(f"      {'':<16} -> {c['hint']}")
    failed = any(c["status"] == "fail" for c in checks)
    ctx.out.data({"ok": not failed, "checks": checks}, "\n".join(lines))
    if failed:
        sys.exit(1)


COMMANDS = [init, daemon, doctor]
