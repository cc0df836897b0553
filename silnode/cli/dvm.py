"""Nostr commands: `relay` (the embedded relay, standalone), `ask` (a NIP-90 customer, no daemon needed),
`jobs` (the daemon's job store), `providers` (NIP-89 announcements of kind-5050 sellers on the relays).

nostr-sdk and the dvm package load inside the commands, not at CLI start."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from typing import Any

import click

from silnode.cli.context import Ctx, json_option
from silnode.cli.identity import password_option, read_password
from silnode.cli.output import table
from silnode.errors import BadRequest, JobRejected, NostrError, SilnodeError

pass_ctx = click.make_pass_decorator(Ctx, ensure=True)


def _relays(ctx: Ctx, given: tuple[str, ...]) -> list[str]:
    """--relay, else nostr.relays, else this machine's embedded relay (the daemon's, or `silnode relay`)."""
    if given:
        return list(given)
    ns = ctx.config().nostr
    return list(ns.relays) or [f"ws://127.0.0.1:{ns.relay_port}"]


relay_option = click.option("--relay", "relays", multiple=True, help="A relay URL (repeatable; default: config).")


def _customer_keys(ctx: Ctx, password_file: str | None) -> tuple[Any, str]:
    """NIP-06 account 1 of the node's seed when the identity can be unlocked; else a one-off key."""
    from nostr_sdk import Keys

    from silnode.identity import Keystore

    ks = Keystore.for_config(ctx.config())
    if ks.exists():
        password = read_password(password_file, required=False)
        if password is not None:
            from silnode.dvm.customer import customer_keys

            return customer_keys(ks.unlock(password)), "identity (NIP-06 account 1)"
    return Keys.generate(), "a one-off key (no identity unlocked)"


@click.command()
@click.argument("prompt")
@click.option("--model", help="The model to ask for (a provider's served model, org/model).")
@click.option("--provider", help="The provider's npub or hex key (default: the newest that serves --model).")
@click.option("--encrypt", is_flag=True, help="Encrypt the job to the provider (NIP-44 v2).")
@click.option("--nip04", is_flag=True, help="With --encrypt: use NIP-04 instead (older clients).")
@click.option("--max-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--temperature", type=click.FloatRange(0, 2))
@click.option("--bid", type=click.IntRange(min=0), help="The most you will pay, in millisatoshis (recorded).")
@click.option("--timeout", type=click.FloatRange(min=1), default=300, show_default=True, help="Seconds to wait.")
@click.option("--pay", type=click.Choice(["cashu"]), help="Pay a priced job from the cashu wallet (`silnode wallet`).")
@click.option("--mint", "mint_url", help="With --pay cashu: which mint's ecash to pay with.")
@click.option(
    "--prepay/--no-prepay",
    default=True,
    show_default=True,
    help="With --pay: send a ['cashu', token] with the job when its announced price is known and the provider "
    "takes the mint; else pay the payment-required invoice.",
)
@relay_option
@password_option
@json_option
@pass_ctx
def ask(
    ctx: Ctx,
    prompt: str,
    model: str | None,
    provider: str | None,
    encrypt: bool,
    nip04: bool,
    max_tokens: int,
    temperature: float | None,
    bid: int | None,
    timeout: float,
    pay: str | None,
    mint_url: str | None,
    prepay: bool,
    relays: tuple[str, ...],
    password_file: str | None,
) -> None:
    """Ask a Nostr seller for text (a NIP-90 kind-5050 job); streams its status and prints the reply.

    Runs without a daemon. Ctrl-C cancels the job (a kind-5 deletion). With --pay cashu --mint URL a priced
    job is paid from the wallet; change and refunds come back into it."""
    wallet = None
    if pay:
        if not mint_url:
            raise BadRequest(
                "--pay cashu needs --mint URL (the mint whose ecash pays)", hint="`silnode wallet balance`"
            )
        from silnode.cli.payments import open_wallet
        from silnode.dvm.customer import customer_keys

        wallet, identity = open_wallet(ctx, password_file)
        keys, which = customer_keys(identity), "identity (NIP-06 account 1)"
    else:
        keys, which = _customer_keys(ctx, password_file)
    ctx.out.info(f"asking as {keys.public_key().to_bech32()[:20]}… ({which})")
    payment = (wallet, mint_url, prepay) if wallet is not None else None
    asyncio.run(
        _ask(ctx, prompt, model, provider, encrypt, nip04, max_tokens, temperature, bid, timeout, relays, keys, payment)
    )


