"""The customer side of NIP-90 kind 5050, for `silnode ask` and `silnode providers` (no daemon needed).

The customer key is NIP-06 account 1 of the node's seed (``m/44'/1237'/1'/0/0``): the same backup covers it,
and jobs a node buys are not signed with the key it sells under.

    c = Customer(keys, ["ws://127.0.0.1:7447"]); await c.start()
    providers = await c.providers()
    reply = await c.ask("Hello", provider=pk_hex, model="org/model", encryption="nip44", on_status=print)
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from nostr_sdk import Event, EventBuilder, Filter, Keys, Kind, PublicKey, ReqTarget, SingleLetterTag, Tag

from silnode.dvm import announce
from silnode.dvm.jobs import DELETION_KIND, FEEDBACK_KIND, JOB_KIND, RESULT_KIND, encrypt, tags_of
from silnode.dvm.relays import parse_relay, relay_options
from silnode.dvm.transport import bind_loop
from silnode.errors import JobRejected, NostrError


def customer_keys(identity: Any) -> Keys:
    """NIP-06 account 1 of the identity's seed."""
    from silnode.identity import mnemonic as bip39
    from silnode.identity.keys import NostrKey

    seed = bip39.to_seed(identity.reveal_mnemonic(), identity.reveal_passphrase())
    return NostrKey.from_seed(seed, account=1).to_nostr_sdk()


def parse_pubkey(text: str) -> PublicKey:
    try:
        return PublicKey.parse(text)
    except Exception as exc:
        raise JobRejected(f"not a Nostr public key: {text[:80]!r}", hint="give an npub1… or 64 hex digits") from exc


def build_request(
    keys: Keys,
    prompt: str,
    *,
    provider: PublicKey | None = None,
    params: dict[str, str] | None = None,
    bid: int | None = None,
    relays: list[str] | None = None,
    encryption: str | None = None,
    input_type: str = "text",
    expiration: int | None = None,
    cashu: str | None = None,
) -> Event:
    """A kind-5050 request. Encrypted: the i and param tags go, as JSON, into the content (NIP-90).
    ``cashu``: a ``["cashu", token]`` prepayment, always encrypted (on a relay in clear, anyone could spend it)."""
    private = [["i", prompt, input_type]] + [["param", k, str(v)] for k, v in (params or {}).items()]
    if cashu is not None:
        if not encryption:
            raise JobRejected("a cashu prepayment travels only in an encrypted request (NIP-44)")
        private.append(["cashu", cashu])
    public: list[list[str]] = []
    if bid is not None:
        public.append(["bid", str(bid)])
    if relays:
        public.append(["relays", *relays])
    if provider is not None:
        public.append(["p", provider.to_hex()])
    if expiration is not None:
        public.append(["expiration", str(expiration)])
    # identical requests in one second would get one id and be deduplicated away: a nonce keeps them apart
    public.append(["alt", f"NIP-90 text generation request ({os.urandom(4).hex()})"])
    content = ""
    if encryption:
        if provider is None:
            raise JobRejected("an encrypted job needs a provider (--provider npub…)")
        content = encrypt(keys, provider, json.dumps(private), encryption)
        public.append(["encrypted"])
    else:
        public = private + public
    return EventBuilder(Kind(JOB_KIND), content).tags([Tag.parse(t) for t in public]).finalize(keys)


