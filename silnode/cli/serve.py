"""Serving commands: `serve` (load models into the daemon), `models loaded|load|unload`, and `chat`."""

from __future__ import annotations

import sys
from typing import Any

import click

from silnode.cli.context import Ctx, json_option
from silnode.cli.models import _run_task
from silnode.cli.output import table
from silnode.errors import SilnodeError

pass_ctx = click.make_pass_decorator(Ctx, ensure=True)


def _load_all(
    ctx: Ctx, client: Any, names: list[str], n_ctx: int | None, force: bool, embeddings: bool = False
) -> list[dict[str, Any]]:
    loaded = []
    for name in names:
        ctx.out.info(f"loading {name} ...")
        loaded.append(client.load(name, n_ctx=n_ctx, force=force, embeddings=embeddings))
    return loaded


def _default_models(ctx: Ctx, client: Any, n_ctx: int | None) -> list[str]:
    """`serve` with no names: what is served already; else the best model on disk that fits; else, on a
    first run, the starter model."""
    if client.serving():
        return []
    if not client.models():
        if not ctx.config().serve.starter_model:
            raise SilnodeError(
                "the store is empty", hint="`silnode get --auto` or `silnode import FILE --name org/model`"
            )
        ctx.out.info("first run: importing the starter model (Gemma-3-270M, a base model: use completions)")
        return [_run_task(ctx, client, client.import_starter(), "import starter model")["name"]]
    ranking = client.recommend(n_ctx, catalog=False)
    if not ranking["fits"]:
        raise SilnodeError(
            "no model in the store fits this machine",
            hint="`silnode recommend` says why; name one to serve it with --force",
        )
    return [ranking["fits"][0]["name"]]


def _show(ctx: Ctx, models: list[dict[str, Any]], url: str) -> None:
    rows = [
        (
            m["name"],
            m["state"],
            m["n_ctx"],
            m.get("pid") or "-",
            m["queue_depth"],
            m["requests"],
            m["tokens_per_second"] or "-",
            m["restarts"],
        )
        for m in models
    ]
    text = (
        table(rows, ["MODEL", "STATE", "CTX", "PID", "QUEUE", "REQUESTS", "TOK/S", "RESTARTS"])
        if rows
        else "no models loaded (`silnode serve NAME`)"
    )
    errors = [f"{m['name']}: {m['error']}" for m in models if m.get("error")]
    ready = [m for m in models if m["state"] == "ready"]
    hints = []
    if ready:
        m = ready[0]
        base = not (m.get("info") or {}).get("chat_template")
        path, payload = (
            ("completions", '"prompt":"Once upon a time"')
            if base
            else ("chat/completions", '"messages":[{"role":"user","content":"Hello"}]')
        )
        hints.append(f'try: curl {url}/v1/{path} -d \'{{"model":"{m["name"]}",{payload}}}\'')
        if base:
            hints.append(
                f"{m['name']} has no chat template (a base model): it continues text; "
                f"use /v1/completions or `silnode chat {m['name']}`"
            )
    ctx.out.data({"models": models}, "\n".join([text, *errors, *hints]))


@click.command()
@click.argument("models", nargs=-1)
@click.option("--auto", is_flag=True, help="The best model that fits (on disk first, else from the seed catalog).")
@click.option("--ctx", "n_ctx", type=click.IntRange(min=1), help="Context size (default: serve.n_ctx).")
@click.option("--force", is_flag=True, help="Load even when the memory estimate says it won't fit.")
@click.option("--no-sell", is_flag=True, help="Keep the models local: do not sell them on Nostr (NIP-90).")
@click.option("--embeddings", is_flag=True, help="Load for POST /v1/embeddings (embedding mode), not generation.")
@json_option
@pass_ctx
def serve(
    ctx: Ctx, models: tuple[str, ...], auto: bool, n_ctx: int | None, force: bool, no_sell: bool, embeddings: bool
) -> None:
    """Load models into the daemon and return when they are ready; the daemon keeps serving them
    (OpenAI-compatible /v1 on its port) and serves them again after a restart.

    With no MODELS: the best model on disk that fits; on a first run with an empty store, the starter
    model (Gemma-3-270M)."""
    client = ctx.client()
    names = list(models)
    if auto:
        if names:
            raise click.UsageError("give model names or --auto, not both")
        result = client.get(None, auto=True, n_ctx=n_ctx)
        if "task" in result:
            ctx.out.info(f"getting {result['model']}: {result['reason']}")
            _run_task(ctx, client, result["task"], f"get {result['model']}")
        names = [result["model"]]
    elif not names:
        names = _default_models(ctx, client, n_ctx)
    _load_all(ctx, client, names, n_ctx, force, embeddings)
    _show_selling(ctx, client.set_selling(not no_sell))
    _show(ctx, client.serving(), client.base_url)


