"""The DVM service: sells the served models as NIP-90 kind-5050 text generation on Nostr.

    relay pool -> notification loop -> one task per job:
        accept (job store; a duplicate or replay stops here) -> check (parse, decrypt, limits, model)
        -> payment gate -> 7000 processing -> the model's fair queue (client "nostr:<pubkey>")
        -> 7000 partial (rate-limited) ... -> store the signed 6050 -> publish it -> 7000 success

Every bad job gets a 7000 ``error`` with the reason and the node keeps running. The signed result is
stored before it is published, so a node killed between the two sends it again after a restart instead of
generating it twice; a job accepted but unfinished at the kill runs again (nothing was delivered for it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

from nostr_sdk import Event, EventBuilder, Filter, Kind, ReqTarget, SingleLetterTag, Tag, Timestamp

from silnode.config import Config
from silnode.dvm import announce
from silnode.dvm.inputs import resolve
from silnode.dvm.jobs import (
    DELETION_KIND,
    FEEDBACK_KIND,
    JOB_KIND,
    RESULT_KIND,
    Job,
    encrypt,
    generation,
    parse,
    tags_of,
)
from silnode.dvm.payment import FreeGate, PaymentGate
from silnode.dvm.relays import EmbeddedRelay, RelayPool
from silnode.dvm.reply_relays import RelayPolicy, ReplyRelays
from silnode.dvm.store import JobStore
from silnode.errors import JobNotFound, JobRejected, ModelNotLoaded, NostrError, QueueFull, SellingOff, SilnodeError
from silnode.fsutil import atomic_write_json

log = logging.getLogger(__name__)

SUB_TARGETED, SUB_UNTARGETED, SUB_DELETIONS = "dvm-jobs", "dvm-jobs-any", "dvm-deletions"
JOB_KINDS = (5000, 5999)  # NIP-90 job requests; only 5050 is sold, the others are answered with an error
SUB_PROVIDERS = "dvm-providers"  # other providers' NIP-89 announcements: their catalog keys feed discovery
SERVED_POLL = 2.0
MODEL_WAIT = 600.0  # seconds a job waits for its model to finish loading  # seconds between looks at the served set (re-announce when it changed)


class _Expired(Exception):
    """The job's NIP-40 expiration passed: it gets no result (control flow inside the service only)."""


def expires_at(ev: Event) -> int | None:
    """The request's NIP-40 ``expiration`` (unix seconds), if it has one."""
    for t in tags_of(ev):
        if len(t) > 1 and t[0] == "expiration" and t[1].isdigit():
            return int(t[1])
    return None


def expired(ev: Event) -> bool:
    at = expires_at(ev)
    return at is not None and time.time() >= at


