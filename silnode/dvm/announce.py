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


def content(
    *, name: str, about: str, models: list[dict[str, Any]], catalog_magnet: str | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "about": about,
        "software": f"silnode {__version__}",
        "models": models,  # [{"name", "context", "price_msats"}]
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
