"""`make demo`: a three-node silnode network on loopback, told as a story with timings, then torn down.

    python scripts/demo.py [--workdir DIR] [--keep] [--report FILE] [--free]

The cast, each a real `silnode daemon` in its own SILNODE_HOME on its own ports:
  A  the publisher: shares a generated GGUF and publishes its signed catalog (BEP 44 pointer on the DHT)
  C  an early follower: follows A's catalog, gets the model from A, and seeds it
  B  the provider: discovers the model in A's catalog, downloads it from A and C, serves it with llama.cpp and
     sells it on Nostr (NIP-90)
and C's customer (NIP-06 account 1 of C's seed) buys one job from B over NIP-90.

The network is private and local: a DHT of three libtorrent sessions that bootstrap only to each other
(libtorrent-notes §6), one relay (nostr-sdk's LocalRelay, the node's embedded relay), and, when the payment
test services are built (`python scripts/test_services.py cashu`), a real nutshell cashu mint with FakeWallet:
then B charges for the job and the customer pays its bolt11 with ecash. Without the mint (or with --free) the
job is free and the story says so.

Everything started here is stopped on success, on failure and on Ctrl-C (SIGINT/SIGTERM); the work dir is
removed unless --keep (or a failure: then its daemon logs are kept and named). Exit 0 when every step passed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the GGUF generator, the daemon starter and the test services
sys.path.insert(0, str(ROOT / "tests" / "payments"))
sys.path.insert(0, str(ROOT / "scripts"))

MODEL = "demo/tiny-llama"
PRICE_MSATS = 2000
PASSWORD = "demo-network-password"  # the three demo keystores' password: throwaway nodes in a temp dir


class StepFailed(RuntimeError):
    pass


class Story:
    """Each step: who, what, how long, and a detail line; printed as it happens and kept for --report."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.steps: list[dict[str, Any]] = []

    def step(self, who: str, what: str, fn: Callable[[], str | None]) -> Any:
        started = time.monotonic()
        print(f"[{started - self.t0:6.1f} s] {who:<9} {what} ...", flush=True)
        row: dict[str, Any] = {"who": who, "step": what, "ok": False}
        self.steps.append(row)
        try:
            detail = fn()
        except BaseException as exc:
            row["error"] = f"{type(exc).__name__}: {exc}"
            print(f"{'':10} {'':<9} FAILED after {time.monotonic() - started:.1f} s: {row['error']}", flush=True)
            raise
        row.update(ok=True, seconds=round(time.monotonic() - started, 2), detail=detail or "")
        print(f"{'':10} {'':<9} done in {row['seconds']:.1f} s{': ' + detail if detail else ''}", flush=True)
        return detail

    def note(self, text: str) -> None:
        print(f"{'':10} {'':<9} {text}", flush=True)


class Background:
    """One asyncio loop on its own thread for what lives in this process: the DHT sessions, the relay, the
    customer's Nostr client and cashu wallet. Blocking REST calls to the daemons stay on the main thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="demo-network", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 300) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def until(check: Callable[[], Any], what: str, timeout: float = 180) -> Any:
    """Poll ``check`` until it returns something true; a hang guard, not a speed limit."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise StepFailed(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


