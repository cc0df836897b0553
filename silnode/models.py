"""The models service: what a user does with models, across the store, distribution and serving.

    get         a magnet/infohash over BitTorrent, a seed-catalog model from its origin, or --auto's best fit
    import      a file, or what the Hugging Face cache / Ollama's store already hold
    share       make the torrent and seed it (importing a file or fetching hf:// first)
    verify      re-hash against the manifests; stop seeding what is damaged, recheck what is healthy
    remove, gc, inspect, recommend, the first-run starter model

Long operations run as tasks (:mod:`silnode.tasks`); each step delegates to the service that owns it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from silnode import sources
from silnode.config import Config
from silnode.distribution import DistributionService
from silnode.errors import (
    BadRequest,
    ChecksumMismatch,
    Conflict,
    DoesNotFit,
    HubChecksumMismatch,
    HubChecksumMissing,
    NotFound,
    RecheckTimeout,
    SilnodeError,
)
from silnode.fit.inspect import inspect_model
from silnode.fit.recommend import pick_auto, rank
from silnode.fit.seed import load_seed_catalog
from silnode.names import validate_name
from silnode.serving import starter
from silnode.serving.service import ServingService
from silnode.store import ImportSource, Store
from silnode.tasks import Task, Tasks


class ModelsService:
    name = "models"

    def __init__(
        self, config: Config, store: Store, tasks: Tasks, distribution: DistributionService, serving: ServingService
    ) -> None:
        self.config = config
        self.store = store
        self.tasks = tasks
        self.distribution = distribution
        self.serving = serving

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def inspect(self, model: str, *, n_ctx: int | None = None, flash_attn: bool = False) -> dict[str, Any]:

        return await asyncio.to_thread(inspect_model, self.config, model, n_ctx=n_ctx, flash_attn=flash_attn)

    async def recommend(
        self, *, n_ctx: int | None = None, catalog: bool = True, min_tps: float | None = None
    ) -> dict[str, Any]:
        """What fits this machine, best first (store and seed catalog), and why the rest don't. min_tps:
        overrides fit.min_tokens_per_s."""

        return await asyncio.to_thread(rank, self.config, n_ctx=n_ctx, catalog=catalog, min_tokens_per_s=min_tps)

    async def get(
        self,
        target: str | None,
        *,
        auto: bool = False,
        force: bool = False,
        n_ctx: int | None = None,
        peers: tuple[str, ...] = (),
        name: str | None = None,
        license: str | None = None,
        web_seeds: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """`silnode get`: one of {"transfer"} (a magnet or infohash over BitTorrent), {"task"} (a seed-catalog
        model from its origin) or {"model", "on_disk": True} (`auto` found the best fit already here).
        A model that won't fit is refused unless `force`."""
        if bool(target) == auto:
            raise BadRequest("give a target (magnet, infohash or catalog name) or auto, not both and not neither")
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
            task = self.share_hf(
                f"hf://{entry.repo}/{entry.file}",
                entry.name,
                license=entry.license,
                expected_sha256=entry.sha256,
                require_hub_sha256=entry.sha256 is None,  # then the Hub's own LFS sha256 must vouch for it
            )
            return {"task": task.to_json(), "model": entry.name, "reason": pick["reason"]}
        if not target:
            raise BadRequest("give a magnet link, an infohash or a catalog model name, or --auto")
        t = await self.distribution.download(
            target, peers=peers, name=name, license=license, web_seeds=web_seeds, force=force
        )
        return {"transfer": self.distribution.describe(t.id)}

    async def list(self) -> list[dict[str, Any]]:
        return [m.summary() for m in await asyncio.to_thread(self.store.list)]

    async def show(self, name: str) -> dict[str, Any]:
        return (await asyncio.to_thread(self.store.read_manifest, name)).to_json()

    async def remove(self, name: str) -> dict[str, Any]:
        self.store.read_manifest(name)  # 404 before touching the swarm
        self.serving.ensure_not_served(name)
        await self.distribution.unshare(name)
        return await asyncio.to_thread(self.store.remove, name)

    async def gc(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.store.gc)

    # ------------------------------------------------------------------ long operations
    def import_file(
        self, path: str, name: str, *, license: str | None = None, link: bool = True, file_name: str | None = None
    ) -> Task:
        validate_name(name)
        sources = self.store.resolve_sources(Path(path), file_name=file_name)
        return self.tasks.submit(
            "import",
            f"import {path} as {name}",
            lambda progress: self.store.import_files(
                sources,
                name,
                license=license,
                source={"type": "local", "path": str(sources[0].path)},
                link=link,
                progress=progress,
            ).to_json(),
        )

    def import_found(self, source: str, pattern: str | None) -> Task:
        """Import models already on disk from the HF cache or Ollama's store."""
        found = sources.find(source, pattern)
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
                        srcs,
                        item.suggested_name,
                        license=item.license,
                        source=item.origin,
                        expected_sha256=expected,
                        progress=progress,
                    )
                    imported.append(m.summary())
                except SilnodeError as exc:
                    skipped.append({"name": item.suggested_name, "reason": str(exc)})
            return {"imported": imported, "skipped": skipped}

        return self.tasks.submit("import", f"import from {source}", run)

    def share(
        self,
        name: str,
        *,
        path: str | None = None,
        license: str | None = None,
        web_seeds: tuple[str, ...] = (),
        v1_compat: bool = False,
    ) -> Task:
        """Import ``path`` as ``name`` when given, then make the torrent and seed it (a task: hashing takes time)."""
        validate_name(name)
        sources = self.store.resolve_sources(Path(path)) if path else None
        if not sources:
            self.store.read_manifest(name)  # 404 now
        loop = asyncio.get_running_loop()

        def run(progress: Callable[[int, int], None]) -> dict[str, Any]:
            if sources:
                self.store.import_files(
                    sources,
                    name,
                    license=license,
                    source={"type": "local", "path": str(sources[0].path)},
                    progress=progress,
                )
            fut = asyncio.run_coroutine_threadsafe(
                self.distribution.share(name, web_seeds=web_seeds, v1_compat=v1_compat, progress=progress), loop
            )
            return fut.result()

        return self.tasks.submit("share", f"share {name}", run)

    def share_hf(
        self,
        ref: str,
        name: str | None = None,
        *,
        license: str | None = None,
        v1_compat: bool = False,
        expected_sha256: str | None = None,
        require_hub_sha256: bool = False,
    ) -> Task:
        """`share hf://org/repo/file.gguf`: download through huggingface_hub (resumable, into the HF cache) at
        a pinned commit, hardlink the blob into the store, and seed it with the Hub's resolve URL (at that
        commit) as a web seed. The store's SHA-256 pass checks each file against ``expected_sha256`` (the
        seed catalog's) or else the Hub's own LFS sha256; ``require_hub_sha256``: refuse a file that has
        neither (a catalog entry without a sha256)."""
        sources.parse_hf_ref(ref)  # 400 now
        if name:
            validate_name(name)
        loop = asyncio.get_running_loop()

        def run(progress: Callable[[int, int], None]) -> dict[str, Any]:
            found = sources.fetch_hf(ref, progress=progress)  # bytes as they arrive; stops on cancel
            target = name or found.suggested_name
            if not self.store.exists(target):
                srcs = [ImportSource(p, n) for p, n in zip(found.files, found.display_names)]
                expected = found.origin.get("expected_sha256s") or [found.origin.get("expected_sha256")] * len(srcs)
                from_hub = True
                if expected_sha256 and len(srcs) == 1:  # what the seed catalog says the file must be
                    expected, from_hub = [expected_sha256], False
                if require_hub_sha256 and not all(expected):
                    raise HubChecksumMissing(
                        f"{ref}: the Hub gives no LFS sha256 for it at {found.origin['revision'][:12]} and the "
                        "seed catalog names none: it cannot be verified, so it is not imported",
                        hint="import the file yourself (`silnode import`) if you trust it",
                    )
                source = dict(found.origin, verified_against="seed catalog" if not from_hub else "hub lfs sha256")
                if not all(expected):
                    source.pop("verified_against")
                try:
                    self.store.import_files(
                        srcs,
                        target,
                        license=license or found.license,
                        source=source,
                        expected_sha256=expected if len(expected) == len(srcs) else None,
                        progress=progress,
                    )
                except ChecksumMismatch as exc:
                    if not from_hub:
                        raise
                    raise HubChecksumMismatch(
                        f"{ref} at {found.origin['revision'][:12]}: {exc} (the Hub's LFS sha256); nothing was "
                        "added to the store",
                        hint="the copy in the Hugging Face cache is damaged or not the Hub's file: delete it "
                        f"({found.files[0]}) and try again",
                    ) from exc
            # a single file's resolve URL is a BEP 19 web seed (a split set would need one URL per file)
            seeds = (found.origin["url"],) if len(found.files) == 1 and found.origin.get("url") else ()
            fut = asyncio.run_coroutine_threadsafe(
                self.distribution.share(target, web_seeds=seeds, v1_compat=v1_compat, progress=progress), loop
            )
            return fut.result()

        return self.tasks.submit("share", f"share {ref}", run)

    def import_starter(self) -> Task:
        """First run: the Gemma-3-270M package (a pip package; its sha256 is checked) into the store through
        the normal import path, marked as a base model that is not advertised publicly."""
        pkg = starter.package()  # 404 with the pip command when it is not installed
        if self.store.exists(starter.NAME):
            raise Conflict(f"{starter.NAME} is already in the store")

        def run(progress: Callable[[int, int], None]) -> dict[str, Any]:
            return starter.import_into(self.store, pkg, progress).to_json()

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
                seeded = self.distribution.is_seeding(n)
                if seeded and not report["ok"]:
                    asyncio.run_coroutine_threadsafe(self.distribution.unshare(n), loop).result()
                    report["seeding"] = "stopped: damaged"
                elif seeded:
                    try:
                        report["torrent"] = asyncio.run_coroutine_threadsafe(
                            self.distribution.recheck(n), loop
                        ).result()
                    except RecheckTimeout as exc:  # the files hashed right; libtorrent's own check goes on
                        report["torrent"] = {"name": n, "error": exc.message}
                reports.append(report)
            return {"ok": all(r["ok"] for r in reports), "models": reports}

        return self.tasks.submit("verify", f"verify {name or 'all models'}", run)
