"""NIP-89 handler information (kind 31990) for a kind-5050 provider, and its kind-5 deletion.

Standard tags, so ``{"kinds":[31990], "#k":["5050"]}`` finds it (the OpenAgents provider's custom tags are
missed by that query): a fixed ``d``, ``k`` = 5050, one ``t`` per served model, and a NIP-40 ``expiration``
about 2.5 h out (re-announced hourly, so a node that vanished drops off by itself). The content is a
profile-like JSON with the models (context, price), the encryption schemes and the publisher's catalog magnet.
"""

from __future__ import annotations

import json
import time
from typing import Any

from nostr_sdk import Event, EventBuilder, Keys, Kind, Tag

from silnode import __version__
from silnode.dvm.jobs import DELETION_KIND, JOB_KIND

HANDLER_KIND = 31990
D_TAG = "silnode-5050"
EXPIRATION_S = 9000  # 2.5 h: two missed hourly re-announcements and it expires
# when this process started: the provider's uptime in its announcements ("online_since"), which customers rank by
PROCESS_STARTED = int(time.time())


def content(
    *,
    name: str,
    about: str,
    models: list[dict[str, Any]],
    catalog_magnet: str | None = None,
    pricing: dict[str, Any] | None = None,
    now: int | None = None,
) -> dict[str, Any]:
    now = int(now or time.time())
    return {
        "name": name,
        "about": about,
        "software": f"silnode {__version__}",
        "models": models,  # [{"name", "context", "price_msats", "requests_per_minute"}]
        "encryption": ["nip44", "nip04"],
        "encryptionSupported": True,  # kinds/nip89.md spelling
        "supportsEncryption": True,  # nostrdvm's spelling
        "nip90Params": {
            "model": {"required": False, "values": [m["name"] for m in models]},
            "max_tokens": {"required": False},
            "temperature": {"required": False},
            "top_k": {"required": False},
            "top_p": {"required": False},
            "frequency_penalty": {"required": False},
        },
        "catalog": catalog_magnet,  # the publisher's BEP 46 catalog magnet (discovery), None until it has one
        # uptime as of this announcement, and since when: a reader adds the event's age to the former
        "online_since": PROCESS_STARTED,
        "uptime_s": max(0, now - PROCESS_STARTED),
        # {"msats_per_job", "msats_per_1k_tokens", "required"}; absent or required false: free
        "pricing": pricing or {"msats_per_job": 0, "msats_per_1k_tokens": 0, "required": False},
    }


def announcement(keys: Keys, body: dict[str, Any], *, now: int | None = None) -> Event:
    now = int(now or time.time())
    tags = [["d", D_TAG], ["k", str(JOB_KIND)], ["expiration", str(now + EXPIRATION_S)]]
    tags += [["t", m["name"]] for m in body["models"]]
    return EventBuilder(Kind(HANDLER_KIND), json.dumps(body)).tags([Tag.parse(t) for t in tags]).finalize(keys)


def deletion(keys: Keys, event_ids: list[str]) -> Event:
    """Kind 5 for the announcement: by its address (all versions) and by the ids this run published."""
    coord = f"{HANDLER_KIND}:{keys.public_key().to_hex()}:{D_TAG}"
    tags = [["a", coord], ["k", str(HANDLER_KIND)]] + [["e", i] for i in event_ids]
    return EventBuilder(Kind(DELETION_KIND), "provider stopped").tags([Tag.parse(t) for t in tags]).finalize(keys)


def parse_announcement(event: Event) -> dict[str, Any]:
    """A seen announcement as a row for `silnode providers` (content that is not JSON: shown empty)."""
    try:
        body = json.loads(event.content())
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    tags = [t.to_vec() for t in event.tags()]
    author = event.author()
    return {
        "pubkey": author.to_hex(),
        "npub": author.to_bech32(),
        "name": body.get("name"),
        "about": body.get("about"),
        "models": body.get("models") if isinstance(body.get("models"), list) else [],
        "topics": [t[1] for t in tags if len(t) > 1 and t[0] == "t"],
        "encryption": body.get("encryption") or (["nip04"] if body.get("supportsEncryption") else []),
        "catalog": body.get("catalog"),
        "online_since": _int(body.get("online_since")),
        "pricing": body.get("pricing") if isinstance(body.get("pricing"), dict) else {},
        "created_at": event.created_at().as_secs(),
        "id": event.id().to_hex(),
    }