async def _ask(
    ctx: Ctx, prompt, model, provider, encrypt, nip04, max_tokens, temperature, bid, timeout, relays, keys, payment=None
):
    from silnode.dvm.customer import Customer, build_request, parse_pubkey

    customer = Customer(keys, _relays(ctx, relays))
    await customer.start()
    paying = _Paying(ctx, *payment, bid) if payment is not None else None
    try:
        if provider:
            pk, announced = parse_pubkey(provider), None
        else:
            pk, announced = await _pick_provider(ctx, customer, model)
        params = {"max_tokens": str(max_tokens)}
        if model:
            params["model"] = model
        if temperature is not None:
            params["temperature"] = str(temperature)
        scheme = ("nip04" if nip04 else "nip44") if encrypt else None
        cashu = None
        if paying is not None:
            if announced is None:
                announced = next((p for p in await customer.providers() if p["pubkey"] == pk.to_hex()), None)
            cashu = await paying.prepayment(announced, model, max_tokens)
            scheme = scheme or ("nip44" if cashu else None)  # a token travels only encrypted
        request = build_request(
            keys, prompt, provider=pk, params=params, bid=bid, relays=customer.relays, encryption=scheme, cashu=cashu
        )
        streamed = []

        def on_status(status: str, extra: str, content: str) -> None:
            if status == "partial" and content and not ctx.out.json_mode:
                streamed.append(content)
                click.echo(content, nl=False)
                sys.stdout.flush()
            elif status != "partial":
                ctx.out.info(f"[{status}] {extra}".rstrip())

        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(
            customer.ask(
                prompt,
                provider=pk,
                request=request,
                encryption=scheme,
                timeout=timeout,
                on_status=on_status,
                on_payment=paying.pay_invoice if paying else None,
                on_ecash=paying.receive if paying else None,
            )
        )
        loop.add_signal_handler(signal.SIGINT, task.cancel)
        try:
            reply = await task
        except asyncio.CancelledError:
            await customer.cancel(request)  # NIP-90: the provider stops working on it
            ctx.out.info("cancelled (deletion sent)")
            if paying is not None:
                await paying.give_up()
            raise SystemExit(130) from None
        except SilnodeError as exc:
            if paying is not None:
                if not isinstance(exc, JobRejected):  # we refused to pay (over --bid): withdraw the job too
                    await customer.cancel(request)
                await paying.give_up()
            raise
        finally:
            loop.remove_signal_handler(signal.SIGINT)
        if paying is not None:
            reply["payment"] = paying.summary()
        text = reply["text"]
        if ctx.out.json_mode:
            ctx.out.data(reply)
        else:
            done = "".join(streamed)
            click.echo(text[len(done) :] if text.startswith(done) else ("\n" + text if done else text))
            ctx.out.info(f"answered by {reply['provider'][:20]}… in {reply['seconds']:.2f} s (job {reply['job'][:16]})")
    finally:
        await customer.stop()
        if paying is not None:
            await paying.wallet.close()


