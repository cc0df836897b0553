"""identity and secrets commands. They work on SILNODE_HOME/identity.enc directly (no daemon needed).

Passwords come from SILNODE_PASSWORD, --password-file, or a prompt when there is a terminal; a seed phrase and
secret values come from stdin or a hidden prompt, never from the command line (shell history, `ps`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from silnode.cli.context import Ctx, json_option
from silnode.errors import BadRequest
from silnode.identity import Keystore, mnemonic, password_warnings

pass_ctx = click.make_pass_decorator(Ctx, ensure=True)


def password_option(fn: Any) -> Any:
    return click.option(
        "--password-file",
        type=click.Path(dir_okay=False, exists=True),
        help="Read the keystore password from this file (else SILNODE_PASSWORD, else a prompt).",
    )(fn)


def read_password(
    password_file: str | None, *, new: bool = False, prompt: str = "Keystore password", required: bool = True
) -> str | None:
    """The keystore password: SILNODE_PASSWORD, --password-file, or a hidden prompt on a terminal."""
    if password_file:
        return Path(password_file).read_text(encoding="utf-8").rstrip("\r\n")
    env = os.environ.get("SILNODE_PASSWORD")
    if env is not None:
        return env
    if sys.stdin.isatty():
        return click.prompt(prompt, hide_input=True, confirmation_prompt=new, err=True)
    if not required:
        return None
    raise BadRequest("no password: set SILNODE_PASSWORD, use --password-file, or run in a terminal")


def saved_password_path(config: Any) -> Path:
    """Where `silnode up` keeps the keystore password of a node set up without a terminal (a documented
    convenience, like lnd's wallet-unlock-password-file): 0600, beside the keystore but never inside it.
    `doctor` flags it; `identity change-password` removes it."""
    return Path(config.home) / "identity.password"


def saved_password(config: Any) -> str | None:
    try:
        return saved_password_path(config).read_text(encoding="utf-8").rstrip("\r\n") or None
    except FileNotFoundError:
        return None


def read_secret_text(what: str) -> str:
    """A phrase or secret value from stdin (scripts) or a hidden prompt (terminals)."""
    if sys.stdin.isatty():
        return click.prompt(what, hide_input=True, err=True)
    value = sys.stdin.read().strip()
    if not value:
        raise BadRequest(f"no {what.lower()} on stdin")
    return value


def warn_weak(ctx: Ctx, password: str) -> None:

    for w in password_warnings(password):
        ctx.out.warn(w)


def create_identity(ctx: Ctx, password: str, words: int, *, force: bool = False, passphrase: str = "") -> Any:

    ks = Keystore.for_config(ctx.config())
    ident = ks.create(mnemonic.generate(words), passphrase, password, force=force)
    return ks, ident


def show_phrase_once(ctx: Ctx, ident: Any) -> None:
    if ctx.json_mode:  # JSON output never carries a secret; say where the phrase is
        click.echo("note: the seed phrase is not printed in --json mode; `silnode identity backup` shows it", err=True)
        return
    click.echo(
        "Your seed phrase (write it down; it is shown once and is the only way to restore this node's keys):", err=True
    )
    click.echo(ident.reveal_mnemonic())


@click.group()
def identity() -> None:
    """The node's one seed phrase and the keys derived from it (Nostr NIP-06, catalog ed25519)."""


@identity.command()
@click.option("--words", type=click.Choice(["12", "24"]), default="12", show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing identity (the old keystore is backed up first).")
@password_option
@json_option
@pass_ctx
def new(ctx: Ctx, words: str, force: bool, password_file: str | None) -> None:
    """Create a new identity; shows the seed phrase once."""
    password = read_password(password_file, new=True, prompt="New keystore password")
    warn_weak(ctx, password)
    ks, ident = create_identity(ctx, password, int(words), force=force)
    if ks.last_backup:
        ctx.out.info(f"the previous keystore was backed up to {ks.last_backup}")
    show_phrase_once(ctx, ident)
    ctx.out.data(ident.public_info(), f"npub {ident.npub}")


@identity.command("import")
@click.option("--force", is_flag=True, help="Replace an existing identity (backed up first).")
@click.option("--with-passphrase", is_flag=True, help="Also ask for a BIP39 passphrase (line 2 on stdin).")
@password_option
@json_option
@pass_ctx
def import_(ctx: Ctx, force: bool, with_passphrase: bool, password_file: str | None) -> None:
    """Restore an identity from a seed phrase read from stdin or a hidden prompt."""

    if sys.stdin.isatty():
        phrase = click.prompt("Seed phrase", hide_input=True, err=True)
        passphrase = click.prompt("BIP39 passphrase", hide_input=True, default="", err=True) if with_passphrase else ""
    else:
        lines = sys.stdin.read().splitlines()
        phrase = lines[0] if lines else ""
        passphrase = lines[1] if with_passphrase and len(lines) > 1 else ""
    phrase = mnemonic.validate(phrase)
    password = read_password(password_file, new=True, prompt="New keystore password")
    warn_weak(ctx, password)
    ks = Keystore.for_config(ctx.config())
    ident = ks.create(phrase, passphrase, password, force=force)
    ctx.out.data(ident.public_info(), f"imported; npub {ident.npub}")


@identity.command()
@json_option
@pass_ctx
def show(ctx: Ctx) -> None:
    """Public keys: npub, Nostr hex public key, catalog public key (never a secret; no password needed)."""

    info = Keystore.for_config(ctx.config()).read_public_info()
    ctx.out.data(info, "\n".join(f"{k}: {v}" for k, v in info.items()))


@identity.command()
@password_option
@json_option
@pass_ctx
def backup(ctx: Ctx, password_file: str | None) -> None:
    """Show the seed phrase (after the password)."""

    ident = Keystore.for_config(ctx.config()).unlock(read_password(password_file))
    data = {"mnemonic": ident.reveal_mnemonic(), "has_passphrase": bool(ident.reveal_passphrase())}
    ctx.out.data(data, ident.reveal_mnemonic())
    if data["has_passphrase"]:
        ctx.out.info("this identity also uses a BIP39 passphrase; you need it too to restore")


@identity.command("change-password")
@password_option
@click.option("--new-password-file", type=click.Path(dir_okay=False, exists=True), help="The new password.")
@json_option
@pass_ctx
def change_password(ctx: Ctx, password_file: str | None, new_password_file: str | None) -> None:
    """Re-encrypt the keystore with a new password."""

    old = (
        saved_password(ctx.config()) if password_file is None and "SILNODE_PASSWORD" not in os.environ else None
    ) or read_password(password_file, prompt="Current password")
    if new_password_file:
        new_pw = Path(new_password_file).read_text(encoding="utf-8").rstrip("\r\n")
    elif os.environ.get("SILNODE_NEW_PASSWORD") is not None:
        new_pw = os.environ["SILNODE_NEW_PASSWORD"]
    elif sys.stdin.isatty():
        new_pw = click.prompt("New password", hide_input=True, confirmation_prompt=True, err=True)
    else:
        raise BadRequest("no new password: use --new-password-file, SILNODE_NEW_PASSWORD or a terminal")
    warn_weak(ctx, new_pw)
    Keystore.for_config(ctx.config()).change_password(old, new_pw)
    saved = saved_password_path(ctx.config())
    removed = saved.exists()
    saved.unlink(missing_ok=True)  # the new password is the user's own: no copy of it stays on disk
    ctx.out.data(
        {"changed": True, "saved_password_removed": removed},
        "password changed" + (f"; removed {saved} (the node now asks for the password)" if removed else ""),
    )


@click.group()
def secrets() -> None:
    """Named secrets kept in the keystore (payment keys, relay auth, ...)."""


@secrets.command("set")
@click.argument("name")
@password_option
@json_option
@pass_ctx
def secrets_set(ctx: Ctx, name: str, password_file: str | None) -> None:
    """Store a secret; the value is read from stdin or a hidden prompt."""

    password = read_password(password_file)
    value = read_secret_text(f"Value of {name}")
    Keystore.for_config(ctx.config()).set_secret(password, name, value)
    ctx.out.data({"name": name, "set": True}, f"secret {name} set")


@secrets.command("list")
@password_option
@json_option
@pass_ctx
def secrets_list(ctx: Ctx, password_file: str | None) -> None:
    """Names of the stored secrets (never their values)."""

    names = Keystore.for_config(ctx.config()).list_secrets(read_password(password_file))
    ctx.out.data({"secrets": names}, "\n".join(names) or "no secrets")


@secrets.command("rm")
@click.argument("name")
@password_option
@json_option
@pass_ctx
def secrets_rm(ctx: Ctx, name: str, password_file: str | None) -> None:
    """Remove a secret."""

    Keystore.for_config(ctx.config()).rm_secret(read_password(password_file), name)
    ctx.out.data({"name": name, "removed": True}, f"secret {name} removed")


COMMANDS = [identity, secrets]
