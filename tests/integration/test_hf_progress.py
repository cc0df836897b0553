"""`share hf://` downloads report progress and can be cancelled, through huggingface_hub's real download code
against a local fake Hub."""

from __future__ import annotations

import hashlib

import huggingface_hub.constants as hfc
import pytest
from fakehub import fake_gguf

from silnode import sources
from silnode.errors import TaskCancelled

SIZE = 1 << 20
CHUNK = 64 << 10


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(hfc, "DOWNLOAD_CHUNK_SIZE", CHUNK)  # many progress steps from a 1 MiB file


def test_progress_counts_every_byte(online_hub, small_chunks, tmp_path):
    data = fake_gguf("progress", SIZE)
    online_hub.publish("org/repo-GGUF", "c" * 40, {"m-Q4_K_M.gguf": data})
    seen: list[tuple[int, int]] = []
    found = sources.fetch_hf(
        "hf://org/repo-GGUF/m-Q4_K_M.gguf", cache_dir=tmp_path / "cache", progress=lambda d, t: seen.append((d, t))
    )
    assert found.files[0].read_bytes() == data
    assert seen[-1] == (len(data), len(data)) and len(seen) >= SIZE // CHUNK
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_a_raising_progress_cancels_the_download(online_hub, small_chunks, tmp_path):
    data = fake_gguf("cancel", SIZE)
    online_hub.publish("org/repo-GGUF", "d" * 40, {"m-Q4_K_M.gguf": data})
    cache = tmp_path / "cache"
    calls: list[int] = []

    def stop_at_a_quarter(done: int, total: int) -> None:
        calls.append(done)
        if done >= SIZE // 4:
            raise TaskCancelled("cancelled, the daemon is stopping")

    with pytest.raises(TaskCancelled):
        sources.fetch_hf("hf://org/repo-GGUF/m-Q4_K_M.gguf", cache_dir=cache, progress=stop_at_a_quarter)
    assert max(calls) < SIZE  # it stopped early
    assert sources.find_hf(None, cache) == []  # nothing half-done is offered for import
    found = sources.fetch_hf("hf://org/repo-GGUF/m-Q4_K_M.gguf", cache_dir=cache)  # the next try completes
    assert hashlib.sha256(found.files[0].read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