def catalog_key(magnet: object) -> str | None:
    """The catalog public key (64 hex) of a BEP 46 magnet in an announcement (``magnet:?xs=urn:btpk:<hex>&s=…``),
    or None when there is none or it is malformed (content from strangers: checked, never trusted)."""
    if not isinstance(magnet, str) or not magnet.startswith("magnet:?"):
        return None
    for part in magnet[len("magnet:?") :].split("&"):
        name, _, value = part.partition("=")
        if name == "xs" and value.startswith("urn:btpk:"):
            key = value[len("urn:btpk:") :].lower()
            if len(key) == 64 and all(c in "0123456789abcdef" for c in key):
                return key
    return None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _num(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else 0.0


TYPICAL_TOKENS = 256  # the job size a price is compared at (`silnode ask`'s default max_tokens)


def job_price(row: dict[str, Any], tokens: int = TYPICAL_TOKENS) -> float:
    """msats a job of ``tokens`` costs at this provider (0: free). Content from strangers: bad values count 0."""
    p = row.get("pricing") or {}
    if not p.get("required"):
        return 0.0
    return _num(p.get("msats_per_job")) + _num(p.get("msats_per_1k_tokens")) * tokens / 1000


def uptime(row: dict[str, Any], now: float | None = None) -> int | None:
    """Seconds the provider has been up as of now, from its announced online_since (it re-announces hourly,
    so an announcement still on the relays means a provider still up). A start after the announcement itself
    is nonsense: None."""
    since, created = row.get("online_since"), row.get("created_at") or 0
    if since is None or since > created + 60:
        return None
    now = time.time() if now is None else now
    return max(0, int(now - since))


def demand(row: dict[str, Any], model: str | None = None) -> float:
    """Requests per minute the provider announced, for ``model`` or all its models."""
    rates = [
        _num(m.get("requests_per_minute"))
        for m in row.get("models") or []
        if isinstance(m, dict) and (model is None or m.get("name") == model)
    ]
    return round(sum(rates), 2)


def serves(row: dict[str, Any], model: str) -> bool:
    return model in row.get("topics", []) or any(
        isinstance(m, dict) and m.get("name") == model for m in row.get("models") or []
    )


# uptime counts in steps, so a cheaper provider wins among those up about as long (else seconds would decide)
UPTIME_STEPS = (600, 3600, 86400)


def rank(rows: list[dict[str, Any]], model: str | None = None, now: float | None = None) -> list[dict[str, Any]]:
    """Providers best first: those serving ``model`` first, then the longest uptime (in steps: under 10 min,
    under an hour, under a day, a day or more), then the lowest price of a typical job, then the longest uptime.
    Each row gains ``uptime_s``, ``price_msats`` and ``requests_per_minute``."""
    now = time.time() if now is None else now
    for r in rows:
        r["uptime_s"] = uptime(r, now)
        r["price_msats"] = job_price(r)
        r["requests_per_minute"] = demand(r, model)

    def key(r: dict[str, Any]) -> tuple[int, int, float, int]:
        up = r["uptime_s"] or 0
        step = sum(1 for s in UPTIME_STEPS if up >= s)
        return (0 if model is None or serves(r, model) else 1, -step, r["price_msats"], -up)

    return sorted(rows, key=key)


def demand_moved(announced: dict[str, float], now: dict[str, float]) -> bool:
    """Whether demand moved enough since the last announcement to announce again early: some model's requests
    per minute changed by at least half of what was announced, and by at least one request in the 5-minute
    window (0.2/min). A rush or a lull is announced; the jitter of a steady rate is not."""
    for name in set(announced) | set(now):
        old, new = announced.get(name, 0.0), now.get(name, 0.0)
        if abs(new - old) >= max(0.2, 0.5 * old) - 1e-9:
            return True
    return False


def demand_of(model: Any) -> dict[str, Any]:
    """A served model's demand for its announcement entry: requests per minute (HTTP and NIP-90 together)."""
    rates = model.demand.per_minute() if getattr(model, "demand", None) is not None else {"total": 0.0}
    return {"requests_per_minute": rates["total"]}


def pricing_of(config: Any) -> dict[str, Any]:
    """What the node charges (payments.*), as announced: free unless payments.require_payment."""
    p = config.payments
    return {
        "msats_per_job": p.price_msats_per_job,
        "msats_per_1k_tokens": p.price_msats_per_1k_tokens,
        "required": bool(p.require_payment),
    }
