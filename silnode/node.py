"""The Node: owns the services, starts them in dependency order and stops them in reverse.

The API layer calls the node; the node never imports the API or the CLI. Blocking work (hashing, copying)
runs on worker threads so the event loop keeps answering health checks while a 20 GB import hashes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from silnode import __version__
from silnode.config import Config
from silnode.errors import BadRequest, Conflict, DoesNotFit, NotFound, SilnodeError
from silnode.store import ImportSource, Store, summary

log = logging.getLogger(__name__)


class Service(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class TaskCancelled(SilnodeError):
    status = 503
    code = "cancelled"


@dataclass
class Task:
    """A long operation (import, verify) the CLI can follow with a progress bar."""

    id: str
    kind: str
    description: str
    state: str = "running"  # running | done | failed
    done_bytes: int = 0
    total_bytes: int = 0
    result: Any = None
    error: dict[str, Any] | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "description": self.description,
            "state": self.state,
            "done_bytes": self.done_bytes,
            "total_bytes": self.total_bytes,
            "result": self.result,
            "error": self.error,
            "started": self.started,
            "finished": self.finished,
        }


class Tasks:
    """Runs blocking jobs on threads and keeps their progress; finished tasks are kept for an hour."""

    name = "tasks"
    KEEP_S = 3600

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self._futures: set[asyncio.Future[Any]] = set()
        self._stopping = False

    async def start(self) -> None:
        self._stopping = False

    async def stop(self) -> None:
        # Threads cannot be killed: the next progress callback of each job raises TaskCancelled, the job's
        # own cleanup (e.g. the store deleting its partial dir) runs, and we wait for that.
        self._stopping = True
        if self._futures:
            await asyncio.gather(*self._futures, return_exceptions=True)

    def get(self, task_id: str) -> Task:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise NotFound(f"no task {task_id}") from None

    def submit(self, kind: str, description: str, fn: Callable[[Callable[[int, int], None]], Any]) -> Task:
        self._expire()
        task = Task(id=f"{kind}-{secrets.token_hex(4)}", kind=kind, description=description)
        self._tasks[task.id] = task

        def progress(done: int, total: int) -> None:  # called from the worker thread; plain int writes
            if self._stopping:
                raise TaskCancelled(f"{task.description}: cancelled, the daemon is stopping")
            task.done_bytes, task.total_bytes = done, total

        async def run() -> None:
            try:
                task.result = await asyncio.to_thread(fn, progress)
                task.state = "done"
            except SilnodeError as exc:
                task.state, task.error = "failed", exc.to_json()
            except Exception as exc:  # a bug: keep the node up, report it
                log.exception("task %s failed", task.id)
                task.state = "failed"
                task.error = {"ok": False, "error": f"internal error: {exc}", "code": "internal", "status": 500}
            finally:
                task.finished = time.time()

        fut = asyncio.ensure_future(run())
        self._futures.add(fut)
        fut.add_done_callback(self._futures.discard)
        return task

    async def wait(self, task: Task) -> Task:
        while task.state == "running":
            await asyncio.sleep(0.02)
        return task

    def _expire(self) -> None:
        cutoff = time.time() - self.KEEP_S
        for tid in [t.id for t in self._tasks.values() if t.finished and t.finished < cutoff]:
            del self._tasks[tid]


class StoreService:
    name = "store"

    def __init__(self, store: Store) -> None:
        self.store = store

    async def start(self) -> None:
        await asyncio.to_thread(self.store.ensure_dirs)

    async def stop(self) -> None:
        pass


class Node:
    def __init__(self, config: Config, *, identity: Any = None) -> None:
        self.config = config
        self.identity = identity  # silnode.identity.Identity (unlocked, in memory only) or None
        self.started_at = time.time()
        self.store = Store(config.base_dir, min_free_bytes=config.storage.min_free_bytes)
        self.tasks = Tasks()
        from silnode.distribution import DistributionService

        from silnode.serve.pool import ServeService

        self.torrents = DistributionService(config, self.store)
        self.serve = ServeService(config, self.store)
        # dependency order: the store first, then what uses it (the DVM joins after serving)
        self.services: list[Service] = [StoreService(self.store), self.tasks, self.torrents, self.serve]
        self._started: list[Service] = []
        self.shutdown_requested = asyncio.Event()

    async def start(self) -> None:
        for svc in self.services:
            log.info("starting %s", svc.name)
            await svc.start()
            self._started.append(svc)

    async def stop(self) -> None:
        while self._started:
            svc = self._started.pop()
            log.info("stopping %s", svc.name)
            try:
                await svc.stop()
            except Exception:  # keep stopping the rest
                log.exception("error while stopping %s", svc.name)

    def request_shutdown(self) -> None:
        self.shutdown_requested.set()

    # ------------------------------------------------------------------ queries
    def identity_info(self) -> dict[str, Any]:
        """Public parts only: from the unlocked identity, else from the keystore's clear header."""
        from silnode.identity import IdentityNotFound, Keystore

        if self.identity is not None:
            return {**self.identity.public_info(), "unlocked": True}
        ks = Keystore.for_config(self.config)
        if not ks.exists():
            raise IdentityNotFound("this node has no identity yet", hint="run `silnode identity new`")
        return {**ks.read_public_info(), "unlocked": False}

    def health(self) -> dict[str, Any]:
        return {"ok": True, "version": __version__, "pid": os.getpid()}

    async def status(self) -> dict[str, Any]:
        names = await asyncio.to_thread(self.store.names)
        size = await asyncio.to_thread(self.store.total_size)
        free = await asyncio.to_thread(self.store.free_bytes)
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started_at, 3),
            "home": str(self.config.home),
            "bind": self.config.daemon.bind_address,
            "services": [s.name for s in self._started],
            "store": {"path": str(self.store.base_dir), "models": len(names), "bytes": size, "free_bytes": free},
            "tasks": {"running": sum(1 for t in self.tasks._tasks.values() if t.state == "running")},
            "torrents": self.torrents.summary(),
            "serving": self.serve.summary(),
        }

    async def hardware(self) -> dict[str, Any]:
        """What the probes see (NVML, AMD sysfs, Apple, RAM; ggml only in a child process), with the
        config caps applied. Probing runs off the loop: NVML's first init takes ~20 ms."""
        from silnode.fit.hardware import probe
        from silnode.fit.inspect import hardware_overrides

        report = await asyncio.to_thread(probe, hardware_overrides(self.config))
        return report.to_dict()

    async def inspect(self, model: str, *, n_ctx: int | None = None, flash_attn: bool = False) -> dict[str, Any]:
        from silnode.fit.inspect import inspect_model

        return await asyncio.to_thread(inspect_model, self.config, model, n_ctx=n_ctx, flash_attn=flash_attn)

    async def recommend(self, *, n_ctx: int | None = None, catalog: bool = True) -> dict[str, Any]:
        """What fits this machine's best device, best first (store and seed catalog), and why the rest don't."""
        from silnode.fit.recommend import rank

        return await asyncio.to_thread(rank, self.config, n_ctx=n_ctx, catalog=catalog)

    async def get(self, target: str | None, *, auto: bool = False, force: bool = False, n_ctx: int | None = None,
                  peers: tuple[str, ...] = (), name: str | None = None, license: str | None = None,
                  web_seeds: tuple[str, ...] = ()) -> dict[str, Any]:
        """`silnode get`: one of {"transfer"} (a magnet or infohash over BitTorrent), {"task"} (a seed-catalog
        model from its origin) or {"model", "on_disk": True} (`auto` found the best fit already here).
        A model that won't fit is refused unless `force`."""
        from silnode.fit.recommend import pick_auto
        from silnode.fit.seed import load_seed_catalog

        catalog = {m.name: m for m in load_seed_catalog()}
        if auto or (target in catalog):
            ranking = await self.recommend(n_ctx=n_ctx)
            if auto:
                pick = pick_auto(ranking)
            else:
                pick = next((c for c in ranking["fits"] + ranking["others"] if c["name"] == target), None)
                if pick is None or pick["on_disk"]:  # None: here under another name (same sha256)
                    raise Conflict(f"{target} is already in the store", hint="`silnode list`")
                if not pick["fits"] and not force:
                    raise DoesNotFit(f"{target} won't fit: {pick['reason']}")
            if pick["on_disk"]:
                return {"model": pick["name"], "on_disk": True, "reason": pick["reason"]}
            entry = catalog[pick["name"]]
            task = self.share_hf(f"hf://{entry.repo}/{entry.file}", entry.name, license=entry.license,
                                 expected_sha256=entry.sha256)
            return {"task": task.to_json(), "model": entry.name, "reason": pick["reason"]}
        if not target:
            raise BadRequest("give a magnet link, an infohash or a catalog model name, or --auto")
        t = await self.torrents.download(target, peers=peers, name=name, license=license, web_seeds=web_seeds,
                                         force=force)
        return {"transfer": self.torrents.describe(t.id)}

    async def models(self) -> list[dict[str, Any]]:
        return [summary(m) for m in await asyncio.to_thread(self.store.list)]

    async def model(self, name: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.store.read_manifest, name)

    async def remove(self, name: str) -> dict[str, Any]:
        self.store.read_manifest(name)  # 404 before touching the swarm
        self.serve.ensure_not_served(name)
        await self.torrents.unshare(name)
        return await asyncio.to_thread(self.store.remove, name)

    async def gc(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.store.gc)

    # ------------------------------------------------------------------ long operations
    def import_path(
        self,
        path: str,
        name: str,
        *,
        license: str | None = None,
        link: bool = True,
        file_name: str | None = None,
    ) -> Task:
        from silnode.names import validate_name

        validate_name(name)
        sources = self.store.resolve_sources(Path(path), file_name=file_name)
        return self.tasks.submit(
            "import",
            f"import {path} as {name}",
            lambda progress: self.store.import_files(
                sources, name, license=license, source={"type": "local", "path": str(sources[0].path)},
                link=link, progress=progress,
            ),
        )

    def import_found(self, source: str, pattern: str | None) -> Task:
        """Import models already on disk from the HF cache or Ollama's store."""
        from silnode import sources as found_sources

        found = found_sources.find(source, pattern)
        if not found:
            raise NotFound(
                f"no GGUF models found in the {source} store" + (f" matching {pattern!r}" if pattern else ""),
                hint="check the pattern; `silnode import --from hf` lists everything when no pattern is given",
            )

        def run(progress: Callable[[int, int], None]) -> dict[str, Any]:
            imported, skipped = [], []
            for item in found:
                if self.store.exists(item.suggested_name):
                    skipped.append({"name": item.suggested_name, "reason": "already in the store"})
                    continue
                srcs = [ImportSource(p, n) for p, n in zip(item.files, item.display_names)]
                expected = [item.origin.get("expected_sha256")] * len(srcs) if len(srcs) == 1 else None
                try:
                    m = self.store.import_files(
                        srcs, item.suggested_name, license=item.license, source=item.origin,
                        expected_sha256=expected, progress=progress,
                    )
                    imported.append(summary(m))
                except SilnodeError as exc:
                    skipped.append({"name": item.suggested_name, "reason": str(exc)})
            return {"imported": imported, "skipped": skipped}

        return self.tasks.submit("import", f"import from {source}", run)

    def share(self, name: str, *, path: str | None = None, license: str | None = None,
              web_seeds: tuple[str, ...] = (), v1_compat: bool = False) -> Task:
        """Import ``path`` as ``name`` when given, then make the torrent and seed it (a task: hashing takes time)."""
        from silnode.names import validate_name

        validate_name(name)
        sources = self.store.resolve_sources(Path(path)) if path else None
        if not sources:
            self.store.read_manifest(name)  # 404 now
        loop = asyncio.get_running_loop()

        def run(progress: Callable[[int, int], None]) -> dict[str, Any]:
            if sources:
                self.store.import_files(sources, name, license=license,
                                        source={"type": "local", "path": str(sources[0].path)}, progress=progress)
            fut = asyncio.run_coroutine_threadsafe(
                self.torrents.share(name, web_seeds=web_seeds, v1_compat=v1_compat, progress=progress), loop)
            return fut.result()

        return self.tasks.submit("share", f"share {name}", run)

    def share_hf(self, ref: str, name: str | None = None, *, license: str | None = None,
                 v1_compat: bool = False, expected_sha256: str | None = None) -> Task:
        """`share hf://org/repo/file.gguf`: download through huggingface_hub (resumable, into the HF cache),
        hardlink the blob into the store, and seed it with the Hub's resolve URL as a web seed."""
        from silnode import sources
        from silnode.names import validate_name

        sources.parse_hf_ref(ref)  # 400 now
        if name:
            validate_name(name)
        loop = asyncio.get_running_loop()

        def run(progress: Callable[[int, int], None]) -> dict[str, Any]:
            found = sources.fetch_hf(ref)
            target = name or found.suggested_name
            if not self.store.exists(target):
                srcs = [ImportSource(p, n) for p, n in zip(found.files, found.display_names)]
                expected = found.origin.get("expected_sha256s") or [found.origin.get("expected_sha256")] * len(srcs)
                if expected_sha256 and len(srcs) == 1:  # what the seed catalog says the file must be
                    expected = [expected_sha256]
                self.store.import_files(srcs, target, license=license or found.license, source=found.origin,
                                        expected_sha256=expected if len(expected) == len(srcs) else None,
                                        progress=progress)
            # a single file's resolve URL is a BEP 19 web seed (a split set would need one URL per file)
            seeds = (found.origin["url"],) if len(found.files) == 1 and found.origin.get("url") else ()
            fut = asyncio.run_coroutine_threadsafe(
                self.torrents.share(target, web_seeds=seeds, v1_compat=v1_compat, progress=progress), loop)
            return fut.result()

        return self.tasks.submit("share", f"share {ref}", run)

    def import_starter(self) -> Task:
        """First run: the Gemma-3-270M package (a pip package; its sha256 is checked) into the store through
        the normal import path, marked as a base model that is not advertised publicly."""
        from silnode.serve import starter

        pkg = starter.package()  # 404 with the pip command when it is not installed
        if self.store.exists(starter.NAME):
            raise Conflict(f"{starter.NAME} is already in the store")

        def run(progress: Callable[[int, int], None]) -> dict[str, Any]:
            return starter.import_into(self.store, pkg, progress)

        return self.tasks.submit("import", f"import the starter model {starter.NAME}", run)

    def verify(self, name: str | None) -> Task:
        """Re-hash against the manifests. A damaged model stops being seeded (its bad file is quarantined);
        a healthy seeded model also gets a libtorrent recheck, so the swarm's view matches the disk."""
        names = [name] if name else self.store.names()
        if name:
            self.store.read_manifest(name)  # 404 now rather than inside the task
        loop = asyncio.get_running_loop()

        def run(progress: Callable[[int, int], None]) -> dict[str, Any]:
            reports = []
            for n in names:
                try:
                    report = self.store.verify(n, progress)
                except SilnodeError as exc:
                    report = {"name": n, "ok": False, "files": [], "error": str(exc)}
                seeded = self.torrents.is_seeding(n)
                if seeded and not report["ok"]:
                    asyncio.run_coroutine_threadsafe(self.torrents.unshare(n), loop).result()
                    report["seeding"] = "stopped: damaged"
                elif seeded:
                    report["torrent"] = asyncio.run_coroutine_threadsafe(self.torrents.recheck(n), loop).result()
                reports.append(report)
            return {"ok": all(r["ok"] for r in reports), "models": reports}

        return self.tasks.submit("verify", f"verify {name or 'all models'}", run)