class Demo:
    def __init__(self, workdir: Path, free: bool) -> None:
        self.workdir = workdir
        self.story = Story()
        self.bg = Background()
        self.cleanups: list[tuple[str, Callable[[], None]]] = []
        self.daemons: dict[str, Any] = {}
        self.clients: dict[str, Any] = {}
        self.dht: list[Any] = []
        self.relay_url = ""
        self.mint: Any = None
        self.wallet: Any = None
        self.paid = not free and self._mint_available()
        self.free_reason = "--free was given" if free else "the test cashu mint is not built"

    # ------------------------------------------------------------------ the network
    @staticmethod
    def _mint_available() -> bool:
        import test_services

        return (test_services.venv_path("cashu") / ".silnode-ready").is_file()

    def start_network(self) -> None:
        from silnode.config import NetworkConfig
        from silnode.dvm.relays import EmbeddedRelay
        from silnode.torrent.session import TorrentSession

        def dht() -> str:
            net = NetworkConfig(
                listen_address="127.0.0.1",
                listen_port=0,
                dht_enabled=True,
                lsd_enabled=False,
                upnp_enabled=False,
                natpmp_enabled=False,
                dht_private=True,
            )

            async def start() -> None:
                self.dht = [TorrentSession(net, private=True) for _ in range(3)]
                for s in self.dht:
                    await s.start()
                for s in self.dht:
                    for o in self.dht:
                        if o is not s:
                            s.add_dht_node("127.0.0.1", o.listen_port())

            self.cleanups.append(("the DHT", lambda: self.bg.run(self._stop_dht(), 60)))
            self.bg.run(start())
            return "3 libtorrent sessions on " + ", ".join(f"127.0.0.1:{s.listen_port()}" for s in self.dht)

        self.story.step("network", "start a private DHT (no public bootstrap)", dht)

        def relay() -> str:
            r = EmbeddedRelay(self.workdir / "relay", port=0)
            self.cleanups.append(("the relay", lambda: self.bg.run(r.stop(), 30)))
            self.relay_url = self.bg.run(r.start())
            return f"nostr-sdk LocalRelay at {self.relay_url}"

        self.story.step("network", "start one Nostr relay", relay)

        if self.paid:
            self.story.step("network", "start a cashu mint (nutshell, FakeWallet) and fund C's customer", self._mint)
        else:
            self.story.note(f"payments: the job will be FREE ({self.free_reason})")

    async def _stop_dht(self) -> None:
        for s in self.dht:
            await s.stop(save_resume=False)

    def _mint(self) -> str:
        from services import Mint
        from wallet import Customer as Wallet

        self.mint = Mint(self.workdir / "mint", brr=True)
        self.cleanups.append(("the mint", lambda: self.mint.stop()))
        self.mint.start()

        async def fund() -> Wallet:
            w = Wallet(self.mint.url)
            await w.fund(100)
            return w

        funded = self.bg.run(fund())
        proofs = funded.proofs
        self.bg.run(funded.mint.close())
        # from now on an invoice is paid only when someone melts ecash into it
        self.mint.restart(brr=False)
        self.wallet = Wallet(self.mint.url, proofs)
        return f"{self.mint.url}; the customer holds {self.wallet.balance} sats of ecash"

    # ------------------------------------------------------------------ the nodes
    def _config(self, label: str) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "storage": {"min_free_bytes": 0},
            "network": {
                "listen_address": "127.0.0.1",
                "listen_port": 0,
                "dht_enabled": True,
                "dht_bootstrap": [f"127.0.0.1:{s.listen_port()}" for s in self.dht],
                "dht_private": True,
                "lsd_enabled": False,
                "upnp_enabled": False,
                "natpmp_enabled": False,
            },
            "discovery": {"refresh_interval": 2, "fetch_timeout": 30},
            "serve": {"n_threads": 2, "n_ctx": 512, "starter_model": False},
            "nostr": {"relays": [self.relay_url], "relay_port": 0, "name": f"demo node {label}"},
        }
        if label == "B" and self.paid:
            cfg["payments"] = {
                "require_payment": True,
                "backend": "cashu",
                "mint_url": self.mint.url,
                "mints": [self.mint.url],
                "price_msats_per_job": PRICE_MSATS,
                "price_msats_per_1k_tokens": 0,
            }
        return cfg

    def start_nodes(self) -> None:
        import yaml
        from daemons import start_daemon, stop_daemon

        from silnode.client import Client

        env = {"SILNODE_PASSWORD": PASSWORD}
        for label in ("A", "B", "C"):

            def start(label: str = label) -> str:
                home = self.workdir / f"node-{label}"
                home.mkdir(parents=True)
                (home / "config.yaml").write_text(yaml.safe_dump(self._config(label)))
                r = subprocess.run(
                    [sys.executable, "-m", "silnode", "identity", "new", "--json"],
                    env=dict(os.environ, SILNODE_HOME=str(home), **env),
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                )
                if r.returncode != 0:
                    raise StepFailed(f"identity new: {r.stderr.strip()[-500:]}")
                d = start_daemon(home, env=env, timeout=120)
                self.daemons[label] = d
                self.cleanups.append((f"node {label}", lambda d=d: stop_daemon(d)))
                self.clients[label] = Client(d.url, d.token, timeout=120)
                npub = self.clients[label].identity()["npub"]
                return f"{d.url} (home {home.name}, {npub[:20]}…)"

            self.story.step(label, "start a daemon with a new identity", start)

    # ------------------------------------------------------------------ the plot
    def publish(self) -> str:
        from ggufgen import make_gguf

        a = self.clients["A"]
        # a 32k vocabulary makes it ~17 MiB: 67 pieces of 256 KiB, enough for B to take pieces from A and C
        path = make_gguf(self.workdir / "tiny-llama.gguf", seed=7, vocab_size=32000)
        task = a.share(MODEL, path=str(path), license="mit")
        result = a.wait(task)
        catalog = until(
            lambda: (
                (c := a.request("GET", "/api/v1/catalog")["catalog"])
                and any(e["name"] == MODEL for e in c.get("entries", []))
                and c
            ),
            "A to publish its catalog",
        )
        self.catalog_magnet = catalog["magnet"]
        ih = result.get("infohash") or result.get("id") or ""
        return f"{mib(path.stat().st_size)}, infohash {str(ih)[:12]}…, catalog seq {catalog['seq']}"

    def follow_and_get(self, label: str, peers: list[str]) -> str:
        c = self.clients[label]
        senders = [who for who in ("A", "C") if who != label]
        before = {who: self.uploaded(who) for who in senders}
        c.request("POST", "/api/v1/following", {"publisher": self.catalog_magnet})
        hits = until(
            lambda: c.request("GET", f"/api/v1/discover?pattern={MODEL}")["results"],
            f"{label} to find {MODEL} in A's catalog",
        )
        got = c.get(MODEL, peers=peers)
        tid = got.get("transfer", {}).get("id")
        if tid is None and "task" in got:
            c.wait(got["task"])
            tid = until(lambda: [t["id"] for t in c.transfers() if t.get("name") == MODEL], "the transfer")[0]

        def done() -> bool:
            t = c.transfer(tid)
            if t.get("state") in ("error", "cancelled"):
                raise StepFailed(f"transfer {t['state']}: {t.get('error')}")
            return t.get("state") in ("done", "seeding")  # a finished download is listed as its seed

        until(done, f"{label}'s download of {MODEL}")
        model = c.model(MODEL)
        size = int(model.get("size") or model.get("total_size") or 0)

        def sent() -> dict[str, int]:
            return {who: self.uploaded(who) - before[who] for who in senders}

        # libtorrent's upload counters reach the status a moment after the last piece: wait for them to add up
        try:
            until(lambda: sum(sent().values()) >= size * 0.99, "the upload counters", 20)
        except StepFailed:
            pass  # only the split below would be incomplete; the download itself was verified
        split = ", ".join(f"{who} sent {mib(n)}" for who, n in sent().items())
        return (
            f"found {MODEL} in publisher {hits[0]['publisher'][:12]}…'s catalog; downloaded and sha256-verified "
            f"({mib(size)}); this download: {split}"
        )

    def uploaded(self, label: str) -> int:
        """Bytes of the demo model this node has uploaded (its download and seed entries together)."""
        return sum(int(t.get("uploaded") or 0) for t in self.clients[label].transfers() if t.get("name") == MODEL)

    def peer(self, label: str) -> str:
        port = self.clients[label].status()["torrents"].get("listen_port")
        return f"127.0.0.1:{port}"

    def serve(self) -> str:
        b = self.clients["B"]
        b.load(MODEL)
        dvm = until(lambda: (d := b.dvm())["state"] == "selling" and d, "B to sell on Nostr")
        price = f"{PRICE_MSATS} msats per job" if self.paid else "free"
        return f"llama.cpp serves {MODEL}; selling on {self.relay_url} ({price}); dvm state {dvm['state']}"

    def buy(self) -> str:
        from nostr_sdk import PublicKey

        from silnode.dvm.customer import Customer, customer_keys
        from silnode.identity import Keystore

        ks = Keystore(self.daemons["C"].home / "identity.enc")
        keys = customer_keys(ks.unlock(PASSWORD))
        provider = self.clients["B"].identity()
        paid: list[int] = []

        async def pay(msats: int, bolt11: str) -> None:
            paid.append(msats)
            await self.wallet.pay(bolt11)

        async def ask() -> tuple[list[dict[str, Any]], dict[str, Any]]:
            customer = Customer(keys, [self.relay_url])
            await customer.start()
            try:
                found: list[dict[str, Any]] = []
                deadline = time.monotonic() + 60  # B announces (NIP-89) once it serves; a hang guard
                while not found and time.monotonic() < deadline:
                    rows = await customer.providers(timeout=1)
                    found = [p for p in rows if MODEL in p["topics"] and p["pubkey"] == provider["nostr_pubkey"]]
                    if not found:
                        await asyncio.sleep(0.2)
                reply = await customer.ask(
                    "Once upon a time",
                    provider=PublicKey.parse(provider["nostr_pubkey"]),
                    params={"model": MODEL, "max_tokens": "16", "temperature": "0"},
                    bid=PRICE_MSATS * 2 if self.paid else None,
                    on_payment=pay if self.paid else None,
                    timeout=240,
                )
                return found, reply
            finally:
                await customer.stop()

        found, reply = self.bg.run(ask(), 300)
        if not found:
            raise StepFailed(f"no NIP-89 announcement of {MODEL} on the relay")
        if not reply["text"]:
            raise StepFailed("the job came back empty")
        self.story.note(f"C's customer saw B's NIP-89 announcement ({found[0]['name']}) and asked B for 16 tokens")
        self.story.note(
            f"B's answer (random weights, so random words): {reply['text'][:50]!r}… (statuses {', '.join(reply['statuses'])})"
        )
        if self.paid:
            if paid != [PRICE_MSATS] or reply["amount_msats"] != PRICE_MSATS:
                raise StepFailed(f"expected one payment of {PRICE_MSATS} msats, saw {paid}")
            return f"paid {PRICE_MSATS} msats in ecash for job {reply['job'][:12]}… (answered in {reply['seconds']} s)"
        return f"FREE job {reply['job'][:12]}… (answered in {reply['seconds']} s; {self.free_reason})"

    def books(self) -> str:
        b = self.clients["B"]
        job = until(lambda: [j for j in b.jobs() if j.get("status") == "success"], "B to record the job")[0]
        earned = b.request("GET", "/api/v1/earnings")
        paid = ((earned.get("earnings") or earned).get("totals") or {}).get("paid", {}).get("msats", 0)
        if self.paid and paid != PRICE_MSATS:
            raise StepFailed(f"B's ledger shows {paid} msats paid, expected {PRICE_MSATS}")
        return f"job {job['id'][:12]}… success; earnings paid: {paid} msats"

    def run(self) -> None:
        self.start_network()
        self.start_nodes()
        s = self.story
        s.step("A", f"share {MODEL} and publish the catalog", self.publish)
        s.step(
            "C", "follow A's catalog, get the model from A, seed it", lambda: self.follow_and_get("C", [self.peer("A")])
        )
        s.step(
            "B",
            "discover the model in A's catalog and download it from A and C",
            lambda: self.follow_and_get("B", [self.peer("A"), self.peer("C")]),
        )
        s.step("B", "serve the model and sell it on Nostr (NIP-90)", self.serve)
        s.step("C", "C's customer buys a completion from B over NIP-90", self.buy)
        s.step("B", "record the job and the earnings", self.books)

    def teardown(self) -> None:
        # a second Ctrl-C must not cut the teardown short and leave daemons behind
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print(f"[{time.monotonic() - self.story.t0:6.1f} s] teardown  stopping everything ...", flush=True)
        if self.wallet is not None:
            try:
                self.bg.run(self.wallet.close(), 30)
            except Exception as exc:  # keep tearing down
                print(f"{'':20} closing the wallet: {exc}", flush=True)
        while self.cleanups:
            what, fn = self.cleanups.pop()
            try:
                fn()
                print(f"{'':20} stopped {what}", flush=True)
            except Exception as exc:  # keep tearing down the rest
                print(f"{'':20} stopping {what} failed: {exc}", flush=True)
        self.bg.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, help="Where the nodes live (default: a temp dir, removed afterwards).")
    ap.add_argument("--keep", action="store_true", help="Keep the work dir (homes, logs) afterwards.")
    ap.add_argument("--free", action="store_true", help="Do not start the mint: the job is free.")
    ap.add_argument("--report", type=Path, help="Also write the steps as JSON here.")
    args = ap.parse_args(argv)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM tears down like Ctrl-C

    signal.signal(signal.SIGTERM, on_term)
    # the demo's nodes are configured by their config.yaml alone: SILNODE_* from the caller's shell (a home, a
    # port, network settings) would otherwise override it in every daemon
    for key in [k for k in os.environ if k.startswith("SILNODE_")]:
        del os.environ[key]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="silnode-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    demo = Demo(workdir, args.free)
    print(f"silnode demo: three nodes on loopback in {workdir}", flush=True)
    outcome = "failed"
    try:
        demo.run()
        outcome = "ok"
    except KeyboardInterrupt:
        outcome = "interrupted"
        print("interrupted (Ctrl-C)", flush=True)
    except Exception as exc:
        print(f"the demo failed: {type(exc).__name__}: {exc}", flush=True)
    finally:
        demo.teardown()
    total = time.monotonic() - demo.story.t0
    if args.report:
        report = {"outcome": outcome, "paid": demo.paid, "seconds": round(total, 2), "steps": demo.story.steps}
        args.report.write_text(json.dumps(report, indent=2))
    if outcome == "ok":
        print(f"all {len(demo.story.steps)} steps passed in {total:.1f} s; everything stopped", flush=True)
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        return 0
    print(f"the demo {outcome} after {total:.1f} s; everything stopped; logs kept in {workdir}", flush=True)
    return 130 if outcome == "interrupted" else 1


if __name__ == "__main__":
    sys.exit(main())
