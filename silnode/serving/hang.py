"""TEST-ONLY hook: make a model worker hang, so the daemon's watchdogs (serve.load_timeout,
serve.stall_timeout) are tested against a real worker and real llama.cpp. Never set it in production.

SILNODE_TEST_HANG_FILE names a file. When the variable is set, the worker reads that file at two points and
deletes it when it acts on it, so the hang happens once and the restarted worker runs normally:

    load        hang before loading the model (the worker never says "ready")
    token N     hang after the N-th sampled token of the next generation request

Unset (always, outside tests) it costs one environment lookup per load and per request.
Stdlib only: the worker imports it before llama.cpp.
"""

from __future__ import annotations

import contextlib
import os
import time

ENV = "SILNODE_TEST_HANG_FILE"
HANG_SECONDS = 3600.0  # far past any test's watchdog; the daemon kills the worker long before


def take(point: str) -> int | None:
    """None unless the hang file asks for a hang at ``point``; then delete it and return its number (0 if none)."""
    path = os.environ.get(ENV)
    if not path:
        return None
    try:
        words = open(path).read().split()  # noqa: SIM115 - a tiny file, read once
    except OSError:
        return None
    if not words or words[0] != point:
        return None
    with contextlib.suppress(OSError):
        os.unlink(path)
    return int(words[1]) if len(words) > 1 and words[1].isdigit() else 0


def hang() -> None:
    time.sleep(HANG_SECONDS)
