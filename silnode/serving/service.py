"""The loaded models: one worker process each, a fair bounded queue each, restarts, counters, and the served
set that survives a daemon restart.

A request goes: API handler -> ServedModel.submit (queue; 429 when full) -> the model's dispatcher task
(one request at a time, since one llama.cpp context generates one sequence) -> WorkerProcess.generate ->
events back to the handler through the request's own asyncio.Queue. The handler never touches the worker:
when its client goes away it calls Request.cancel(), and the dispatcher stops the generation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from silnode.config import Config
from silnode.errors import (
    Conflict,
    DoesNotFit,
    GenerationStalled,
    ModelNotLoaded,
    ModelUnavailable,
    QueueFull,
    RequestFailed,
    SilnodeError,
    WorkerCrashed,
)
from silnode.fit.inspect import inspect_model
from silnode.fsutil import atomic_write_json
from silnode.serving.demand import Demand, channel_of
from silnode.serving.process import WorkerProcess
from silnode.serving.queue import FairQueue
from silnode.serving.request import EmbeddingRequest, GenerationRequest

log = logging.getLogger(__name__)


@dataclass
class Request:
    """One inference request on its way through a model's queue."""

    client: str
    generation: GenerationRequest | EmbeddingRequest
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:24])  # unique across restarts (OpenAI ids)
    events: asyncio.Queue = field(default_factory=asyncio.Queue)  # worker events, then None
    cancelled: bool = False
    _on_cancel: Any = None

    def cancel(self) -> None:
        """The client went away: drop it from the queue, or stop its generation."""
        if not self.cancelled:
            self.cancelled = True
            if self._on_cancel:
                self._on_cancel(self)

    async def stream(self) -> AsyncIterator[dict[str, Any]]:
        """The worker's events for this request: deltas, then done. Errors arrive as exceptions."""
        while True:
            ev = await self.events.get()
            if isinstance(ev, BaseException):
                raise ev
            if ev is None:
                return
            yield ev


@dataclass
class Counters:
    requests: int = 0
    failed: int = 0
    rejected: int = 0  # 429s
    cancelled: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    gen_seconds: float = 0.0
    prompt_seconds: float = 0.0
    restarts: int = 0
    stalled: int = 0  # requests the stall watchdog ended (504)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["tokens_per_second"] = round(self.completion_tokens / self.gen_seconds, 2) if self.gen_seconds else None
        d["prompt_tokens_per_second"] = (
            round(self.prompt_tokens / self.prompt_seconds, 2) if self.prompt_seconds else None
        )
        return d


