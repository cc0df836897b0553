"""`WorkerProcess`: the daemon's asyncio handle on one model worker subprocess (`silnode.serving.worker`).

    w = WorkerProcess("org/model", path, n_ctx=4096, log_path=...)
    info = await w.start()                      # the worker's "ready" info; ModelLoadError if it cannot load
    async for event in w.generate({"kind": "completion", "prompt": "...", "max_tokens": 64}):
        ...                                     # {"type": "delta", "text"}..., then {"type": "done", ...}
    await w.stop()

A pump task reads the worker's stdout and routes each event to its request's queue by id, so the pipe is
always drained; a second task keeps the worker's stderr (log file + the last lines in memory) so that a
chatty llama.cpp can never block on a full pipe. Requests sent while one runs wait in the worker's queue.

Watchdogs: a worker that is not ready after `load_timeout` s is killed (LoadTimeout, 504); a generation with
no event from the worker (a delta, or the progress event it sends after each prompt batch and token) for
`stall_timeout` s gets the worker killed and GenerationStalled (504; a WorkerCrashed, so the served model
restarts it). The worker runs with a minimal environment (worker_env): no secret of the daemon's reaches it.

Its errors (ModelLoadError, WorkerCrashed, RequestFailed and its subclasses) are in silnode.errors.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from silnode.errors import (
    ContextOverflow,
    GenerationStalled,
    InvalidGenerationRequest,
    LoadTimeout,
    ModelLoadError,
    RequestFailed,
    WorkerCrashed,
)
from silnode.serving import hang
from silnode.serving.logfile import RotatingLog
from silnode.serving.request import EmbeddingRequest, GenerationRequest

STDERR_TAIL = 200  # stderr lines kept in memory
LINE_LIMIT = 16 << 20  # longest protocol line (a delta is small; this only bounds a broken worker)
STDERR_LINE_MAX = 1 << 16  # longer stderr "lines" are cut: only the log file gets them whole
# lines that give a reason; not "abort": llama.cpp logs "set_abort_callback: call" on every load
REASON_RE = re.compile(r"error|failed|invalid|assert|fatal", re.IGNORECASE)
# a worker killed by SIGILL ran an instruction this CPU (or its VM) refuses: a llama.cpp build for another CPU
SIGILL_CAUSE = "this llama.cpp build uses CPU instructions this machine refuses"
SIGILL_FIX = (
    "rebuild it portable: `rm -rf .venv ~/.cache/silnode/llama-wheels && make install` "
    "(scripts/install_llama.py builds with GGML_NATIVE=OFF)"
)
STDERR_WAIT = 5.0  # after the worker exits: how long to wait for the rest of its stderr

# What a worker inherits of the daemon's environment: what Python, llama.cpp and its GPU and threading
# back ends read, nothing else. A foreground daemon holds SILNODE_PASSWORD (and maybe HF_TOKEN, cloud keys):
# a model worker runs third-party C code on files from strangers and must not hold them.
ENV_KEEP = {
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "LD_LIBRARY_PATH",
    "DYLD_LIBRARY_PATH",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "SYSTEMROOT",
    "XDG_CACHE_HOME",
    hang.ENV,  # test-only: serving/hang.py
}
ENV_KEEP_PREFIXES = (
    "LC_",
    "PYTHON",
    "OMP_",
    "GOMP_",
    "KMP_",
    "MKL_",
    "OPENBLAS_",
    "BLIS_",
    "GGML_",
    "LLAMA_",
    "CUDA_",
    "NVIDIA_",
    "HIP_",
    "ROCR_",
    "HSA_",
    "GPU_",
    "ZE_",
    "ONEAPI_",
    "SYCL_",
    "VK_",
    "MESA_",
    "METAL_",
)


def worker_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a model worker starts with: ENV_KEEP and ENV_KEEP_PREFIXES of ``environ`` only."""
    environ = dict(os.environ) if environ is None else environ
    return {k: v for k, v in environ.items() if k in ENV_KEEP or k.startswith(ENV_KEEP_PREFIXES)}


_REQUEST_ERRORS = {cls.code: cls for cls in (RequestFailed, ContextOverflow, InvalidGenerationRequest)}


def request_error(event: dict[str, Any]) -> RequestFailed:
    cls = _REQUEST_ERRORS.get(str(event.get("code")), RequestFailed)
    param = event.get("param")  # the field at fault, for a 400 that names it
    return cls(
        str(event.get("message") or "the model worker could not run the request"),
        **({"param": str(param)} if param else {}),
    )


