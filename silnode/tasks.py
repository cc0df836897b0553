"""Long operations (import, verify, share) as tasks: run on worker threads, followed with a progress bar.

Blocking work (hashing, copying) runs on threads so the event loop keeps answering health checks while a
20 GB import hashes. A task's progress callback raises TaskCancelled once the daemon is stopping, or once the
user cancelled the task (POST /api/v1/tasks/{id}/cancel, `silnode tasks cancel ID`), so the job's own cleanup
(the store deleting its partial dir; huggingface_hub deleting its partial download) runs, and the task
ends in state "cancelled". The cancel lands at the job's next progress call: for a download, the next chunk.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from silnode.errors import Conflict, NotFound, SilnodeError, TaskCancelled

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass
class Task:
    """A long operation (import, verify) the CLI can follow with a progress bar."""

    id: str
    kind: str
    description: str
    state: str = "running"  # running | done | failed | cancelled
    done_bytes: int = 0
    total_bytes: int = 0
    result: Any = None
    error: dict[str, Any] | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    cancel_requested: bool = False  # the user asked to cancel it: its next progress call raises TaskCancelled

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
            "cancelling": self.cancel_requested and self.state == "running",
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

    def running(self) -> int:
        return sum(1 for t in self._tasks.values() if t.state == "running")

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
            if task.cancel_requested:
                raise TaskCancelled(f"{task.description}: cancelled by the user")
            task.done_bytes, task.total_bytes = done, total

        async def run() -> None:
            try:
                task.result = await asyncio.to_thread(fn, progress)
                task.state = "done"
            except TaskCancelled as exc:
                log.info("task %s: %s", task.id, exc.message)
                task.state, task.error = "cancelled", exc.to_json()
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

    def cancel(self, task_id: str) -> Task:
        """Ask a running task to stop; it ends (state "cancelled") at its next progress call."""
        task = self.get(task_id)
        if task.state != "running":
            raise Conflict(f"task {task_id} is {task.state}: nothing to cancel")
        task.cancel_requested = True
        return task

    async def wait(self, task: Task) -> Task:
        while task.state == "running":
            await asyncio.sleep(0.02)
        return task

    def _expire(self) -> None:
        cutoff = time.time() - self.KEEP_S
        for tid in [t.id for t in self._tasks.values() if t.finished and t.finished < cutoff]:
            del self._tasks[tid]