class ServedModel:
    def __init__(self, name: str, path: Path, n_ctx: int, config: Config, embedding: bool = False) -> None:
        self.name, self.path, self.n_ctx, self.config = name, path, n_ctx, config
        self.embedding = embedding  # loaded for /v1/embeddings (llama.cpp's embedding mode), not generation
        self.state = "loading"  # loading, ready, restarting, failed, unloading
        self.error: str | None = None
        self.info: dict[str, Any] = {}
        self.queue: FairQueue[Request] = FairQueue(config.serve.queue_size)
        self.counters = Counters()
        self.demand = Demand()  # requests per minute by channel (HTTP, NIP-90): status, dashboard, NIP-89
        self.running: Request | None = None
        self.loaded_at: float | None = None
        self.estimate: dict[str, Any] | None = None  # the memory estimate it was loaded under
        self.offload: dict[str, Any] | None = None  # where its layers go (fit/offload.py's plan)
        self._worker: Any = None
        self._crashes: list[float] = []
        self._dispatcher: asyncio.Task | None = None
        self._ready = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle
    def _new_worker(self) -> Any:

        sv = self.config.serve
        log_path = self.config.home / "logs" / f"worker-{self.name.replace('/', '--')}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        plan = self.offload or {}
        return WorkerProcess(
            self.name,
            self.path,
            n_ctx=self.n_ctx,
            # the plan's split; without one (no device known) the worker's default: all layers if it can
            n_gpu_layers=plan.get("n_gpu_layers"),
            main_gpu=plan.get("main_gpu"),
            tensor_split=plan.get("tensor_split"),
            n_threads=sv.n_threads or None,
            n_batch=sv.n_batch,
            chat_format_fallback=sv.chat_format,
            embedding=self.embedding,
            log_path=log_path,
            log_max_bytes=self.config.daemon.log_max_bytes,
            log_backups=self.config.daemon.log_backups,
            load_timeout=sv.load_timeout,
            stall_timeout=sv.stall_timeout,
        )

    async def start(self) -> None:
        """Spawn the worker and wait until it has loaded and warmed up; raises ModelLoadError."""
        self.state, self.error = "loading", None
        self._worker = self._new_worker()
        try:
            self.info = await self._worker.start()
        except BaseException as exc:
            self.state, self.error = "failed", str(exc)
            await self._worker.stop()
            raise
        self.state, self.loaded_at = "ready", time.time()
        self._ready.set()
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch(), name=f"serve:{self.name}")
        log.info(
            "serving %s (ctx %d, %s)",
            self.name,
            self.n_ctx,
            "GPU" if self.info.get("gpu_offload") else f"CPU, {self.info.get('n_threads')} threads",
        )

    async def stop(self) -> None:
        """Unload: waiting requests get an error, the running one is cancelled, the worker exits."""
        self.state = "unloading"
        gone = ModelUnavailable(f"{self.name} was unloaded", hint=f"`silnode serve {self.name}` loads it again")
        for req in self.queue.drain():
            req.events.put_nowait(gone)
        running = self.running
        if running is not None:
            running.cancel()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
        if running is not None:  # its dispatcher is gone: end its stream (after what it already has)
            running.events.put_nowait(gone)
        if self._worker is not None:
            await self._worker.stop()

    async def _restart(self, why: str) -> bool:
        """After a crash: start a new worker unless it crashed restart_limit times within the window."""
        now = time.monotonic()
        sv = self.config.serve
        self._crashes = [t for t in self._crashes if now - t < sv.restart_window] + [now]
        if len(self._crashes) > sv.restart_limit:
            self.state = "failed"
            self.error = (
                f"{why}; crashed {len(self._crashes)} times in {sv.restart_window} s, left down "
                f"(`silnode models load {self.name}` tries again)"
            )
            log.error("%s: %s", self.name, self.error)
            return False
        self.counters.restarts += 1
        self.state, self.error = "restarting", why
        log.warning("%s: %s; restarting its worker", self.name, why)
        old, self._worker = self._worker, self._new_worker()
        await old.stop()
        try:
            self.info = await self._worker.start()
        except SilnodeError as exc:
            self.state, self.error = "failed", f"restart failed: {exc}"
            return False
        self.state, self.error = "ready", None
        return True

    # ------------------------------------------------------------------ requests
    def submit(self, client: str, generation: GenerationRequest | EmbeddingRequest) -> Request:
        if self.state in ("failed", "unloading"):
            raise ModelUnavailable(
                f"{self.name} is {self.state}" + (f": {self.error}" if self.error else ""),
                hint=f"`silnode models load {self.name}` loads it again",
            )
        req = Request(client, generation)
        self.demand.record(channel_of(client))
        try:
            self.queue.put(client, req)
        except QueueFull as exc:
            self.counters.rejected += 1
            exc.retry_after = self.retry_after()  # the API sends it as the Retry-After header
            raise
        req._on_cancel = self._cancel
        return req

    def _cancel(self, req: Request) -> None:
        if self.queue.remove(req):
            self.counters.cancelled += 1
            req.events.put_nowait(None)
        elif req is self.running and self._worker is not None:
            asyncio.get_running_loop().create_task(self._worker.cancel())

    def retry_after(self) -> int:
        """Seconds a 429'd client should wait: the queue's length at the average request time so far."""
        done = max(self.counters.requests - self.counters.failed, 1)
        per = (self.counters.gen_seconds + self.counters.prompt_seconds) / done or 1.0
        return max(1, round(per * max(len(self.queue), 1)))

    async def _dispatch(self) -> None:

        while True:
            req = await self.queue.get()
            if req.cancelled:
                continue
            if not self._worker.alive and not await self._restart(
                f"worker exited while idle ({self._worker.returncode})"
            ):
                req.events.put_nowait(ModelUnavailable(f"{self.name} is down: {self.error}"))
                self._fail_waiting()
                continue
            self.running = req
            self.counters.requests += 1
            try:
                async for ev in self._worker.generate(req.generation):
                    if ev.get("type") == "done":
                        self._count(ev)
                    req.events.put_nowait(ev)
                req.events.put_nowait(None)
            except RequestFailed as exc:
                self.counters.failed += 1
                req.events.put_nowait(exc)
            except WorkerCrashed as exc:
                self.counters.failed += 1
                self.counters.stalled += isinstance(exc, GenerationStalled)
                req.events.put_nowait(exc)
                self.running = None
                if not await self._restart(str(exc)):
                    self._fail_waiting()
            except Exception as exc:  # a bug here must fail one request, not stop the model's queue
                log.exception("%s: request %s failed", self.name, req.id)
                self.counters.failed += 1
                req.events.put_nowait(ModelUnavailable(f"internal error while generating: {exc}"))
            finally:
                self.running = None

    def _count(self, done: dict[str, Any]) -> None:
        c = self.counters
        c.prompt_tokens += int(done.get("prompt_tokens") or 0)
        c.completion_tokens += int(done.get("completion_tokens") or 0)
        c.prompt_seconds += float(done.get("prompt_seconds") or 0)
        c.gen_seconds += float(done.get("gen_seconds") or 0)
        if done.get("finish_reason") == "cancelled":
            c.cancelled += 1

    def _fail_waiting(self) -> None:
        down = ModelUnavailable(
            f"{self.name} is down: {self.error}", hint=f"`silnode models load {self.name}` tries again"
        )
        for req in self.queue.drain():
            req.events.put_nowait(down)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "error": self.error,
            "n_ctx": self.n_ctx,
            "embedding": self.embedding,
            "pid": getattr(self._worker, "pid", None) if self.state != "failed" else None,
            "loaded_at": self.loaded_at,
            "queue_depth": len(self.queue),
            "busy": self.running is not None,
            "info": self.info,
            "offload": self.offload,
            **self.counters.to_dict(),
            "demand": self.demand.to_dict(),
        }


