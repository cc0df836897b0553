#!/usr/bin/env python3
"""Benchmark: a NIP-90 job's round trip through silnode against a minimal echo provider and against the same
generation over HTTP, all in one run on the same relay.

    python bench/dvm.py [--jobs 100] [--customers 20] [--per-customer 10] [--relay local|nostr-relay] [--json]

Everything runs on loopback, each part in its own process:

    relay      `silnode relay` (nostr-sdk LocalRelay on LMDB: the node's embedded relay), fresh
    silnode    a real daemon selling the generated tiny GGUF (tests/ggufgen.py, no chat template, so the job
               is the same plain completion as over HTTP) with max_tokens=1 through its real llama.cpp worker
    echo       a minimal NIP-90 provider: a few lines of nostr-sdk (this file, --echo) that answers each job
               with a `processing` feedback and a result echoing the input; it uses silnode's TCP_NODELAY
               transport too, so the comparison is of the providers, not of Nagle's algorithm
    http       POST /v1/completions to the same daemon, same prompt, max_tokens=1

Customers are nostr-sdk clients (the same transport), one subscription each on their own `#p`; a round trip
runs from publishing the request to the result's arrival. Sequential latency: --jobs jobs per side,
interleaved (echo, silnode, http, echo, ...) so drift hits all alike. Throughput: --customers concurrent
customers (or HTTP clients), each with --per-customer jobs, one side after the other.

The worker's own time per job comes from the daemon's counters (GET /api/v1/serving: prompt_seconds +
gen_seconds over the requests of the sequential phase, the DVM's and HTTP's alike: the same generation). Targets (the issue's):

    overhead  silnode p50 round trip - worker time  <=  1.25 x  echo p50 round trip
    jobs/s    silnode with N customers             >=  0.8  x  HTTP with N clients
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

MODEL = "bench/tiny"
PROMPT = "hello"
PRIVATE_NETWORK = {
    "SILNODE_NETWORK__LISTEN_ADDRESS": "127.0.0.1",
    "SILNODE_NETWORK__LISTEN_PORT": "0",
    "SILNODE_NETWORK__DHT_ENABLED": "false",
    "SILNODE_NETWORK__LSD_ENABLED": "false",
    "SILNODE_NETWORK__UPNP_ENABLED": "false",
    "SILNODE_NETWORK__NATPMP_ENABLED": "false",
    "SILNODE_SERVE__STARTER_MODEL": "false",
}


def note(msg: str) -> None:
    print(f"[dvm-bench] {msg}", file=sys.stderr, flush=True)


# ---- the echo provider (its own process) ---------------------------------------------------------------------


async def echo_provider(relay: str, secret: str) -> None:
    """The minimal NIP-90 provider the round trip is compared with."""
    from nostr_sdk import EventBuilder, Filter, Keys, Kind, ReqTarget, Tag, Timestamp

    from silnode.dvm.relays import new_client, parse_relay

    keys = Keys.parse(secret)
    c = new_client()
    await c.add_relay(parse_relay(relay))
    await c.connect(__import__("datetime").timedelta(seconds=3))
    notes = c.notifications()
    await c.subscribe(ReqTarget.auto([Filter().kind(Kind(5050)).pubkey(keys.public_key()).since(Timestamp.now())]))
    print("ready", flush=True)

    async def answer(job: Any) -> None:
        ref = [["e", job.id().to_hex()], ["p", job.author().to_hex()]]
        i = next(t.to_vec() for t in job.tags() if t.to_vec()[0] == "i")
        for kind, content, tags in (
            (7000, "", [["status", "processing", ""]]),
            (6050, i[1], [["request", job.as_json()]]),
        ):
            ev = EventBuilder(Kind(kind), content).tags([Tag.parse(t) for t in tags + ref]).finalize(keys)
            await c.send_event(ev)

    tasks: set[asyncio.Task] = set()
    while (n := await notes.next()) is not None:
        if n.is_new_event() and n.event.kind().as_u16() == 5050:
            t = asyncio.create_task(answer(n.event))
            tasks.add(t)
            t.add_done_callback(tasks.discard)


# ---- customers -----------------------------------------------------------------------------------------------


class Customer:
    """One nostr-sdk client, one subscription (results and feedback addressed to it); jobs matched by `e`."""

    def __init__(self, relay: str) -> None:
        from nostr_sdk import Keys

        self.relay, self.keys = relay, Keys.generate()
        self.waiting: dict[str, asyncio.Future] = {}

    async def start(self) -> None:
        from datetime import timedelta

        from nostr_sdk import Filter, Kind, ReqTarget, Timestamp

        from silnode.dvm.relays import new_client, parse_relay, relay_options

        self.client = new_client()
        await self.client.add_relay(parse_relay(self.relay), opts=relay_options())
        await self.client.connect(timedelta(seconds=3))
        f = Filter().kinds([Kind(6050), Kind(7000)]).pubkey(self.keys.public_key()).since(Timestamp.now())
        self.notes = self.client.notifications()
        await self.client.subscribe(ReqTarget.auto([f]))
        self.loop = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while (n := await self.notes.next()) is not None:
            if not n.is_new_event():
                continue
            ev = n.event
            tags = [t.to_vec() for t in ev.tags()]
            job = next((t[1] for t in tags if t[0] == "e"), None)
            fut = self.waiting.get(job)
            if fut is None or fut.done():
                continue
            if ev.kind().as_u16() == 6050:
                fut.set_result(time.perf_counter())
            elif any(t[0] == "status" and t[1] == "error" for t in tags):
                fut.set_exception(RuntimeError(f"job refused: {tags}"))

    async def job(self, provider: Any, model: str | None) -> float:
        from silnode.dvm.customer import build_request

        params = {"model": model, "max_tokens": "1", "temperature": "0"} if model else {}
        req = build_request(self.keys, PROMPT, provider=provider, params=params)
        fut = asyncio.get_running_loop().create_future()
        self.waiting[req.id().to_hex()] = fut
        t0 = time.perf_counter()
        out = await self.client.send_event(req)
        if not out.success:
            raise RuntimeError(f"the relay refused the job: {out.failed}")
        done = await asyncio.wait_for(fut, 60)
        del self.waiting[req.id().to_hex()]
        return done - t0

    async def stop(self) -> None:
        self.loop.cancel()
        await self.client.shutdown()


class Http:
    def __init__(self, port: int, token: str) -> None:
        self.url = f"http://127.0.0.1:{port}/v1/completions"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 1, "temperature": 0}

    async def start(self) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(headers=self.headers)

    async def job(self, *_: Any) -> float:
        t0 = time.perf_counter()
        async with self.session.post(self.url, json=self.body) as r:
            data = await r.json()
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}: {data}")
        return time.perf_counter() - t0

    async def stop(self) -> None:
        await self.session.close()


# ---- the run -------------------------------------------------------------------------------------------------


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * len(xs)) - 1))]


def summary(xs: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(xs) * 1000, 2), "p95_ms": round(pct(xs, 0.95) * 1000, 2)}


async def throughput(clients: list[Any], provider: Any, model: str | None, per: int) -> dict[str, float]:
    async def one(c: Any) -> list[float]:
        return [await c.job(provider, model) for _ in range(per)]

    t0 = time.perf_counter()
    times = [t for ts in await asyncio.gather(*(one(c) for c in clients)) for t in ts]
    wall = time.perf_counter() - t0
    return {"jobs": len(times), "jobs_per_s": round(len(times) / wall, 1), **summary(times)}


def start_process(args: list[str], env: dict[str, str], log: Path, ready: str, timeout: float = 60) -> Any:
    """A child whose stdout says ``ready`` (its first line containing it) when it is; returns (proc, line)."""
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=open(log, "ab"), text=True, cwd=ROOT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if ready in line:
            return proc, line
        if not line and proc.poll() is not None:
            raise RuntimeError(f"{args[2:4]} exited: {log.read_text()[-2000:]}")
    proc.kill()
    raise RuntimeError(f"{args[2:4]} did not start")


def cli(env: dict[str, str], *args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "silnode", *args], env=env, capture_output=True, text=True, cwd=ROOT)
    if r.returncode:
        raise RuntimeError(f"silnode {' '.join(args)}: {r.stdout[-500:]}{r.stderr[-1500:]}")
    return r.stdout


def counters(client: Any) -> dict[str, float]:
    m = next(m for m in client.serving() if m["name"] == MODEL)
    return {k: m[k] for k in ("requests", "prompt_seconds", "gen_seconds")}


async def run(a: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    import yaml
    from daemons import start_daemon, stop_daemon
    from ggufgen import make_gguf
    from nostr_sdk import Keys, PublicKey

    from silnode.client import Client
    from silnode.identity import FAST_TEST_KDF, Identity, Keystore

    for key in [k for k in os.environ if k.startswith("SILNODE_")]:
        del os.environ[key]  # the developer's own settings stay out of the bench's processes
    base = dict(os.environ, **PRIVATE_NETWORK)
    procs: list[subprocess.Popen] = []
    stoppers: list[Any] = []
    daemon = None
    clients: list[Any] = []
    try:
        if a.relay == "nostr-relay":  # the PyPI server (Python, SQLite; a [test] extra), as a second anchor
            sys.path.insert(0, str(ROOT / "tests" / "dvm"))
            from dvm_helpers import NostrRelay

            other = NostrRelay(scratch / "nostr-relay")
            relay = await other.start()
            stoppers.append(other.stop)
        else:
            relay_home = scratch / "relay-home"
            relay_proc, line = start_process(
                [sys.executable, "-m", "silnode", "relay", "--port", "0", "--json"],
                dict(base, SILNODE_HOME=str(relay_home)),
                scratch / "relay.log",
                "url",
            )
            procs.append(relay_proc)
            relay = line.split('"url": "', 1)[1].split('"', 1)[0]  # its --json output is indented
        note(f"relay ({a.relay}) at {relay}")

        home = scratch / "home"
        home.mkdir()
        nostr = {"relays": [relay], "rate_per_minute": 1_000_000, "partial_interval": 0, "relay_port": 0}
        # both sides get the same room to queue: 20 concurrent requests overflow the default queue of 16
        (home / "config.yaml").write_text(yaml.safe_dump({"nostr": nostr, "serve": {"queue_size": 256}}))
        identity = Identity.generate()
        Keystore.for_home(home, kdf=FAST_TEST_KDF).save(identity, "bench")
        env = dict(base, SILNODE_HOME=str(home), SILNODE_PASSWORD="bench")
        daemon = start_daemon(home, env=dict(PRIVATE_NETWORK, SILNODE_PASSWORD="bench"), timeout=60)
        gguf = make_gguf(scratch / "tiny.gguf", chat_template=False)
        cli(env, "import", str(gguf), "--name", MODEL)
        cli(env, "serve", MODEL, "--ctx", "512")
        api = Client(daemon.url, daemon.token)
        for _ in range(600):
            if api.dvm().get("state") == "selling" and any(m["state"] == "ready" for m in api.serving()):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"the daemon is not selling: {api.dvm()}")
        node_pk = PublicKey.parse(identity.nostr.pubkey_hex)
        note(f"silnode daemon selling {MODEL} on the relay")

        echo_keys = Keys.generate()
        echo_proc, _ = start_process(
            [sys.executable, str(Path(__file__).resolve()), "--echo", relay, echo_keys.secret_key().to_hex()],
            base,
            scratch / "echo.log",
            "ready",
        )
        procs.append(echo_proc)
        echo_pk = echo_keys.public_key()

        customer = Customer(relay)
        http = Http(daemon.port, daemon.token)
        await customer.start()
        await http.start()
        clients += [customer, http]
        sides = {"echo": (customer, echo_pk, None), "silnode": (customer, node_pk, MODEL), "http": (http, None, None)}
        for c, pk, model in sides.values():  # warm-up: connections, the worker's first request
            for _ in range(3):
                await c.job(pk, model)

        note(f"sequential: {a.jobs} jobs per side, interleaved")
        lat: dict[str, list[float]] = {s: [] for s in sides}
        before = counters(api)
        for _ in range(a.jobs):
            for side, (c, pk, model) in sides.items():
                lat[side].append(await c.job(pk, model))
        after = counters(api)
        n = after["requests"] - before["requests"]
        worker_s = (
            after["prompt_seconds"] + after["gen_seconds"] - before["prompt_seconds"] - before["gen_seconds"]
        ) / n

        note(f"throughput: {a.customers} concurrent customers x {a.per_customer} jobs per side")
        crowd = [Customer(relay) for _ in range(a.customers)]
        https = [Http(daemon.port, daemon.token) for _ in range(a.customers)]
        for c in crowd + https:
            await c.start()
        clients += crowd + https
        thr = {
            "echo": await throughput(crowd, echo_pk, None, a.per_customer),
            "silnode": await throughput(crowd, node_pk, MODEL, a.per_customer),
            "http": await throughput(https, None, None, a.per_customer),
        }
        jobs = api.jobs(limit=1000, status="success")
        return {
            "sequential": {side: summary(xs) for side, xs in lat.items()},
            "worker_ms": round(worker_s * 1000, 2),
            "worker_requests": n,
            "throughput": thr,
            "dvm_jobs_succeeded": len(jobs),
        }
    finally:
        for c in clients:
            await c.stop()
        if daemon is not None:
            stop_daemon(daemon)
        for p in procs:
            p.terminate()
            p.wait(15)
        for stop in stoppers:
            await stop()


def report(r: dict[str, Any], a: argparse.Namespace) -> str:
    seq, thr = r["sequential"], r["throughput"]
    overhead = seq["silnode"]["p50_ms"] - r["worker_ms"]
    o_ratio = overhead / seq["echo"]["p50_ms"]
    t_ratio = thr["silnode"]["jobs_per_s"] / thr["http"]["jobs_per_s"]
    lines = [
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end; "
        f"relay: {a.relay}",
        f"sequential ({a.jobs} jobs per side, interleaved)   p50 ms   p95 ms",
    ]
    for side in ("echo", "silnode", "http"):
        lines.append(f"  {side:<44}{seq[side]['p50_ms']:>7.2f}  {seq[side]['p95_ms']:>7.2f}")
    lines += [
        f"  worker's own time per job (mean)            {r['worker_ms']:>7.2f}",
        f"{a.customers} concurrent ({a.per_customer} jobs each)              jobs/s   p50 ms   p95 ms",
    ]
    for side in ("echo", "silnode", "http"):
        t = thr[side]
        lines.append(f"  {side:<37}{t['jobs_per_s']:>7.1f}  {t['p50_ms']:>7.2f}  {t['p95_ms']:>7.2f}")
    lines += [
        f"overhead p50 = {seq['silnode']['p50_ms']:.2f} - {r['worker_ms']:.2f} = {overhead:.2f} ms = {o_ratio:.2f}x echo "
        f"(target <= 1.25x): {'met' if o_ratio <= 1.25 else 'MISSED'}",
        f"jobs/s = {t_ratio:.2f}x HTTP (target >= 0.8x): {'met' if t_ratio >= 0.8 else 'MISSED'}",
    ]
    r["overhead_ratio"], r["throughput_ratio"] = round(o_ratio, 3), round(t_ratio, 3)
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=100, help="sequential jobs per side")
    p.add_argument("--customers", type=int, default=20)
    p.add_argument("--per-customer", type=int, default=10)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--relay",
        choices=["local", "nostr-relay"],
        default="local",
        help="the relay every side goes through: `silnode relay` (nostr-sdk LocalRelay) or the PyPI nostr-relay",
    )
    p.add_argument("--echo", nargs=2, metavar=("RELAY", "SECRET"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.echo:
        asyncio.run(echo_provider(*a.echo))
        return
    scratch = Path(tempfile.mkdtemp(prefix="dvm-bench-"))
    try:
        r = asyncio.run(run(a, scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    text = report(r, a)
    print(json.dumps(r, indent=2) if a.json else text)


if __name__ == "__main__":
    main()