def _show_selling(ctx: Ctx, dvm: dict[str, Any]) -> None:
    if dvm["state"] == "selling":
        ctx.out.info(f"selling on Nostr as {dvm['npub']} via {', '.join(dvm['relays'])} (--no-sell keeps it local)")
    else:
        ctx.out.info(f"not selling on Nostr: {dvm['reason'] or dvm['state']}")


@click.group("models")
def models_group() -> None:
    """The models the daemon serves: `models loaded`, `models load NAME`, `models unload NAME`."""


@models_group.command("loaded")
@json_option
@pass_ctx
def loaded(ctx: Ctx) -> None:
    """The loaded models: state, worker pid, queue depth, requests, tokens/s, restarts."""
    client = ctx.client()
    _show(ctx, client.serving(), client.base_url)


@models_group.command("load")
@click.argument("name")
@click.option("--ctx", "n_ctx", type=click.IntRange(min=1), help="Context size (default: serve.n_ctx).")
@click.option("--force", is_flag=True, help="Load even when the memory estimate says it won't fit.")
@click.option("--embeddings", is_flag=True, help="Load for POST /v1/embeddings (embedding mode), not generation.")
@json_option
@pass_ctx
def load(ctx: Ctx, name: str, n_ctx: int | None, force: bool, embeddings: bool) -> None:
    """Load one model (also: start a model again after it failed)."""
    client = ctx.client()
    m = client.load(name, n_ctx=n_ctx, force=force, embeddings=embeddings)
    ctx.out.data(m, f"{m['name']} is {m['state']} (ctx {m['n_ctx']}, pid {m.get('pid')})")


@models_group.command("unload")
@click.argument("name")
@json_option
@pass_ctx
def unload(ctx: Ctx, name: str) -> None:
    """Stop serving a model: its worker exits and frees its memory."""
    ctx.out.data(ctx.client().unload(name), f"unloaded {name}")


@click.command()
@click.argument("model")
@click.argument("prompt", required=False)
@click.option("--max-tokens", type=click.IntRange(min=1), default=512, show_default=True)
@click.option("--temperature", type=click.FloatRange(0, 2), default=0.8, show_default=True)
@click.option("--system", help="A system message (chat models).")
@click.option("--complete", is_flag=True, help="Continue the text (/v1/completions) instead of chatting.")
@json_option
@pass_ctx
def chat(
    ctx: Ctx, model: str, prompt: str | None, max_tokens: int, temperature: float, system: str | None, complete: bool
) -> None:
    """Stream a reply from a loaded model; interactive when no PROMPT is given (an empty line ends).

    A base model (no chat template) continues your text instead of chatting. With --json (and a PROMPT):
    {"model", "prompt", "text"} once the reply is complete."""
    if ctx.out.json_mode and prompt is None:
        raise click.UsageError("--json needs a PROMPT (the interactive mode is for people)")
    client = ctx.client()
    info = next((m for m in client.serving() if m["name"] == model), None)
    if info is None:
        raise SilnodeError(f"{model} is not loaded", hint=f"`silnode serve {model}`")
    if not complete and not (info.get("info") or {}).get("chat_template"):
        complete = True
        ctx.out.info(f"{model} is a base model (no chat template): it continues your text")
    history: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    params = {"model": model, "max_tokens": max_tokens, "temperature": temperature}

    def reply(text: str) -> str:
        if complete:
            chunks = client.stream("/v1/completions", {**params, "prompt": text})
            pieces = (c["choices"][0].get("text") or "" for c in chunks if c.get("choices"))
        else:
            history.append({"role": "user", "content": text})
            chunks = client.stream("/v1/chat/completions", {**params, "messages": history})
            pieces = (c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
        out = []
        for piece in pieces:
            out.append(piece)
            if not ctx.out.json_mode:
                click.echo(piece, nl=False)
                sys.stdout.flush()
        if not ctx.out.json_mode:
            click.echo()
        if not complete:
            history.append({"role": "assistant", "content": "".join(out)})
        return "".join(out)

    if prompt is not None:
        text = reply(prompt)
        if ctx.out.json_mode:
            ctx.out.data({"model": model, "prompt": prompt, "text": text})
        return
    while True:
        try:
            line = click.prompt(">", prompt_suffix=" ", default="", show_default=False)
        except (EOFError, click.Abort):
            break
        if not line.strip():
            break
        reply(line)


COMMANDS = [serve, models_group, chat]