class _Paying:
    """`ask --pay cashu`: a prepayment when the announced price is known, else the payment-required invoice
    melted from the wallet (never above --bid); change and refunds go back into the wallet."""

    def __init__(self, ctx: Ctx, wallet: Any, mint: str, prepay: bool, bid: int | None) -> None:
        self.ctx, self.wallet, self.mint, self.prepay, self.bid = ctx, wallet, mint, prepay, bid
        self.token: str | None = None  # a prepayment sent with the job
        self.how: str | None = None
        # money moving is always said on stderr, --json or not (stdout stays the one JSON reply)
        self.say = lambda msg: click.echo(msg, err=True)
        self.paid_sats = 0
        self.back_sats = 0

    async def prepayment(self, announced: dict[str, Any] | None, model: str | None, max_tokens: int) -> str | None:
        from silnode.payments.cashu.token import normalize_mint_url
        from silnode.payments.pricing import Pricing

        models = [m for m in (announced or {}).get("models", []) if isinstance(m, dict)]
        entry = next((m for m in models if m.get("name") == model), models[0] if models else None)
        rule = entry.get("price") if entry else None
        if not self.prepay or not isinstance(rule, dict):
            return None  # no announced price: wait for payment-required
        if normalize_mint_url(self.mint) not in [normalize_mint_url(m) for m in rule.get("mints") or []]:
            self.say(f"the provider takes no ecash from {self.mint}; paying its invoice instead")
            return None
        price = Pricing(int(rule.get("per_job") or 0), int(rule.get("per_1k_tokens") or 0)).quote(max_tokens)
        if self.bid is not None and price > self.bid:
            raise BadRequest(f"the announced price is {price} msats, over --bid {self.bid}")
        sats = price // 1000
        self.token = await self.wallet.send(self.mint, sats)
        self.how, self.paid_sats = "prepay", sats
        self.say(f"prepaying {sats} sats in cashu from {self.mint} (encrypted with the job)")
        return self.token

    async def pay_invoice(self, msats: int, bolt11: str) -> None:
        if self.how is not None:
            return  # paid already (a re-sent payment-required after a provider restart names the same invoice)
        if self.bid is not None and msats > self.bid:
            raise BadRequest(f"the provider asks {msats} msats, over --bid {self.bid}")
        cap = -(-(self.bid if self.bid is not None else msats) // 1000)
        paid = await self.wallet.pay_invoice(self.mint, bolt11, max_sats=cap)
        self.how, self.paid_sats = "invoice", paid["amount_sats"] + paid["fee_reserve_sats"]
        self.say(f"paid the invoice: {paid['amount_sats']} sats from {self.mint}")

    async def receive(self, token: str, status: str) -> None:
        got = await self.wallet.receive(token)
        self.back_sats += got
        self.say(f"received {got} sats back ({'change' if status != 'error' else 'refund'})")

    async def give_up(self) -> None:
        """The job failed or was cancelled: a prepayment the provider never redeemed comes back."""
        if self.token is not None and self.back_sats == 0:
            got = await self.wallet.reclaim(self.token)
            if got:
                self.back_sats += got
                self.say(f"took back the unspent prepayment ({got} sats)")

    def summary(self) -> dict[str, Any]:
        return {
            "how": self.how,
            "paid_sats": self.paid_sats,
            "back_sats": self.back_sats,
            "mint": self.mint,
            "wallet_sats": self.wallet.balance(self.mint),
        }


async def _pick_provider(ctx: Ctx, customer: Any, model: str | None) -> Any:
    from nostr_sdk import PublicKey

    found = await customer.providers()
    if model:
        found = [p for p in found if model in p["topics"] or any(m.get("name") == model for m in p["models"])]
    if not found:
        raise NostrError(
            f"no provider announces {model or 'kind-5050 text generation'} on {', '.join(customer.relays)}",
            hint="`silnode providers` lists who sells; --provider npub… asks one directly",
        )
    ctx.out.info(f"provider: {found[0]['name'] or found[0]['npub'][:20]} ({found[0]['npub'][:20]}…)")
    return PublicKey.parse(found[0]["pubkey"]), found[0]


@click.command()
@click.option("--timeout", type=click.FloatRange(min=0.5), default=3, show_default=True, help="Seconds to listen.")
@click.option("--model", help="Rank those serving this model (org/model) first.")
@relay_option
@json_option
@pass_ctx
def providers(ctx: Ctx, timeout: float, model: str | None, relays: tuple[str, ...]) -> None:
    """Kind-5050 sellers announced (NIP-89) on the relays, best first: serving --model, then uptime (in steps:
    10 min, 1 h, 1 day), then the price of a 256-token job; with their models, demand and encryption."""
    from silnode.dvm.announce import rank

    rows = rank(asyncio.run(_providers(ctx, timeout, relays)), model)
    now = time.time()
    text = (
        table(
            [
                (
                    p["name"] or "-",
                    p["npub"][:24] + "…",
                    ", ".join(m.get("name", "?") for m in p["models"] if isinstance(m, dict)) or ", ".join(p["topics"]),
                    _age(p["uptime_s"]),
                    f"{p['price_msats'] / 1000:g} sat" if p["price_msats"] else "free",
                    f"{p['requests_per_minute']:g}",
                    ",".join(p["encryption"]) or "-",
                    f"{int(now - p['created_at'])} s",
                )
                for p in rows
            ],
            ["NAME", "NPUB", "MODELS", "UPTIME", "PRICE/JOB", "REQ/MIN", "ENCRYPTION", "AGE"],
        )
        if rows
        else "no kind-5050 providers announced on these relays"
    )
    ctx.out.data({"providers": rows}, text)


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds} s"