def stderr_reasons(lines: list[str], n: int = 3, *, fallback: bool = True) -> list[str]:
    """The last `n` lines that look like a reason (llama.cpp's "error loading model: ...", a failed assert,
    a Python "...Error: ..." line), else (with `fallback`) just the last `n` lines."""
    lines = [line.strip() for line in lines if line.strip()]
    return [line for line in lines if REASON_RE.search(line)][-n:] or (lines[-n:] if fallback else [])


class WorkerProcess:
    def __init__(
        self,
        model: str,
        path: Path,
        *,
        n_ctx: int,
        n_threads: int | None = None,
        n_batch: int = 512,
        n_gpu_layers: int | None = None,
        main_gpu: int | None = None,
        tensor_split: list[float] | None = None,
        chat_format_fallback: str = "chatml",
        embedding: bool = False,
        heartbeat: float | None = None,
        log_path: Path | None = None,
        log_max_bytes: int = 10 << 20,
        log_backups: int = 3,
        load_timeout: float | None = None,
        stall_timeout: float | None = None,
        python: str = sys.executable,
    ) -> None:
        self.model = model
        self.path = Path(path)
        self.log_path = Path(log_path) if log_path is not None else None
        self.log_max_bytes, self.log_backups = log_max_bytes, log_backups
        self.load_timeout = load_timeout or None  # 0 / None: no limit
        self.stall_timeout = stall_timeout or None
        self.python = python
        self.config = {
            "path": str(self.path),
            "n_ctx": n_ctx,
            "n_threads": n_threads,
            "n_batch": n_batch,
            "n_gpu_layers": n_gpu_layers,
            "main_gpu": main_gpu,
            "tensor_split": tensor_split,
            "chat_format_fallback": chat_format_fallback,
            "embedding": embedding,
            "heartbeat": heartbeat,  # None: the worker's default (HEARTBEAT_S)
        }
        self.info: dict[str, Any] | None = None  # the worker's "ready" info
        self.last_done: dict[str, Any] | None = None  # the latest done event, also of a request abandoned early
        self._proc: asyncio.subprocess.Process | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        self._streams: dict[str, asyncio.Queue] = {}  # request id -> its events; None = the worker is gone
        self._ready: asyncio.Future | None = None
        self._load_message: str | None = None
        self._pump_task: asyncio.Task | None = None
        self._stderr_task: asyncio.Task | None = None
        self._exited = asyncio.Event()  # set once the worker is reaped and both pipes are drained
        self._stopping = False
        self._last_event = time.monotonic()  # when the worker last sent anything (the stall watchdog)
        self._stalled: GenerationStalled | None = None  # set when the stall watchdog killed the worker

    # ---- state ------------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None and not self._exited.is_set()

    def stderr_tail(self) -> list[str]:
        return list(self._tail)

    def _how_it_ended(self) -> str:
        rc = self.returncode
        if rc is None:
            return "is not running"
        if rc < 0:
            with contextlib.suppress(ValueError):
                return f"was killed by {signal.Signals(-rc).name}"
            return f"was killed by signal {-rc}"
        return f"exited with code {rc}"

    def _illegal_instruction(self) -> bool:
        return self.returncode == -signal.SIGILL

    def _crashed(self, when: str) -> WorkerCrashed:
        if self._stalled is not None:
            return self._stalled
        if self._stopping:
            return WorkerCrashed(f"the worker for {self.model} was stopped {when}")
        lines = stderr_reasons(self.stderr_tail())
        last = f"; last stderr: {' | '.join(lines)}" if lines else ""
        hint = f"the worker's full log is {self.log_path}" if self.log_path else None
        if self._illegal_instruction():
            return WorkerCrashed(
                f"the worker for {self.model} (pid {self.pid}) was killed by SIGILL {when}: {SIGILL_CAUSE}",
                hint=SIGILL_FIX,
            )
        return WorkerCrashed(
            f"the worker for {self.model} (pid {self.pid}) {self._how_it_ended()} {when}{last}", hint=hint
        )

    # ---- lifecycle --------------------------------------------------------------------------------------

    async def start(self) -> dict[str, Any]:
        """Spawn the worker and wait until it has loaded the model and warmed up; return its ready info."""
        if self._proc is not None:
            raise RuntimeError(f"the worker for {self.model} was already started")
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._ready = asyncio.get_running_loop().create_future()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                self.python,
                "-m",
                "silnode.serving.worker",
                json.dumps(self.config),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # a Ctrl-C meant for the daemon must not kill its workers mid-request
                limit=LINE_LIMIT,
                env=worker_env(),
            )
        except OSError as exc:
            raise ModelLoadError(f"cannot start a worker for {self.model}: {exc}") from None
        self._stderr_task = asyncio.create_task(self._read_stderr(), name=f"worker-stderr:{self.model}")
        self._pump_task = asyncio.create_task(self._pump(), name=f"worker-stdout:{self.model}")
        try:
            # on a timeout (or our own cancel) wait_for cancels _ready too: the pump then leaves it alone
            self.info = await asyncio.wait_for(self._ready, self.load_timeout)
        except asyncio.TimeoutError:
            self._kill()  # llama.cpp's load cannot be interrupted politely
            await self.stop(timeout=1.0)
            raise LoadTimeout(
                f"the worker for {self.model} did not finish loading {self.path.name} within "
                f"{self.load_timeout:g} s (serve.load_timeout); it was killed"
            ) from None
        except BaseException:
            await self.stop(timeout=1.0)
            raise
        return self.info

    async def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit (it cancels what runs), SIGKILL it after `timeout` s; reap it. Idempotent."""
        if self._proc is None:
            return
        self._stopping = True
        if self._proc.returncode is None:
            try:
                await asyncio.wait_for(self._shutdown(), timeout)
            except asyncio.TimeoutError:
                self._kill()
                await self._proc.wait()
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        await self._exited.wait()

    async def _shutdown(self) -> None:
        assert self._proc is not None
        with contextlib.suppress(ConnectionError):
            await self._write({"op": "shutdown"})
        await self._proc.wait()

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._proc.kill()  # type: ignore[union-attr]

    # ---- requests ---------------------------------------------------------------------------------------

    async def generate(
        self, request: GenerationRequest | EmbeddingRequest | dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield the request's delta events, then its done event. A dict goes to the worker as it is (the
        worker checks it: tests send malformed ones on purpose). Raises RequestFailed (and subclasses) when
        the worker rejects it, WorkerCrashed when the worker dies. Closing the iterator early cancels the
        request and waits for the worker to finish it, so the next request starts clean."""
        if self.info is None:
            raise RuntimeError(f"start() the worker for {self.model} first")
        if not self.alive:
            await self._exited.wait()  # the pump has the exit status and the last stderr lines
            raise self._crashed("before the request")
        if isinstance(request, (GenerationRequest, EmbeddingRequest)):
            request = request.to_wire()  # an EmbeddingRequest's line says op "embed"; its vectors come as deltas
        rid = str(request.get("id") or uuid.uuid4().hex)
        if rid in self._streams:
            raise ValueError(f"request id {rid!r} is already running")
        # embeddings send nothing until every vector is made (a big batch may take long): no stall watchdog
        watch = request.get("op") != "embed"
        events: asyncio.Queue = asyncio.Queue()
        self._streams[rid] = events
        finished = False
        try:
            try:
                self._last_event = time.monotonic()  # an idle worker's silence so far is not a stall
                await self._write({"op": "generate", **request, "id": rid})
            except ConnectionError:
                await self._exited.wait()
                finished = True
                raise self._crashed("before the request") from None
            while True:
                try:
                    event = await self._next_event(events, watch)
                except GenerationStalled:
                    finished = True
                    raise
                if event is None:
                    finished = True
                    raise self._crashed("during the request")
                if event.get("type") == "delta":
                    yield event
                    continue
                finished = True
                if event.get("type") == "error":
                    raise request_error(event)
                self.last_done = event
                yield event
                return
        finally:
            if finished:
                self._streams.pop(rid, None)
            else:
                # shielded: even if our task is cancelled again, the drain completes and frees the stream
                await asyncio.shield(asyncio.ensure_future(self._abandon(rid, events)))

    async def _next_event(self, events: asyncio.Queue, watch: bool) -> dict[str, Any] | None:
        """The request's next event; with the watchdog on, GenerationStalled once the worker has sent nothing
        (for any request) for stall_timeout s: the worker is killed first."""
        if not watch or self.stall_timeout is None:
            return await events.get()
        while True:
            left = self.stall_timeout - (time.monotonic() - self._last_event)
            if left <= 0 and events.empty():
                raise await self._stall()
            try:
                return await asyncio.wait_for(events.get(), max(left, 0.01))
            except asyncio.TimeoutError:
                continue

    async def _stall(self) -> GenerationStalled:
        """Kill a worker that stopped making progress; every request on it ends with the same error."""
        if self._stalled is None:
            self._stalled = GenerationStalled(
                f"the worker for {self.model} (pid {self.pid}) made no progress for {self.stall_timeout:g} s "
                "(serve.stall_timeout); it was killed",
                hint="a served model starts a new worker (up to serve.restart_limit times in serve.restart_window)"
                + (f"; the stuck worker's log is {self.log_path}" if self.log_path else ""),
            )
            self._kill()
        await self._exited.wait()
        return self._stalled

    async def cancel(self) -> None:
        """Cancel the running request (and any sent after it): their iterators end with "cancelled"."""
        for rid in list(self._streams):
            with contextlib.suppress(ConnectionError):
                await self._write({"op": "cancel", "id": rid})

    async def _abandon(self, rid: str, events: asyncio.Queue) -> None:
        """The consumer went away mid-request: cancel it and wait for its end."""
        try:
            with contextlib.suppress(ConnectionError):
                await self._write({"op": "cancel", "id": rid})
            while (event := await events.get()) is not None:
                if event.get("type") == "done":
                    self.last_done = event
                    return
                if event.get("type") == "error":
                    return
        finally:
            self._streams.pop(rid, None)

    async def _write(self, message: dict[str, Any]) -> None:
        """Send one protocol line; ConnectionError (BrokenPipe, reset) when the worker is gone."""
        if self._proc is None or self._proc.stdin is None or self._proc.stdin.is_closing():
            raise ConnectionResetError("the worker's stdin is closed")
        self._proc.stdin.write(json.dumps(message).encode() + b"\n")
        await self._proc.stdin.drain()

    # ---- pipes ------------------------------------------------------------------------------------------

    async def _pump(self) -> None:
        """Route the worker's stdout events until EOF, then reap it and wake everyone waiting on it."""
        assert self._proc is not None and self._proc.stdout is not None
        try:
            while line := await self._proc.stdout.readline():
                self._route(line)
        except ValueError:  # a line over LINE_LIMIT: the worker is broken
            self._tail.append(f"silnode: protocol line over {LINE_LIMIT} bytes; killing the worker")
            self._kill()
        except asyncio.CancelledError:  # the event loop is going away without stop(): take the worker along
            self._kill()
            raise
        finally:
            await self._proc.wait()
            if self._stderr_task is not None:
                await asyncio.wait({self._stderr_task}, timeout=STDERR_WAIT)
            self._exited.set()
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(self._load_error())
            for events in self._streams.values():
                events.put_nowait(None)

    def _route(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            self._tail.append(f"silnode: not a protocol line: {line[:200]!r}")
            return
        self._last_event = time.monotonic()
        kind = event.get("type")
        if kind == "progress":  # the worker is alive: that is all it says
            return
        if kind == "ready" and self._ready is not None and not self._ready.done():
            self._ready.set_result({k: v for k, v in event.items() if k != "type"})
        elif kind == "error" and event.get("phase") == "load":
            self._load_message = str(event.get("message", ""))
        elif (events := self._streams.get(str(event.get("id")))) is not None:
            events.put_nowait(event)

    def _load_error(self) -> ModelLoadError:
        """llama.cpp's own reason comes from stderr (the worker only sees "Failed to load model from file")."""
        if self._stopping:
            return ModelLoadError(f"loading {self.model} was cancelled: its worker was stopped")
        if self._illegal_instruction():
            return ModelLoadError(
                f"cannot load {self.model}: the worker was killed by SIGILL: {SIGILL_CAUSE}", hint=SIGILL_FIX
            )
        why = " | ".join(stderr_reasons(self.stderr_tail(), fallback=False)) or self._load_message
        if not why:
            lines = stderr_reasons(self.stderr_tail())
            why = f"the worker {self._how_it_ended()}" + (f"; last stderr: {' | '.join(lines)}" if lines else "")
        hint = f"llama.cpp's full output is in {self.log_path}" if self.log_path else None
        return ModelLoadError(f"cannot load {self.model} ({self.path.name}): {why}", hint=hint)

    async def _read_stderr(self) -> None:
        """Keep every stderr byte flowing: into the log file (if any) and the last lines into the tail."""
        assert self._proc is not None and self._proc.stderr is not None
        pending = b""
        # a local append-only file: blocking writes cost what the pipe reads do; it rotates past its cap
        log = RotatingLog(self.log_path, self.log_max_bytes, self.log_backups) if self.log_path else None
        try:
            while chunk := await self._proc.stderr.read(1 << 16):
                if log is not None:
                    log.write(chunk)
                *lines, pending = (pending + chunk).split(b"\n")
                pending = pending[-STDERR_LINE_MAX:]
                self._tail.extend(line[:STDERR_LINE_MAX].decode("utf-8", "replace").rstrip("\r") for line in lines)
        finally:
            if log is not None:
                log.close()
        if pending:
            self._tail.append(pending.decode("utf-8", "replace"))