class DvmService:
    name = "dvm"

    def __init__(self, config: Config, serving: Any, identity: Any = None, gate: PaymentGate | None = None) -> None:
        self.config, self.serving, self.identity = config, serving, identity
        self.ns = config.nostr
        self.gate: PaymentGate = gate or FreeGate()
        # this node's BEP 46 catalog magnet for the NIP-89 content (the Node wires discovery in): buyers who
        # find the node on Nostr can follow its catalog, and a catalog's nostr signature binds the two
        self.catalog_magnet: Callable[[], str | None] = lambda: None
        # and the other way: a catalog key read from another provider's announcement, for discovery to check
        # through its own signed pointer (a hint, never trusted for content)
        self.on_catalog: Callable[[str], Any] = lambda publisher: None
        self.state = "off"
        self.reason: str | None = None
        self.keys: Any = None
        self.pool: RelayPool | None = None
        self.replies: ReplyRelays | None = None  # the relays jobs name in their `relays` tag
        self._reply_urls: dict[str, list[str]] = {}  # job id -> its checked reply relays (while it runs)
        self.store = JobStore(config.home / "nostr" / "jobs.sqlite3")
        self._store_open = False
        self._tasks: set[asyncio.Task] = set()
        self._loops: list[asyncio.Task] = []
        self._running: dict[str, Any] = {}  # job id -> its serving Request (while generating) or None
        self._cancelled: set[str] = set()
        self._rate: dict[str, deque[float]] = defaultdict(deque)
        self._recent: deque[tuple[float, str]] = deque()  # (finished at, model): jobs per minute per model
        self._announced: list[str] = []
        self.announcement: dict[str, Any] | None = None  # the last NIP-89 one: {id, at, models} (dashboard)
        self._served_key: tuple[str, ...] | None = None
        self.inferences = 0  # generations started by this process (tests read it: no double work)
        self._state_file = config.state_dir / "dvm.json"

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self.store.open()
        self._store_open = True
        if not self._wants_selling():
            self.state, self.reason = "off", "selling is off (`silnode serve` turns it on; nostr.sell in config)"
            return
        await self._start_selling()

    async def stop(self) -> None:
        await self._stop_selling(clean=True)
        if self._store_open:
            await self.store.close()
            self._store_open = False

    def _wants_selling(self) -> bool:
        try:
            saved = json.loads(self._state_file.read_text()).get("sell")
        except (OSError, ValueError, AttributeError):
            saved = None
        return self.ns.sell if saved is None else bool(saved)

    async def set_selling(self, sell: bool) -> dict[str, Any]:
        """Turn selling on or off (`silnode serve` / `serve --no-sell`); remembered across restarts."""
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self._state_file, {"sell": sell})
        if sell and self.state != "selling":
            await self._start_selling()
        elif not sell and self.state == "selling":
            await self._stop_selling(clean=True)
            self.state, self.reason = "off", "selling turned off (`silnode serve --no-sell`)"
        return self.summary()

    async def _start_selling(self) -> None:
        if self.identity is None:
            self.state = "off"
            self.reason = "no identity unlocked: selling on Nostr is off (`silnode identity new`, SILNODE_PASSWORD)"
            log.warning("%s", self.reason)
            return
        self.keys = self.identity.nostr.to_nostr_sdk()
        embedded = EmbeddedRelay(self.config.home / "nostr" / "relay", port=self.ns.relay_port)
        self.pool = RelayPool(self.ns.relays, embedded=embedded)
        try:
            await self.pool.start()
            await self._subscribe()
        except SilnodeError as exc:
            self.state, self.reason = "error", str(exc)
            log.error("selling on Nostr is off: %s", exc)
            await self.pool.stop()
            self.pool = None
            return
        policy = RelayPolicy(lan_only=self.config.network.lan_only, local=self.ns.reply_relays_local)
        self.replies = ReplyRelays(policy, per_job=self.ns.reply_relays)
        self.state, self.reason = "selling", None
        log.info("selling on Nostr as %s via %s", self.identity.npub, ", ".join(self.pool.urls))
        self._loops = [
            asyncio.create_task(self._notifications(), name="dvm:notifications"),
            asyncio.create_task(self._announce_loop(), name="dvm:announce"),
        ]
        await self._resume()

    async def _stop_selling(self, *, clean: bool) -> None:
        for t in self._loops:
            t.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        for req in list(self._running.values()):
            if req is not None:
                req.cancel()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.pool is not None:
            if clean and self._announced and self.keys is not None:
                try:  # a clean stop withdraws the announcement (kind 5); a crash leaves it to expire
                    await self.pool.publish(announce.deletion(self.keys, self._announced), attempts=2)
                except SilnodeError as exc:
                    log.warning("could not delete the announcement: %s", exc)
            self._announced = []
            await self.pool.stop()
            self.pool = None
        if self.replies is not None:
            await self.replies.stop()
            self.replies = None
        if self.state == "selling":
            self.state = "off"

    async def _subscribe(self) -> None:
        assert self.pool is not None and self.pool.client is not None
        since = Timestamp.from_secs(max(0, int(time.time()) - self.ns.lookback))
        me = self.keys.public_key()
        client = self.pool.client
        self._notes = client.notifications()
        # targeted: every kind, so a job of a kind this node does not sell (5000-5999) gets an error, not silence
        await client.subscribe(ReqTarget.auto([Filter().pubkey(me).since(since)]), id=SUB_TARGETED)
        if self.ns.untargeted:
            await client.subscribe(ReqTarget.auto([Filter().kind(Kind(JOB_KIND)).since(since)]), id=SUB_UNTARGETED)
        k = SingleLetterTag.from_byte(ord("k"))
        deletions = Filter().kind(Kind(DELETION_KIND)).custom_tag(k, str(JOB_KIND)).since(since)
        await client.subscribe(ReqTarget.auto([deletions]), id=SUB_DELETIONS)
        providers = Filter().kind(Kind(announce.HANDLER_KIND)).custom_tag(k, str(JOB_KIND))
        await client.subscribe(ReqTarget.auto([providers]), id=SUB_PROVIDERS)

    # ------------------------------------------------------------------ the notification loop
    async def _notifications(self) -> None:
        while True:
            n = await self._notes.next()
            if n is None:
                return
            if not n.is_new_event():
                continue
            try:
                ev, relay = n.event, str(n.relay_url)
                kind = ev.kind().as_u16()
                job = kind == JOB_KIND or (JOB_KINDS[0] <= kind <= JOB_KINDS[1] and n.subscription_id == SUB_TARGETED)
                if job and n.subscription_id in (SUB_TARGETED, SUB_UNTARGETED):
                    self._spawn(self._handle(ev, relay), f"dvm:job:{ev.id().to_hex()[:12]}")
                elif kind == DELETION_KIND:
                    await self._deletion(ev)
                elif kind == announce.HANDLER_KIND and ev.author().to_hex() != self.keys.public_key().to_hex():
                    publisher = announce.catalog_key(announce.parse_announcement(ev).get("catalog"))
                    if publisher is not None:
                        self.on_catalog(publisher)
            except Exception:  # one odd event must not end the loop
                log.exception("dropping a notification")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deletion(self, ev: Event) -> None:
        """A customer deleting (kind 5) its own job cancels it (NIP-90)."""
        author = ev.author().to_hex()
        for t in tags_of(ev):
            if len(t) > 1 and t[0] == "e":
                row = await self.store.get(t[1])
                if row is None or row["customer"] != author or row["status"] not in ("received", "processing"):
                    continue
                self._cancelled.add(t[1])
                req = self._running.get(t[1])
                if req is not None:
                    req.cancel()
                log.info("job %s cancelled by its customer", t[1][:12])

    # ------------------------------------------------------------------ one job
    def _targets_me(self, ev: Event) -> bool:
        me = self.keys.public_key().to_hex()
        ps = [t[1] for t in tags_of(ev) if len(t) > 1 and t[0] == "p"]
        return me in ps if ps else self.ns.untargeted

    async def _handle(self, ev: Event, relay: str) -> None:
        if not self._targets_me(ev):
            return  # someone else's job (an untargeted subscription sees them all)
        tags = tags_of(ev)
        bid = next((int(t[1]) for t in tags if len(t) > 1 and t[0] == "bid" and t[1].isdigit()), None)
        model = next((t[2] for t in tags if len(t) > 2 and t[0] == "param" and t[1] == "model"), None)
        new = await self.store.accept(
            id=ev.id().to_hex(),
            customer=ev.author().to_hex(),
            kind=ev.kind().as_u16(),
            model=model,
            request=ev.as_json(),
            relay=relay,
            bid=bid,
            encryption="encrypted" if any(t and t[0] == "encrypted" for t in tags) else None,
        )
        if not new:
            return  # seen before: another relay delivered it, or a reconnect replayed it
        await self._run(ev, relay)

    async def _run(self, ev: Event, relay: str | None) -> None:
        job_id = ev.id().to_hex()
        job: Job | None = None
        try:
            job = parse(ev, self.keys, max_input_bytes=self.ns.max_input_bytes)
            # what parsing learnt (the scheme, an encrypted job's model) is stored with its next transition
            self._check_rate(job.customer)
            await self._generate(job, relay)
        except _Expired as exc:
            await self._expire(ev, job, relay, str(exc))
        except JobRejected as exc:
            await self._fail(ev, job, relay, str(exc))
        except QueueFull as exc:
            await self._fail(ev, job, relay, f"busy: {exc}; try again shortly")
        except SilnodeError as exc:
            await self._fail(ev, job, relay, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug fails one job, with a reason, not the node
            log.exception("job %s failed", job_id[:12])
            await self._fail(ev, job, relay, f"internal error: {exc.__class__.__name__}")
        finally:
            self._running.pop(job_id, None)
            self._cancelled.discard(job_id)
            self._reply_urls.pop(job_id, None)

    def _check_rate(self, customer: str) -> None:
        now, window = time.monotonic(), self._rate[customer]
        while window and now - window[0] > 60:
            window.popleft()
        if len(window) >= self.ns.rate_per_minute:
            raise JobRejected(f"rate limit: at most {self.ns.rate_per_minute} jobs per minute per customer")
        window.append(now)

    def _loading(self, name: str | None) -> bool:
        """A served model that is still loading (after a restart the served set loads in the background)."""
        loading = getattr(self.serving, "_loading", {})
        if name is None:
            return bool(loading) or any(m.state in ("loading", "restarting") for m in self.serving.models.values())
        m = self.serving.models.get(name)
        return name in loading or (m is not None and m.state in ("loading", "restarting"))

    async def _model(self, job: Job) -> Any:
        deadline = time.monotonic() + MODEL_WAIT
        while self._loading(job.model) and time.monotonic() < deadline:
            if expired(job.event):
                raise _Expired("expired while its model loaded")
            await asyncio.sleep(0.2)  # a job that arrives (or resumes) while its model loads waits for it
        ready = [m for m in self.serving.models.values() if m.state == "ready"]
        names = ", ".join(m.name for m in ready) or "none"
        if job.model is None:
            if not ready:
                raise JobRejected("no model is being served right now")
            return ready[0]
        try:
            model = self.serving.get(job.model)
        except ModelNotLoaded:
            raise JobRejected(f"model {job.model!r} is not served here; served: {names}") from None
        if model.state != "ready":
            raise JobRejected(f"model {job.model!r} is {model.state}; served: {names}")
        return model

    async def _generate(self, job: Job, relay: str | None) -> None:
        if expired(job.event):
            raise _Expired("expired before it started")
        model = await self._model(job)
        prompt = await resolve(job, self.pool, self.ns.max_input_bytes)
        chat = bool((model.info or {}).get("chat_template"))
        gen = generation(job, prompt, chat=chat, max_tokens_cap=self.ns.max_tokens, default_max=self.ns.max_tokens)
        job.max_tokens = gen.max_tokens or 0  # the price's per-token part
        amount = await self.gate.quote(job)
        if amount is not None:
            if job.bid is not None and job.bid < amount:
                raise JobRejected(f"the price is {amount} msats, over the bid of {job.bid}")

            async def notify(status: str, extra: str, amt: int | None, bolt11: str | None) -> None:
                await self._feedback(job.event, job, relay, status, extra, amount=amt, bolt11=bolt11)

            await self.gate.settle(job, amount, notify)
            if expired(job.event):
                raise _Expired("expired while its payment was awaited")
        if job.id in self._cancelled:  # paid for nothing: the money goes back
            await self.store.transition(job.id, "cancelled", "deleted by its customer")
            await self._pay_back(job, relay, "cancelled")
            return
        await self.store.transition(job.id, "processing", model=model.name, amount=amount, encryption=job.encryption)
        change = self.gate.take_change(job)  # what a cashu prepayment held beyond the price
        req = model.submit(f"nostr:{job.customer}", gen)
        self._running[job.id] = req
        self.inferences += 1
        # the feedback goes out while the model works (its relay round trip is off the job's critical path);
        # it is awaited before anything else is published for the job, so the customer sees it first
        processing = asyncio.ensure_future(
            self._feedback(
                job.event, job, relay, "processing", f"generating with {model.name}", ecash=change, why="change"
            )
        )
        # NIP-40: a job that expires while it waits in the model's queue is dropped from it (and one that
        # expires while generating is stopped): no result will be sent for it either way
        at = expires_at(job.event)
        timer = asyncio.get_running_loop().call_later(max(0.0, at - time.time() + 0.05), req.cancel) if at else None
        try:
            text, done = await self._stream(job, relay, req, processing)
        except BaseException:
            processing.cancel()
            raise
        finally:
            if timer is not None:
                timer.cancel()
        await asyncio.wait([processing])
        if processing.exception() is not None:  # a courtesy: the result (retried, stored) still goes out
            log.info("job %s: processing feedback not sent: %s", job.id[:12], processing.exception())
        if expired(job.event):  # checked first: an expiry also cancels the request
            detail = "expired while generating" if done else "expired while queued; it never ran"
            raise _Expired(detail)
        if req.cancelled or job.id in self._cancelled:
            await self.store.transition(job.id, "cancelled", "deleted by its customer")
            await self._pay_back(job, relay, "cancelled")
            return
        result = self._result(job, relay, text, amount)
        await self._finish(job, relay, result, model.name, done)

    async def _stream(self, job: Job, relay: str | None, req: Any, processing: Any) -> tuple[str, dict[str, Any]]:
        """The generated text and the worker's ``done`` event ({} when it never ran); partials on the way."""
        parts: list[str] = []
        sent = 0
        last = time.monotonic()
        done: dict[str, Any] = {}
        async for ev in req.stream():
            if ev.get("type") == "delta":
                parts.append(ev["text"])
                now = time.monotonic()
                if self.ns.partial_interval and now - last >= self.ns.partial_interval:
                    chunk = "".join(parts[sent:])
                    sent, last = len(parts), now
                    if chunk:
                        if not processing.done():
                            await asyncio.wait([processing])
                        try:
                            await self._feedback(job.event, job, relay, "partial", "", content=chunk)
                        except NostrError as exc:  # a partial is a courtesy: the result still carries it all
                            log.info("job %s: partial not sent: %s", job.id[:12], exc)
            elif ev.get("type") == "done":
                done = ev
        return "".join(parts), done

    async def _finish(self, job: Job, relay: str | None, result: Event, model: str, done: dict[str, Any]) -> None:
        await self.store.transition(
            job.id,
            "success",
            done.get("finish_reason"),
            result=result.as_json(),
            prompt_tokens=int(done.get("prompt_tokens") or 0),
            completion_tokens=int(done.get("completion_tokens") or 0),
        )
        try:  # the ledger learns what the job was paid for (never blocks the result)
            await self.gate.finish(job, tokens=int(done.get("completion_tokens") or 0), model=model)
        except SilnodeError as exc:
            log.warning("job %s: the ledger did not take its tokens: %s", job.id[:12], exc)
        self._recent.append((time.time(), model))
        try:
            await self._deliver(job.event, job, relay, result)
        except NostrError as exc:  # stored: keep trying in the background (and after a restart), never redo it
            log.warning("job %s: result not delivered yet (%s); retrying", job.id[:12], exc)
            self._spawn(
                self._redeliver(job.event, {"id": job.id, "relay": relay, "result": result.as_json()}), "dvm:redeliver"
            )

    async def _deliver(self, ev: Event, job: Job | None, relay: str | None, result: Event) -> None:
        await self._publish(result, ev, job)
        await self.store.update(ev.id().to_hex(), delivered=1)
        await self._feedback(ev, job, relay, "success", "")

    async def _expire(self, ev: Event, job: Job | None, relay: str | None, detail: str) -> None:
        """NIP-40: no result. The customer still hears why nothing came (one try: it may be long gone)."""
        job_id = ev.id().to_hex()
        log.info("job %s: %s", job_id[:12], detail)
        await self.store.transition(job_id, "expired", detail)
        token = await self._refund(job, "expired")  # paid before it expired: the money rides on the error
        try:
            await self._feedback(
                ev,
                job,
                relay,
                "error",
                f"the job expired (NIP-40) {detail.split(' ', 1)[1]}",
                ecash=token,
                why="refund",
            )
        except NostrError as exc:
            log.info("job %s: expiry not reported: %s", job_id[:12], exc)

    async def _fail(self, ev: Event, job: Job | None, relay: str | None, reason: str) -> None:
        job_id = ev.id().to_hex()
        log.info("job %s: error: %s", job_id[:12], reason)
        fields = {"encryption": job.encryption, "model": job.model} if job is not None else {}
        try:
            await self.store.transition(job_id, "error", reason, error=reason, **fields)
            token = await self._refund(job, reason)  # paid, then failed: the money rides on the error, encrypted
            await self._feedback(ev, job, relay, "error", reason, ecash=token, why="refund")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("job %s: could not report its error: %s", job_id[:12], exc)

    async def _refund(self, job: Job | None, reason: str) -> str | None:
        try:
            return await self.gate.refund(job, reason)
        except SilnodeError as exc:
            log.warning("job %s: refund failed: %s", job.id[:12] if job else "?", exc)
            return None

    async def _pay_back(self, job: Job, relay: str | None, why: str) -> None:
        """A paid job ends without a result (cancelled by its customer): its refund in an encrypted 7000."""
        token = await self._refund(job, why)
        if token is not None:
            try:
                await self._feedback(job.event, job, relay, "error", f"{why}; paid, so refunded", ecash=token,
                                     why="refund")  # fmt: skip
            except NostrError as exc:
                log.warning("job %s: refund not delivered: %s", job.id[:12], exc)

    # ------------------------------------------------------------------ events
    def _refs(self, ev: Event, relay: str | None) -> list[list[str]]:
        return [["e", ev.id().to_hex()] + ([relay] if relay else []), ["p", ev.author().to_hex()]]

    async def _feedback(
        self,
        ev: Event,
        job: Job | None,
        relay: str | None,
        status: str,
        extra: str,
        *,
        content: str = "",
        amount: int | None = None,
        bolt11: str | None = None,
        ecash: str | None = None,
        why: str = "",
    ) -> None:
        assert self.pool is not None
        encrypted = job is not None and bool(job.encryption)
        if encrypted and content:
            # the status reason stays readable (it says nothing of the input); a partial's text is encrypted
            content = encrypt(self.keys, ev.author(), content, job.encryption)
        if ecash and job is not None:  # bearer money (change, refund): only ever encrypted to the customer
            from silnode.payments.cashu.token import decode

            extra = f"{extra}; {why}: {decode(ecash).amount} sats in the encrypted content (a cashu token)"
            content, encrypted = encrypt(self.keys, ev.author(), ecash, job.encryption or "nip44"), True
        tags = [["status", status, extra]] + self._refs(ev, relay)
        if amount is not None:
            tags.append(["amount", str(amount)] + ([bolt11] if bolt11 else []))
        if encrypted:
            tags.append(["encrypted"])
        event = EventBuilder(Kind(FEEDBACK_KIND), content).tags([Tag.parse(t) for t in tags]).finalize(self.keys)
        await self._publish(event, ev, job, attempts=2 if status == "partial" else 40)

    async def _publish(self, event: Event, ev: Event, job: Job | None, *, attempts: int = 40) -> None:
        """To the node's relays (retried until one takes it) and, as a courtesy, to the job's own relays."""
        assert self.pool is not None
        extra = await self._reply_targets(ev, job)
        if not extra or self.replies is None:
            await self.pool.publish(event, attempts=attempts)
            return
        await asyncio.gather(self.pool.publish(event, attempts=attempts), self.replies.publish(event, extra))

    async def _reply_targets(self, ev: Event, job: Job | None) -> list[str]:
        """The job's `relays` (NIP-90: where the customer wants the answers), checked and bounded, once a job."""
        if self.replies is None or self.pool is None or self.ns.reply_relays <= 0:
            return []
        job_id = ev.id().to_hex()
        if job_id not in self._reply_urls:
            # a parsed job also knows the relays of an encrypted request; unparsed, the clear-text tag will do
            urls = job.relays if job is not None else [r for t in tags_of(ev) if t and t[0] == "relays" for r in t[1:]]
            self._reply_urls[job_id] = await self.replies.targets(urls, own=self.pool.urls)
        return self._reply_urls[job_id]

    def _result(self, job: Job, relay: str | None, text: str, amount: int | None) -> Event:
        tags = [["request", job.event.as_json()]] + self._refs(job.event, relay)
        if job.encryption:
            text = encrypt(self.keys, job.customer_pk, text, job.encryption)
            tags.append(["encrypted"])
        else:
            tags += [["i", *i] for i in job.inputs]
        if amount is not None:
            tags.append(["amount", str(amount)])
        return EventBuilder(Kind(RESULT_KIND), text).tags([Tag.parse(t) for t in tags]).finalize(self.keys)

    # ------------------------------------------------------------------ after a restart
    async def _resume(self) -> None:
        """Finish what the last run owed: deliver stored results, run accepted jobs again."""
        for row in await self.store.unfinished():
            try:
                ev = Event.from_json(row["request"])
            except Exception:
                await self.store.transition(row["id"], "error", "stored request unreadable")
                continue
            if row["status"] == "success" and row["result"]:
                log.info("job %s: delivering the result stored before the restart", row["id"][:12])
                self._spawn(self._redeliver(ev, row), f"dvm:redeliver:{row['id'][:12]}")
            else:
                log.info("job %s: accepted before the restart, running it now", row["id"][:12])
                self._spawn(self._run(ev, row["relay"]), f"dvm:resume:{row['id'][:12]}")

    async def _redeliver(self, ev: Event, row: dict[str, Any]) -> None:
        """Publish a stored result until a relay takes it (the node stopping ends the attempts; the next
        start tries again)."""
        while True:
            if expired(ev):  # NIP-40: past its expiration the customer gets no result, even a stored one
                await self.store.transition(row["id"], "expired", "expired before its result was delivered")
                log.info("job %s: expired before its stored result was delivered; not sent", row["id"][:12])
                return
            try:
                await self._deliver(ev, None, row["relay"], Event.from_json(row["result"]))
                return
            except NostrError as exc:
                log.warning("job %s: redelivery failed, retrying: %s", row["id"][:12], exc)
                await asyncio.sleep(5)

    # ------------------------------------------------------------------ NIP-89
    def _served(self) -> list[dict[str, Any]]:
        out = []
        price = self.gate.pricing()  # the rule and the mints a ["cashu", token] may come from; None: free
        for m in self.serving.models.values():
            if m.state == "ready":
                out.append(
                    {
                        "name": m.name,
                        "context": m.n_ctx,
                        "price_msats": None,
                        **announce.demand_of(m),
                        **({"price": price} if price else {}),
                    }
                )
        return sorted(out, key=lambda m: m["name"])

    async def announce_now(self) -> str | None:
        served = self._served()
        if self.pool is None or not served:
            return None
        name = self.ns.name or f"silnode {self.identity.npub[:16]}"
        about = self.ns.about or "Text generation (NIP-90 kind 5050) with GGUF models on llama.cpp"
        content = announce.content(
            name=name,
            about=about,
            models=served,
            catalog_magnet=self.catalog_magnet(),
            pricing=announce.pricing_of(self.config),
        )
        ev = announce.announcement(self.keys, content)
        await self.pool.publish(ev, attempts=4)
        self._announced.append(ev.id().to_hex())
        self._announced = self._announced[-16:]
        self.announcement = {"id": ev.id().to_hex(), "at": int(time.time()), "models": [m["name"] for m in served]}
        log.info("announced (NIP-89) %s", ", ".join(m["name"] for m in served))
        return ev.id().to_hex()

    async def _announce_loop(self) -> None:
        last = 0.0
        announced: dict[str, float] = {}
        while True:
            rows = self._served()
            served = tuple(m["name"] for m in rows)
            demand = {m["name"]: float(m.get("requests_per_minute") or 0.0) for m in rows}
            since = time.monotonic() - last
            # demand that moved is announced after nostr.demand_reannounce (10 min), not the hourly interval:
            # buyers ranking providers see a rush within minutes, and relays see at most six replacements an hour
            moved = bool(self.ns.demand_reannounce) and announce.demand_moved(announced, demand)
            due = since >= self.ns.announce_interval or (moved and since >= self.ns.demand_reannounce)
            if served and (served != self._served_key or due):
                try:
                    await self.announce_now()
                    self._served_key, last, announced = served, time.monotonic(), demand
                except SilnodeError as exc:
                    log.warning("announcement failed (retrying): %s", exc)
            await asyncio.sleep(SERVED_POLL)

    # ------------------------------------------------------------------ queries
    def summary(self) -> dict[str, Any]:
        now = time.time()
        while self._recent and now - self._recent[0][0] > 300:
            self._recent.popleft()
        per_model: dict[str, float] = defaultdict(float)
        for _, model in self._recent:
            per_model[model] += 1 / 5  # over the last five minutes
        return {
            "state": self.state,
            "reason": self.reason,
            "npub": self.identity.npub if self.identity is not None else None,
            "relays": self.pool.urls if self.pool is not None else [],
            "embedded_relay": self.pool.embedded.url if self.pool and self.pool.embedded else None,
            "untargeted": self.ns.untargeted,
            "jobs_running": len(self._running),
            "inferences": self.inferences,  # generations this process started for jobs
            "jobs_per_minute": {k: round(v, 2) for k, v in per_model.items()},
            "announcement": self.announcement,
        }

    async def status(self) -> dict[str, Any]:
        out = self.summary()
        out["relays"] = await self.pool.describe() if self.pool is not None else []
        out["jobs"] = await self.store.stats(time.time() - 300) if self._store_open else {}
        return out

    async def jobs(self, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
        return await self.store.list(limit, status)

    async def job(self, job_id: str) -> dict[str, Any]:
        row = await self.store.get(job_id)
        if row is None:
            raise JobNotFound(f"no job {job_id!r}")
        return row

    def require_selling(self) -> None:
        if self.state != "selling":
            raise SellingOff(f"not selling: {self.reason or self.state}")
