"""The earnings ledger: every invoice and ecash payment with its job, amount, model, tokens and state changes,
in SQLite under SILNODE_HOME (``payments.db``).

One owner thread holds the connection (sqlite3 objects belong to their thread); async callers hop onto it
with :meth:`Ledger.call`. WAL and synchronous=FULL: a payment committed before a crash is there after it.
Ecash proofs the node holds live here too, AES-GCM encrypted with a key derived from the identity at unlock,
written in the same transaction as the payment's state (a paid job and its money cannot come apart)."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from silnode.errors import BadRequest, NotFound, PaymentsUnavailable
from silnode.payments.cashu.token import Proof

T = TypeVar("T")

# free: ran without payment (require_payment off or no price); unpaid: waiting for its invoice; paid: money received; expired: never paid in time; refunded: paid, then given
# back; failed: the backend gave up (an unreadable invoice state)
STATES = ("free", "unpaid", "paid", "expired", "refunded", "failed")

SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    kind TEXT NOT NULL,              -- invoice | cashu
    backend TEXT NOT NULL,
    amount_msats INTEGER NOT NULL,
    state TEXT NOT NULL,
    model TEXT,
    max_tokens INTEGER,
    tokens INTEGER,                  -- tokens the job really generated (set when it finishes)
    invoice_id TEXT,                 -- mint quote id / payment hash
    bolt11 TEXT,
    mint TEXT,
    created_at REAL NOT NULL,
    expires_at REAL,
    paid_at REAL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS payments_job ON payments(job_id);
CREATE INDEX IF NOT EXISTS payments_state ON payments(state);
CREATE TABLE IF NOT EXISTS events (
    payment_id TEXT NOT NULL,
    at REAL NOT NULL,
    state TEXT NOT NULL,
    note TEXT
);
CREATE TABLE IF NOT EXISTS balances (
    id TEXT PRIMARY KEY,             -- shown to its owner and in logs; never the key
    key_sha256 TEXT NOT NULL UNIQUE, -- the API key itself is never stored
    mint TEXT NOT NULL,              -- where its ecash was deposited (and a withdrawal is cut)
    balance_msats INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS balance_events (
    balance_id TEXT NOT NULL,
    at REAL NOT NULL,
    delta_msats INTEGER NOT NULL,    -- + deposit / credit back, - a request's price / withdrawal
    payment_id TEXT,
    note TEXT
);
CREATE TABLE IF NOT EXISTS proofs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_id TEXT,
    mint TEXT NOT NULL,
    amount INTEGER NOT NULL,
    blob BLOB NOT NULL,              -- AES-GCM(nonce || ciphertext) of the proof's JSON
    spent INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
"""

PUBLIC_FIELDS = (
    "id", "job_id", "kind", "backend", "amount_msats", "state", "model", "max_tokens", "tokens", "invoice_id",
    "bolt11", "mint", "created_at", "expires_at", "paid_at", "updated_at",
)  # fmt: skip


@dataclass(frozen=True)
class Payment:
    id: str
    job_id: str
    kind: str
    backend: str
    amount_msats: int
    state: str
    model: str | None
    max_tokens: int | None
    tokens: int | None
    invoice_id: str | None
    bolt11: str | None
    mint: str | None
    created_at: float
    expires_at: float | None
    paid_at: float | None
    updated_at: float

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in PUBLIC_FIELDS}


class ProofBox:
    """Encrypts proofs at rest. The key comes from the unlocked identity (see :func:`proof_key`)."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, proof: Proof) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, json.dumps(proof.to_json()).encode(), b"silnode-proof")

    def open(self, blob: bytes) -> Proof:
        return Proof.from_json(json.loads(self._aead.decrypt(blob[:12], blob[12:], b"silnode-proof")))

    def __repr__(self) -> str:
        return "ProofBox(<key hidden>)"


def proof_key(nostr_secret: bytes) -> bytes:
    """The ledger's proof key, derived once at unlock from the node's secret (HKDF-SHA256, own label)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"silnode ledger proofs v1").derive(nostr_secret)


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """``7d``, ``12h``, ``30m``, ``90s`` (or plain seconds) ago as a timestamp; None for no limit."""
    if text is None or text == "":
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    body, unit = (text[:-1], text[-1]) if text[-1:].lower() in units else (text, "s")
    if not body.isdigit():
        raise BadRequest(f"since must look like 7d, 12h, 30m or 90s, got {text!r}")
    return (time.time() if now is None else now) - int(body) * units[unit.lower()]