class ServingService:
    """Owns every ServedModel; persists which models are served (state/served.json)."""

    name = "serving"

    def __init__(self, config: Config, store: Any) -> None:
        self.config, self.store = config, store
        self.models: dict[str, ServedModel] = {}
        self._loading: dict[str, asyncio.Task] = {}
        self._file = config.state_dir / "served.json"

    async def start(self) -> None:
        """Load the served set of the last run, in the background: the daemon is up at once."""
        for entry in self._read_served():
            name = entry.get("name")
            if isinstance(name, str) and self.store.exists(name):
                n_ctx = entry.get("n_ctx") if isinstance(entry.get("n_ctx"), int) else None
                self._spawn_load(name, n_ctx, embedding=entry.get("embedding") is True)
            else:
                log.warning("not serving %r again: it is no longer in the store", name)

    async def stop(self) -> None:
        for t in self._loading.values():
            t.cancel()
        await asyncio.gather(*self._loading.values(), return_exceptions=True)
        await asyncio.gather(*(m.stop() for m in self.models.values()), return_exceptions=True)

    # ------------------------------------------------------------------ load / unload
    def _spawn_load(
        self, name: str, n_ctx: int | None, *, force: bool = False, keep_failed: bool = True, embedding: bool = False
    ) -> asyncio.Task:
        task = asyncio.create_task(
            self._load(name, n_ctx, force=force, keep_failed=keep_failed, embedding=embedding), name=f"load:{name}"
        )
        self._loading[name] = task
        task.add_done_callback(lambda t: self._loading.pop(name, None) if self._loading.get(name) is t else None)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # logged in _load; don't warn
        return task

    async def load(
        self, name: str, *, n_ctx: int | None = None, force: bool = False, embedding: bool = False
    ) -> dict[str, Any]:
        """Load `name` (a store model) and return when it is ready. Refused when it won't fit, unless force.
        embedding: load it for /v1/embeddings (llama.cpp's embedding mode) instead of generation."""
        if name in self._loading:
            await asyncio.shield(self._loading[name])
            return self.models[name].describe()
        current = self.models.get(name)
        if current is not None and current.state in ("ready", "restarting"):
            if (n_ctx is None or n_ctx == current.n_ctx) and embedding == current.embedding:
                return current.describe()
            await self.unload(name)
        await asyncio.shield(self._spawn_load(name, n_ctx, force=force, keep_failed=False, embedding=embedding))
        return self.models[name].describe()

    async def _load(
        self, name: str, n_ctx: int | None, *, force: bool, keep_failed: bool = True, embedding: bool = False
    ) -> None:
        """Check the fit, then start the worker. keep_failed: a model that can't load stays listed (state
        failed, with the reason) and in the served set, as after a restart; an interactive load drops it."""

        old = self.models.pop(name, None)
        if old is not None:
            await old.stop()
        want = n_ctx or self.config.serve.n_ctx or None  # None: the model's trained context
        held = self._held()
        data = await asyncio.to_thread(inspect_model, self.config, name, n_ctx=want, held=held)
        train = data["gguf"].get("context_length")
        if n_ctx is None and train and (want is None or want > train) and data["estimate"]["n_ctx"] != train:
            # the default never exceeds what the model was trained for (an explicit --ctx may)
            data = await asyncio.to_thread(inspect_model, self.config, name, n_ctx=train, held=held)
        model = ServedModel(name, Path(data["path"]), data["estimate"]["n_ctx"], self.config, embedding=embedding)
        model.estimate = data["estimate"]
        model.offload = data.get("offload")
        self.models[name] = model
        try:
            if not data["fits"] and not force:
                model.state, model.error = "failed", f"won't fit: {data['reason']}"
                raise DoesNotFit(f"{name} {model.error}")
            await model.start()
        except SilnodeError as exc:
            log.error("loading %s failed: %s", name, exc)
            if not keep_failed:
                self.models.pop(name, None)
            raise
        finally:
            self._write_served()

    async def unload(self, name: str) -> dict[str, Any]:
        if name in self._loading:
            self._loading[name].cancel()
            await asyncio.gather(self._loading[name], return_exceptions=True)
        model = self.models.pop(name, None)
        if model is None:
            raise ModelNotLoaded(f"{name} is not loaded")
        await model.stop()
        self._write_served()
        return {"name": name, "unloaded": True}

    def _held(self) -> dict[str, tuple[int, int]]:
        """Per device: (bytes needed, bytes of mmapped weights) of the models loaded or loading."""
        held: dict[str, tuple[int, int]] = {}
        for m in self.models.values():
            est = m.estimate
            if not est or m.state == "failed":
                continue
            for dev, need in est["per_device"].items():
                total, mapped = held.get(dev, (0, 0))
                on_cpu_mapped = est["weights_bytes"] if dev == "CPU" and not est["gpu"] else 0
                held[dev] = (total + need, mapped + on_cpu_mapped)
        return held

    def get(self, name: str) -> ServedModel:
        model = self.models.get(name)
        if model is None:
            raise ModelNotLoaded(f"model {name!r} is not loaded")
        return model

    def list(self) -> list[dict[str, Any]]:
        return [m.describe() for m in self.models.values()]

    def ensure_not_served(self, name: str) -> None:
        if name in self.models or name in self._loading:
            raise Conflict(f"{name} is being served", hint=f"`silnode models unload {name}` first")

    # ------------------------------------------------------------------ the served set
    def _read_served(self) -> list[dict[str, Any]]:
        try:
            data = json.loads(self._file.read_text())
            return [e for e in data.get("models", []) if isinstance(e, dict)]
        except FileNotFoundError:
            return []
        except (ValueError, OSError, AttributeError) as exc:
            log.warning("ignoring %s: %s", self._file, exc)
            return []

    def _write_served(self) -> None:
        entries = [
            {"name": m.name, "n_ctx": m.n_ctx, **({"embedding": True} if m.embedding else {})}
            for m in self.models.values()
        ]
        self._file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self._file, {"models": entries})

    # ------------------------------------------------------------------ metrics
    def summary(self) -> dict[str, Any]:
        return {m.name: m.describe() for m in self.models.values()}

    def prometheus(self) -> str:
        """The counters in Prometheus' text format (one series per model)."""
        metrics = [
            ("requests_total", "counter", "requests dispatched to the model", "requests"),
            ("requests_failed_total", "counter", "requests that ended in an error", "failed"),
            ("requests_rejected_total", "counter", "requests refused with 429 (queue full)", "rejected"),
            ("requests_cancelled_total", "counter", "requests whose client went away", "cancelled"),
            ("prompt_tokens_total", "counter", "prompt tokens processed", "prompt_tokens"),
            ("completion_tokens_total", "counter", "tokens generated", "completion_tokens"),
            ("generation_seconds_total", "counter", "seconds spent generating", "gen_seconds"),
            ("prompt_seconds_total", "counter", "seconds spent on prompts", "prompt_seconds"),
            ("worker_restarts_total", "counter", "worker processes restarted after a crash", "restarts"),
            ("requests_stalled_total", "counter", "requests ended by the stall watchdog (504)", "stalled"),
            ("queue_depth", "gauge", "requests waiting", "queue_depth"),
            ("tokens_per_second", "gauge", "generation speed over the model's life", "tokens_per_second"),
            ("up", "gauge", "1 when the model is ready", None),
        ]
        lines = []
        rows = self.list()
        for metric, kind, text, key in metrics:
            lines += [f"# HELP silnode_model_{metric} {text}", f"# TYPE silnode_model_{metric} {kind}"]
            for row in rows:
                value = (1 if row["state"] == "ready" else 0) if key is None else row.get(key)
                label = row["name"].replace("\\", "\\\\").replace('"', '\\"')
                lines.append(f'silnode_model_{metric}{{model="{label}"}} {value if value is not None else 0}')
        return "\n".join(lines) + "\n"