class Customer:
    def __init__(self, keys: Keys, relays: list[str]) -> None:
        self.keys, self.relays = keys, relays
        self.client: Any = None

    async def start(self, timeout: float = 3.0) -> None:
        from silnode.dvm.relays import new_client

        bind_loop()
        self.client = new_client()
        for url in self.relays:
            await self.client.add_relay(parse_relay(url), opts=relay_options())
        await self.client.connect(timedelta(seconds=timeout))
        relays = await self.client.relays()
        if not any(str(r.status()).endswith("CONNECTED") for r in relays.values()):
            raise NostrError(
                f"no relay answered ({', '.join(self.relays)})",
                hint="is the node running (`silnode daemon start`) or a relay (`silnode relay`)? --relay URL picks one",
            )

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.shutdown()
            self.client = None
            await asyncio.sleep(0.05)

    async def providers(self, timeout: float = 3.0) -> list[dict[str, Any]]:
        """NIP-89 announcements of kind-5050 providers on the relays, newest first, one per provider."""
        f = Filter().kind(Kind(announce.HANDLER_KIND)).custom_tag(SingleLetterTag.from_byte(ord("k")), str(JOB_KIND))
        events = await self.client.fetch_events(ReqTarget.auto([f]), timedelta(seconds=timeout))
        best: dict[str, Event] = {}
        for ev in events:
            pk = ev.author().to_hex()
            if pk not in best or ev.created_at().as_secs() > best[pk].created_at().as_secs():
                best[pk] = ev
        rows = [announce.parse_announcement(ev) for ev in best.values()]
        return sorted(rows, key=lambda r: -r["created_at"])

    async def ask(
        self,
        prompt: str,
        *,
        provider: PublicKey | None = None,
        params: dict[str, str] | None = None,
        bid: int | None = None,
        encryption: str | None = None,
        input_type: str = "text",
        timeout: float = 120.0,
        on_status: Callable[[str, str, str], None] | None = None,
        on_payment: Callable[[int, str], Awaitable[Any]] | None = None,
        request: Event | None = None,
        on_ecash: Callable[[str, str], Awaitable[Any]] | None = None,
    ) -> dict[str, Any]:
        """Publish a job and wait for its result. ``on_status(status, extra, content)`` sees each feedback
        (partials decrypted); ``await on_payment(msats, bolt11)`` pays a ``payment-required`` invoice (without
        one, a priced job waits until its invoice expires); ``await on_ecash(token, status)`` takes the cashu
        token a feedback brings encrypted (a prepayment's change, a refund), before an ``error`` raises.
        Raises JobRejected on an ``error`` feedback, NostrError on a timeout."""
        job = request or build_request(
            self.keys,
            prompt,
            provider=provider,
            params=params,
            bid=bid,
            relays=self.relays,
            encryption=encryption,
            input_type=input_type,
        )
        self.last_request = job
        notes = self.client.notifications()
        # subscribe to the answers BEFORE publishing, so none can be missed
        f = Filter().kinds([Kind(RESULT_KIND), Kind(FEEDBACK_KIND)]).event(job.id())
        await self.client.subscribe(ReqTarget.auto([f]))
        t0 = time.perf_counter()
        out = await self.client.send_event(job)
        if not out.success:
            raise NostrError(f"no relay took the job: {'; '.join(f'{u}: {m}' for u, m in out.failed.items())}")
        statuses: list[str] = []
        ecash: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise NostrError(
                    f"no result within {timeout:.0f} s (statuses seen: {', '.join(statuses) or 'none'})",
                    hint="`silnode providers` lists who sells; --provider picks one, --timeout waits longer",
                )
            try:
                n = await asyncio.wait_for(notes.next(), left)
            except asyncio.TimeoutError:
                continue
            if n is None or not n.is_new_event():
                continue
            ev = n.event
            if provider is not None and ev.author().to_hex() != provider.to_hex():
                continue
            if not any(len(t) > 1 and t[0] == "e" and t[1] == job.id().to_hex() for t in tags_of(ev)):
                continue
            kind = ev.kind().as_u16()
            if kind == FEEDBACK_KIND:
                st = next((t for t in tags_of(ev) if t and t[0] == "status"), ["status", "?", ""])
                status, extra = st[1] if len(st) > 1 else "?", st[2] if len(st) > 2 else ""
                statuses.append(status)
                content = self._open(ev, encryption) if ev.content() else ""
                if content.startswith(("cashuA", "cashuB")):  # money back: never shown as text
                    ecash.append(content)
                    if on_ecash is not None:
                        await on_ecash(content, status)
                    content = ""
                if on_status:
                    on_status(status, extra, content)
                if status == "payment-required" and on_payment is not None:
                    amt = next((t for t in tags_of(ev) if len(t) > 2 and t[0] == "amount" and t[1].isdigit()), None)
                    if amt is not None:
                        await on_payment(int(amt[1]), amt[2])
                if status == "error":
                    raise JobRejected(
                        f"the provider refused the job: {extra}", job=job.id().to_hex(), refunded=bool(ecash)
                    )
            elif kind == RESULT_KIND:
                tags = tags_of(ev)
                amount = next((int(t[1]) for t in tags if len(t) > 1 and t[0] == "amount" and t[1].isdigit()), None)
                return {
                    "job": job.id().to_hex(),
                    "result": ev.id().to_hex(),
                    "provider": ev.author().to_bech32(),
                    "text": self._open(ev, encryption),
                    "encrypted": any(t and t[0] == "encrypted" for t in tags),
                    "amount_msats": amount,
                    "statuses": statuses,
                    "ecash_tokens": len(ecash),  # change/refund tokens received (handed to on_ecash)
                    "seconds": round(time.perf_counter() - t0, 3),
                }

    def _open(self, ev: Event, encryption: str | None) -> str:
        if not any(t and t[0] == "encrypted" for t in tags_of(ev)):
            return ev.content()
        fn = self.keys.nip04_decrypt if encryption == "nip04" else self.keys.nip44_decrypt
        try:
            return fn(ev.author(), ev.content())
        except Exception as exc:
            raise NostrError(f"cannot decrypt the provider's answer: {exc}") from exc

    async def cancel(self, job: Event) -> None:
        """NIP-90 cancellation: a kind-5 deletion of the request."""
        tags = [["e", job.id().to_hex()], ["k", str(JOB_KIND)]]
        ev = EventBuilder(Kind(DELETION_KIND), "cancelled").tags([Tag.parse(t) for t in tags]).finalize(self.keys)
        await self.client.send_event(ev)
