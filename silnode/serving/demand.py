"""Demand: requests per minute for one served model, by channel (HTTP /v1 and NIP-90 jobs).

Counted when a request is submitted to the model (a 429'd one included: it was asked for), so the figure is
what buyers want, not what the queue let through. The rate is the count over a sliding window divided by the
window in minutes; the window is 5 minutes, so a burst shows at once and fades out over 5 minutes. Only the
last hour of arrival times is kept (bounded memory whatever the traffic).
"""

from __future__ import annotations

import time
from collections import deque

CHANNELS = ("http", "nip90")
WINDOW_S = 300.0
KEEP_S = 3600.0
MAX_EVENTS = 100_000  # per channel; far above any real rate over an hour on one node


def channel_of(client: str) -> str:
    """The serving queue's client key says where a request came from: the DVM submits as ``nostr:<pubkey>``."""
    return "nip90" if client.startswith("nostr:") else "http"


class Demand:
    def __init__(self) -> None:
        self._seen: dict[str, deque[float]] = {c: deque(maxlen=MAX_EVENTS) for c in CHANNELS}
        self.totals: dict[str, int] = dict.fromkeys(CHANNELS, 0)

    def record(self, channel: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        q = self._seen[channel]
        q.append(now)
        self.totals[channel] += 1
        while q and q[0] < now - KEEP_S:
            q.popleft()

    def per_minute(self, window_s: float = WINDOW_S, now: float | None = None) -> dict[str, float]:
        """{"http": r, "nip90": r, "total": r}: requests per minute over the last ``window_s`` seconds."""
        now = time.time() if now is None else now
        since = now - window_s
        out = {c: round(sum(1 for t in q if t >= since) * 60.0 / window_s, 2) for c, q in self._seen.items()}
        out["total"] = round(sum(out[c] for c in CHANNELS), 2)
        return out

    def to_dict(self, now: float | None = None) -> dict[str, object]:
        return {"per_minute": self.per_minute(now=now), "window_s": WINDOW_S, "totals": dict(self.totals)}