class Ledger:
    def __init__(self, path: str | os.PathLike[str], box: ProofBox | None = None) -> None:
        self.path = Path(path)
        self._box = box
        self._pool: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._owner: int | None = None

    @property
    def holds_ecash(self) -> bool:
        """Whether proofs can be stored (encrypted with the identity's key): check before swapping any token."""
        return self._box is not None

    def require_ecash(self) -> None:
        if self._box is None:
            raise PaymentsUnavailable(
                "ecash needs the node's identity unlocked (the proofs are stored encrypted with its key)",
                hint="start the daemon with SILNODE_PASSWORD set, after `silnode identity new`",
            )

    # ---- lifecycle (the owner thread)
    def open(self) -> Ledger:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")
        self._pool.submit(self._open).result()
        return self

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._owner = threading.get_ident()
        os.chmod(self.path, 0o600)  # amounts and invoices are the operator's business

    def close(self) -> None:
        if self._pool is None:
            return
        self._pool.submit(self._close).result()
        self._pool.shutdown(wait=True)
        self._pool = None

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the owner thread and wait (sync callers: the CLI reading offline)."""
        if self._pool is None:
            raise PaymentsUnavailable("the earnings ledger is not open")
        return self._pool.submit(fn, *args, **kwargs).result()

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._pool is None:
            raise PaymentsUnavailable("the earnings ledger is not open")
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None and threading.get_ident() == self._owner, "ledger used off its owner thread"
        return self._db

    # ---- writes (owner thread only; each one transaction)
    def create(
        self,
        *,
        job_id: str,
        kind: str,
        backend: str,
        amount_msats: int,
        state: str = "unpaid",
        model: str | None = None,
        max_tokens: int | None = None,
        invoice_id: str | None = None,
        bolt11: str | None = None,
        mint: str | None = None,
        expires_at: float | None = None,
        proofs: list[Proof] | None = None,
        note: str | None = None,
    ) -> Payment:
        if state not in STATES:
            raise ValueError(state)
        pid, now = uuid.uuid4().hex, time.time()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(
                "INSERT INTO payments VALUES (?,?,?,?,?,?,?,?,NULL,?,?,?,?,?,?,?)",
                (pid, job_id, kind, backend, amount_msats, state, model, max_tokens, invoice_id, bolt11, mint, now,
                 expires_at, now if state == "paid" else None, now),
            )  # fmt: skip
            self.db.execute("INSERT INTO events VALUES (?,?,?,?)", (pid, now, state, note))
            self._store_proofs(pid, mint, proofs)
        return self._get(pid)

    def set_state(self, pid: str, state: str, *, proofs: list[Proof] | None = None, note: str | None = None) -> Payment:
        """Move a payment to ``state`` (and keep the proofs it brought) in one transaction."""
        if state not in STATES:
            raise ValueError(state)
        now = time.time()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            row = self.db.execute("SELECT mint FROM payments WHERE id=?", (pid,)).fetchone()
            if row is None:
                raise NotFound(f"no payment {pid}")
            self.db.execute(
                "UPDATE payments SET state=?, updated_at=?, paid_at=CASE WHEN ?='paid' THEN ? ELSE paid_at END "
                "WHERE id=?",
                (state, now, state, now, pid),
            )
            self.db.execute("INSERT INTO events VALUES (?,?,?,?)", (pid, now, state, note))
            self._store_proofs(pid, row["mint"], proofs)
        return self._get(pid)

    def note(self, pid: str, note: str) -> None:
        """An event on a payment that does not change its state (e.g. a refund owed that only a person can make)."""
        with self.db:
            state = self._get(pid).state
            self.db.execute("INSERT INTO events VALUES (?,?,?,?)", (pid, time.time(), state, note[:300]))

    def set_work(self, job_id: str, *, tokens: int | None, model: str | None) -> None:
        """What the paid job really produced (tokens, the model that ran it)."""
        with self.db:
            self.db.execute(
                "UPDATE payments SET tokens=?, model=COALESCE(?, model), updated_at=? WHERE job_id=?",
                (tokens, model, time.time(), job_id),
            )

    def _store_proofs(self, pid: str | None, mint: str | None, proofs: list[Proof] | None) -> None:
        if not proofs:
            return
        if self._box is None:
            raise PaymentsUnavailable(
                "ecash needs the node's identity unlocked (the proofs are stored encrypted with its key)",
                hint="start the daemon with SILNODE_PASSWORD set, after `silnode identity new`",
            )
        now = time.time()
        self.db.executemany(
            "INSERT INTO proofs (payment_id, mint, amount, blob, created_at) VALUES (?,?,?,?,?)",
            [(pid, mint or "", p.amount, self._box.seal(p), now) for p in proofs],
        )

    def refund(self, pid: str, spent_ids: list[int], rest: list[Proof]) -> Payment:
        """The proofs ``spent_ids`` went into a refund token; ``rest`` (their change) stays held."""
        now = time.time()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("UPDATE proofs SET spent=1 WHERE id=?", [(i,) for i in spent_ids])
            mint = self.db.execute("SELECT mint FROM payments WHERE id=?", (pid,)).fetchone()["mint"]
            self._store_proofs(pid, mint, rest)
            self.db.execute("UPDATE payments SET state='refunded', updated_at=? WHERE id=?", (now, pid))
            self.db.execute("INSERT INTO events VALUES (?,?,?,?)", (pid, now, "refunded", "refund token made"))
        return self._get(pid)

    # ---- balances (an API key's prepaid ecash; each change one transaction with its proofs and its event)
    def deposit(self, key_sha256: str, mint: str, proofs: list[Proof], *, new_id: str | None = None) -> dict[str, Any]:
        """Add ``proofs`` (swapped, now the node's) to the balance of ``key_sha256``, creating it as ``new_id``."""
        msats, now = sum(p.amount for p in proofs) * 1000, time.time()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            row = self.db.execute("SELECT id FROM balances WHERE key_sha256=?", (key_sha256,)).fetchone()
            if row is None:
                if new_id is None:
                    raise NotFound("no such balance")
                self.db.execute("INSERT INTO balances VALUES (?,?,?,0,?,?)", (new_id, key_sha256, mint, now, now))
                bid = new_id
            else:
                bid = row["id"]
            self.db.execute(
                "UPDATE balances SET balance_msats=balance_msats+?, mint=?, updated_at=? WHERE id=?",
                (msats, mint, now, bid),
            )
            self.db.execute("INSERT INTO balance_events VALUES (?,?,?,NULL,?)", (bid, now, msats, "deposit"))
            self._store_proofs(None, mint, proofs)
        return self.balance(key_sha256) or {}

    def balance(self, key_sha256: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT id, mint, balance_msats, created_at, updated_at FROM balances WHERE key_sha256=?", (key_sha256,)
        ).fetchone()
        return dict(row) if row is not None else None

    def spend(self, key_sha256: str, msats: int, *, job_id: str, model: str | None, max_tokens: int) -> Payment:
        """Charge a request's price to a balance: a ``paid`` payment, or InsufficientBalance (nothing changes)."""
        from silnode.errors import InsufficientBalance

        now, pid = time.time(), uuid.uuid4().hex
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            row = self.db.execute(
                "SELECT id, mint, balance_msats FROM balances WHERE key_sha256=?", (key_sha256,)
            ).fetchone()
            if row is None:
                raise NotFound("no such balance")
            if row["balance_msats"] < msats:
                raise InsufficientBalance(
                    f"this request costs {msats} msats; the key's balance is {row['balance_msats']} msats",
                    price_msats=msats,
                    balance_msats=row["balance_msats"],
                )
            self.db.execute(
                "UPDATE balances SET balance_msats=balance_msats-?, updated_at=? WHERE id=?", (msats, now, row["id"])
            )
            self.db.execute(
                "INSERT INTO payments VALUES (?,?,?,?,?,?,?,?,NULL,NULL,NULL,?,?,NULL,?,?)",
                (pid, job_id, "balance", "balance", msats, "paid", model, max_tokens, row["mint"], now, now, now),
            )
            self.db.execute("INSERT INTO events VALUES (?,?,?,?)", (pid, now, "paid", f"from balance {row['id']}"))
            self.db.execute("INSERT INTO balance_events VALUES (?,?,?,?,?)", (row["id"], now, -msats, pid, "request"))
        return self._get(pid)

    def credit_back(self, key_sha256: str, pid: str) -> None:
        """A request charged to a balance failed: its price goes back to the balance, the payment is refunded."""
        now = time.time()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            p = self._get(pid)
            if p.state != "paid" or p.kind != "balance":
                return
            bid = self.db.execute("SELECT id FROM balances WHERE key_sha256=?", (key_sha256,)).fetchone()["id"]
            self.db.execute(
                "UPDATE balances SET balance_msats=balance_msats+?, updated_at=? WHERE id=?", (p.amount_msats, now, bid)
            )
            self.db.execute("UPDATE payments SET state='refunded', updated_at=? WHERE id=?", (now, pid))
            self.db.execute("INSERT INTO events VALUES (?,?,?,?)", (pid, now, "refunded", "credited back"))
            self.db.execute("INSERT INTO balance_events VALUES (?,?,?,?,?)", (bid, now, p.amount_msats, pid, "failed"))

    def take_whole_sats(self, key_sha256: str) -> int:
        """Empty a balance (its whole sats) for a withdrawal, atomically: returns the msats taken."""
        now = time.time()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            row = self.db.execute("SELECT id, balance_msats FROM balances WHERE key_sha256=?", (key_sha256,)).fetchone()
            if row is None:
                raise NotFound("no such balance")
            msats = row["balance_msats"] // 1000 * 1000
            if msats:
                self.db.execute(
                    "UPDATE balances SET balance_msats=balance_msats-?, updated_at=? WHERE id=?",
                    (msats, now, row["id"]),
                )
                self.db.execute(
                    "INSERT INTO balance_events VALUES (?,?,?,NULL,?)", (row["id"], now, -msats, "withdrawn")
                )
        return msats

    def put_back(self, key_sha256: str, msats: int, note: str) -> None:
        """A withdrawal that could not be cut (the mint was down): the amount goes back to the balance."""
        now = time.time()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            bid = self.db.execute("SELECT id FROM balances WHERE key_sha256=?", (key_sha256,)).fetchone()["id"]
            self.db.execute(
                "UPDATE balances SET balance_msats=balance_msats+?, updated_at=? WHERE id=?", (msats, now, bid)
            )
            self.db.execute("INSERT INTO balance_events VALUES (?,?,?,NULL,?)", (bid, now, msats, note))

    def spend_proofs(self, mint: str, spent_ids: list[int], rest: list[Proof]) -> None:
        """Proofs ``spent_ids`` went into a token handed out; ``rest`` (their change) stays held."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("UPDATE proofs SET spent=1 WHERE id=?", [(i,) for i in spent_ids])
            self._store_proofs(None, mint, rest)

    def balance_events(self, balance_id: str) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in self.db.execute(
                "SELECT at, delta_msats, payment_id, note FROM balance_events WHERE balance_id=? ORDER BY rowid",
                (balance_id,),
            )
        ]

    # ---- reads
    def _get(self, pid: str) -> Payment:
        row = self.db.execute(f"SELECT {', '.join(PUBLIC_FIELDS)} FROM payments WHERE id=?", (pid,)).fetchone()
        if row is None:
            raise NotFound(f"no payment {pid}")
        return Payment(**dict(row))

    def get(self, pid: str) -> Payment:
        return self._get(pid)

    def by_job(self, job_id: str) -> list[Payment]:
        rows = self.db.execute(
            f"SELECT {', '.join(PUBLIC_FIELDS)} FROM payments WHERE job_id=? ORDER BY created_at", (job_id,)
        ).fetchall()
        return [Payment(**dict(r)) for r in rows]

    def pending(self) -> list[Payment]:
        """Unpaid invoices: what a restarted node checks again (a payment may have come while it was down)."""
        rows = self.db.execute(
            f"SELECT {', '.join(PUBLIC_FIELDS)} FROM payments WHERE state='unpaid' ORDER BY created_at"
        ).fetchall()
        return [Payment(**dict(r)) for r in rows]

    def events(self, pid: str) -> list[tuple[str, str | None]]:
        return [
            (r["state"], r["note"])
            for r in self.db.execute("SELECT * FROM events WHERE payment_id=? ORDER BY rowid", (pid,))
        ]

    def held_proofs(self, mint: str | None = None) -> list[tuple[int, Proof]]:
        if self._box is None:
            raise PaymentsUnavailable("the ledger's proofs need the node's identity unlocked")
        q = "SELECT id, blob FROM proofs WHERE spent=0" + (" AND mint=?" if mint else "")
        return [(r["id"], self._box.open(r["blob"])) for r in self.db.execute(q, (mint,) if mint else ())]

    def held_msats(self) -> int:
        return int(self.db.execute("SELECT COALESCE(SUM(amount),0) FROM proofs WHERE spent=0").fetchone()[0]) * 1000

    @staticmethod
    def empty_summary(since: float | None = None) -> dict[str, Any]:
        return {"since": since, "totals": {s: {"count": 0, "msats": 0} for s in STATES}, "earned_msats": 0,
                "per_model": [], "per_day": []}  # fmt: skip

    def summary(self, since: float | None = None) -> dict[str, Any]:
        """Totals by state, per model and per day (UTC, by when paid or else created)."""
        where, args = ("WHERE created_at >= ?", (since,)) if since is not None else ("", ())
        rows = self.db.execute(
            f"SELECT state, COALESCE(model, '') AS model, "
            f"date(COALESCE(paid_at, created_at), 'unixepoch') AS day, COUNT(*) AS n, "
            f"SUM(amount_msats) AS msats, SUM(COALESCE(tokens, 0)) AS tokens FROM payments {where} "
            f"GROUP BY state, model, day ORDER BY day, model",
            args,
        ).fetchall()
        totals = {s: {"count": 0, "msats": 0} for s in STATES}
        per_model: dict[str, dict[str, Any]] = {}
        per_day: dict[str, dict[str, Any]] = {}
        for r in rows:
            totals[r["state"]]["count"] += r["n"]
            totals[r["state"]]["msats"] += r["msats"]
            for key, table in ((r["model"] or "(none)", per_model), (r["day"], per_day)):
                entry = table.setdefault(
                    key, {"jobs": 0, "paid_msats": 0, "unpaid_msats": 0, "refunded_msats": 0, "tokens": 0}
                )
                entry["jobs"] += r["n"]
                if r["state"] in ("paid", "unpaid", "refunded"):
                    entry[f"{r['state']}_msats"] += r["msats"]
                if r["state"] == "paid":
                    entry["tokens"] += r["tokens"]
        return {
            "since": since,
            "totals": totals,
            "earned_msats": totals["paid"]["msats"],
            "per_model": [{"model": k, **v} for k, v in sorted(per_model.items())],
            "per_day": [{"day": k, **v} for k, v in sorted(per_day.items())],
        }