async def _providers(ctx: Ctx, timeout: float, relays: tuple[str, ...]) -> list[dict[str, Any]]:
    from nostr_sdk import Keys

    from silnode.dvm.customer import Customer

    customer = Customer(Keys.generate(), _relays(ctx, relays))
    await customer.start()
    try:
        return await customer.providers(timeout=timeout)
    finally:
        await customer.stop()


@click.command()
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--status", type=click.Choice(["received", "processing", "success", "error", "cancelled", "expired"]))
@json_option
@pass_ctx
def jobs(ctx: Ctx, limit: int, status: str | None) -> None:
    """Recent NIP-90 jobs this node took: customer, model, status, tokens, bid/price, times."""
    rows = ctx.client().jobs(limit, status)
    text = (
        table(
            [
                (
                    j["id"][:12],
                    j["customer"][:12],
                    j["model"] or "-",
                    j["status"] + (f": {j['error'][:50]}" if j.get("error") else ""),
                    j["completion_tokens"] if j["completion_tokens"] is not None else "-",
                    j["bid"] if j["bid"] is not None else "-",
                    j["amount"] if j["amount"] is not None else "free",
                    time.strftime("%H:%M:%S", time.localtime(j["received_at"])),
                    f"{j['finished_at'] - j['received_at']:.2f} s" if j.get("finished_at") else "-",
                )
                for j in rows
            ],
            ["JOB", "CUSTOMER", "MODEL", "STATUS", "TOKENS", "BID", "PRICE", "RECEIVED", "TOOK"],
        )
        if rows
        else "no jobs yet (`silnode providers` shows this node's announcement; `silnode ask` sends one)"
    )
    ctx.out.data({"jobs": rows}, text)


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default: nostr.relay_port, 7447).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@json_option
@pass_ctx
def relay(ctx: Ctx, port: int | None, host: str) -> None:
    """Run the embedded Nostr relay (nostr-sdk LocalRelay, LMDB under SILNODE_HOME) in the foreground, for
    offline or local use; a node started later on this machine uses it. Ctrl-C stops it."""
    asyncio.run(_relay(ctx, port if port is not None else ctx.config().nostr.relay_port, host))


async def _relay(ctx: Ctx, port: int, host: str) -> None:
    from silnode.dvm.relays import EmbeddedRelay

    path = ctx.config().home / "nostr" / "relay"
    r = EmbeddedRelay(path, host=host, port=port)
    url = await r.start()
    ctx.out.data({"url": url, "path": str(path)}, f"relay listening at {url} (events in {path}); Ctrl-C stops it")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await r.stop()


COMMANDS = [relay, ask, jobs, providers]
