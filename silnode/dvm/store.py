"""The durable job store: one SQLite file under SILNODE_HOME, written only from its own owner thread.

Every job the node accepts is recorded before any work starts, with each state transition, so a restarted
node can tell what it has seen (a duplicate delivered by a second relay, or replayed after a reconnect, is
dropped), what it accepted but never finished (run again: nothing was published for it), and what it finished
but may not have delivered (the signed result is stored *before* it is published, so it is sent again, never
generated twice).

    received -> processing -> success          (result stored, then delivered=1 once a relay took it)
                           -> error | cancelled | expired
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

OPEN_STATES = ("received", "processing")
FINAL_STATES = ("success", "error", "cancelled", "expired")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,            -- the request event id (hex)
    customer TEXT NOT NULL,         -- the customer's pubkey (hex)
    kind INTEGER NOT NULL,
    model TEXT,
    status TEXT NOT NULL,
    encryption TEXT,                -- nip44 | nip04 | NULL
    request TEXT NOT NULL,          -- the request event as JSON (needed to run it again after a restart)
    relay TEXT,                     -- the relay it first came from
    bid INTEGER,                    -- msats, as the customer offered (recorded only)
    amount INTEGER,                 -- msats charged (NULL: free)
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    error TEXT,
    result TEXT,                    -- the signed result event (JSON), stored before it is published
    delivered INTEGER NOT NULL DEFAULT 0,
    received_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_received ON jobs (received_at);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status);
CREATE TABLE IF NOT EXISTS transitions (
    job TEXT NOT NULL,
    at REAL NOT NULL,
    status TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS transitions_job ON transitions (job);
"""

COLUMNS = (
    "id",
    "customer",
    "kind",
    "model",
    "status",
    "encryption",
    "relay",
    "bid",
    "amount",
    "prompt_tokens",
    "completion_tokens",
    "error",
    "delivered",
    "received_at",
    "started_at",
    "finished_at",
    "updated_at",
)


class JobStore:
    """SQLite behind one owner thread; every method is a coroutine that runs there."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dvm-jobstore")
        self._db: sqlite3.Connection | None = None
        self._owner: threading.Thread | None = None

    # ------------------------------------------------------------------ plumbing
    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None)  # autocommit; explicit transactions below
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # a job accepted is a job on disk, even across a power cut
        db.executescript(SCHEMA)
        db.row_factory = sqlite3.Row
        self._db = db
        self._owner = threading.current_thread()

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def open(self) -> None:
        await self._run(self._open)

    async def close(self) -> None:
        try:
            await self._run(self._close)
        finally:
            self._pool.shutdown(wait=True)

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None and threading.current_thread() is self._owner, "job store used off its thread"
        return self._db

    # ------------------------------------------------------------------ writes
    def _accept(self, row: dict[str, Any]) -> bool:
        now = time.time()
        with self.db:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO jobs (id, customer, kind, model, status, encryption, request, relay, bid, "
                "received_at, updated_at) VALUES (?, ?, ?, ?, 'received', ?, ?, ?, ?, ?, ?)",
                (
                    row["id"],
                    row["customer"],
                    row["kind"],
                    row.get("model"),
                    row.get("encryption"),
                    row["request"],
                    row.get("relay"),
                    row.get("bid"),
                    now,
                    now,
                ),
            )
            if cur.rowcount:
                self.db.execute(
                    "INSERT INTO transitions VALUES (?, ?, 'received', ?)", (row["id"], now, row.get("relay"))
                )
        return bool(cur.rowcount)

    async def accept(self, **row: Any) -> bool:
        """Record a new job; False when its id was seen before (another relay, a replay, a restart)."""
        return await self._run(self._accept, row)

    def _transition(self, job_id: str, status: str, detail: str | None, fields: dict[str, Any]) -> None:
        now = time.time()
        sets = {"status": status, "updated_at": now, **fields}
        if status == "processing":
            sets.setdefault("started_at", now)
        if status in FINAL_STATES:
            sets.setdefault("finished_at", now)
        cols = ", ".join(f"{k} = ?" for k in sets)
        with self.db:
            self.db.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*sets.values(), job_id))
            self.db.execute("INSERT INTO transitions VALUES (?, ?, ?, ?)", (job_id, now, status, detail))

    async def transition(self, job_id: str, status: str, detail: str | None = None, **fields: Any) -> None:
        await self._run(self._transition, job_id, status, detail, fields)

    def _update(self, job_id: str, fields: dict[str, Any]) -> None:
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self.db:
            self.db.execute(
                f"UPDATE jobs SET {cols}, updated_at = ? WHERE id = ?", (*fields.values(), time.time(), job_id)
            )

    async def update(self, job_id: str, **fields: Any) -> None:
        await self._run(self._update, job_id, fields)

    # ------------------------------------------------------------------ reads
    def _unfinished(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, request, relay, status, result, delivered FROM jobs "
            "WHERE status IN ('received', 'processing') OR (status = 'success' AND delivered = 0) "
            "ORDER BY received_at"
        ).fetchall()
        return [dict(r) for r in rows]

    async def unfinished(self) -> list[dict[str, Any]]:
        """Jobs a restarted node still owes: accepted but not finished, or finished but not delivered."""
        return await self._run(self._unfinished)

    def _list(self, limit: int, status: str | None) -> list[dict[str, Any]]:
        where, args = ("WHERE status = ?", [status]) if status else ("", [])
        rows = self.db.execute(
            f"SELECT {', '.join(COLUMNS)} FROM jobs {where} ORDER BY received_at DESC LIMIT ?", (*args, limit)
        ).fetchall()
        return [dict(r) for r in rows]

    async def list(self, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
        return await self._run(self._list, limit, status)

    def _get(self, job_id: str) -> dict[str, Any] | None:
        row = self.db.execute(f"SELECT {', '.join(COLUMNS)}, result FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        out = dict(row)
        out["transitions"] = [
            {"at": t["at"], "status": t["status"], "detail": t["detail"]}
            for t in self.db.execute(
                "SELECT at, status, detail FROM transitions WHERE job = ? ORDER BY rowid", (job_id,)
            )
        ]
        result = out.pop("result")
        out["result_id"] = json.loads(result)["id"] if result else None
        return out

    async def get(self, job_id: str) -> dict[str, Any] | None:
        return await self._run(self._get, job_id)

    def _stats(self, since: float) -> dict[str, Any]:
        rows = self.db.execute(
            "SELECT COALESCE(model, '-') AS model, status, COUNT(*) AS n FROM jobs WHERE received_at >= ? "
            "GROUP BY model, status",
            (since,),
        ).fetchall()
        total = self.db.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
        per_model: dict[str, dict[str, int]] = {}
        for r in rows:
            per_model.setdefault(r["model"], {})[r["status"]] = r["n"]
        return {"by_status": {r["status"]: r["n"] for r in total}, "recent_by_model": per_model}

    async def stats(self, since: float) -> dict[str, Any]:
        return await self._run(self._stats, since)
