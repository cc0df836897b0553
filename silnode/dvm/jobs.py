"""NIP-90 kind-5050 job requests: what a request event says, checked, and the generation it asks for.

A request carries ``i`` tags (the input: types text, prompt, url, event, job), ``param`` tags (model,
max_tokens, temperature, top_k | top-k, top_p | top-p, frequency_penalty, presence_penalty, repeat_penalty,
min_p, seed, and JSON-valued response_format and stop, as /v1 takes them), ``bid`` (msats), ``relays`` and
``p`` (the providers it is meant for). An encrypted request (``["encrypted"]``) carries its ``i`` and
``param`` tags as a JSON array in the content, encrypted to the provider with NIP-44 v2 or NIP-04; the
answer uses the same scheme. Anything wrong raises :class:`JobRejected` with the reason the customer reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from nostr_sdk import Event, Keys, PublicKey

from silnode.errors import InvalidGenerationRequest, JobRejected
from silnode.serving.request import GenerationRequest

JOB_KIND = 5050
RESULT_KIND = 6050
FEEDBACK_KIND = 7000
DELETION_KIND = 5
INPUT_TYPES = ("text", "prompt", "url", "event", "job")
# param name -> GenerationRequest field; both spellings of top-k/top-p are in use (kinds/5050.md vs nostrdvm)
PARAMS = {
    "model": "model",
    "max_tokens": "max_tokens",
    "temperature": "temperature",
    "top_k": "top_k",
    "top-k": "top_k",
    "top_p": "top_p",
    "top-p": "top_p",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "repeat_penalty": "repeat_penalty",
    "min_p": "min_p",
    "seed": "seed",
    # JSON-valued, as in the OpenAI API: the same structured output and stop strings a /v1 caller gets
    "response_format": "response_format",
    "stop": "stop",
}
JSON_PARAMS = {"response_format", "stop"}
INTEGER_PARAMS = {"max_tokens", "top_k", "seed"}
MAX_INPUTS = 8


@dataclass
class Job:
    event: Event
    id: str
    customer: str  # hex pubkey
    inputs: list[list[str]]  # the i tags: [data, type, relay?, marker?]
    params: dict[str, str]
    bid: int | None = None
    relays: list[str] = field(default_factory=list)
    encryption: str | None = None  # "nip44" | "nip04" | None
    targets: list[str] = field(default_factory=list)  # the p tags
    cashu: str | None = None  # a ["cashu", token] prepayment (NIP-90 allows it; best sent encrypted)
    max_tokens: int = 0  # what the job may generate, set once its request is built: the price's token part

    @property
    def customer_pk(self) -> PublicKey:
        return self.event.author()

    @property
    def model(self) -> str | None:
        return self.params.get("model")


def tags_of(event: Event) -> list[list[str]]:
    return [t.to_vec() for t in event.tags()]


def decrypt(keys: Keys, author: PublicKey, content: str) -> tuple[str, str]:
    """(plaintext, scheme): NIP-44 v2 first (the better scheme; nips PR #1407), then NIP-04."""
    for scheme, fn in (("nip44", keys.nip44_decrypt), ("nip04", keys.nip04_decrypt)):
        try:
            return fn(author, content), scheme
        except Exception:  # nostr-sdk raises NostrSdkError.Generic for a scheme that does not fit
            continue
    raise JobRejected("cannot decrypt the request: it is neither NIP-44 nor NIP-04 encrypted to this provider")


def encrypt(keys: Keys, to: PublicKey, text: str, scheme: str) -> str:
    return keys.nip44_encrypt(to, text) if scheme == "nip44" else keys.nip04_encrypt(to, text)


def parse(event: Event, keys: Keys, *, max_input_bytes: int) -> Job:
    """The request as a :class:`Job`, or JobRejected naming what is wrong."""
    if event.kind().as_u16() != JOB_KIND:
        raise JobRejected(f"this provider answers kind {JOB_KIND} (text generation), not {event.kind().as_u16()}")
    tags = tags_of(event)
    encryption = None
    if any(t and t[0] == "encrypted" for t in tags):
        plain, encryption = decrypt(keys, event.author(), event.content())
        try:
            inner = json.loads(plain)
        except ValueError:
            raise JobRejected("the decrypted content is not a JSON array of tags") from None
        if not (
            isinstance(inner, list) and all(isinstance(t, list) and all(isinstance(x, str) for x in t) for t in inner)
        ):
            raise JobRejected("the decrypted content must be a JSON array of tags (lists of strings)")
        if any(t and t[0] == "i" for t in tags):
            raise JobRejected("an encrypted request must not carry a clear-text 'i' tag")
        tags = tags + inner
    inputs, params, relays, targets, bid, cashu = [], {}, [], [], None, None
    for t in tags:
        if not t:
            continue
        name = t[0]
        if name == "i":
            inputs.append(t[1:])
        elif name == "param":
            if len(t) < 3:
                raise JobRejected("a 'param' tag needs a name and a value")
            params[t[1]] = t[2]
        elif name == "bid":
            if len(t) < 2 or not t[1].isdigit():
                raise JobRejected("'bid' must be a whole number of millisatoshis")
            bid = int(t[1])
        elif name == "cashu" and len(t) > 1:
            cashu = t[1]
        elif name == "relays":
            relays += [r for r in t[1:] if r.startswith(("wss://", "ws://"))]
        elif name == "p" and len(t) > 1:
            targets.append(t[1])
    if not inputs:
        raise JobRejected("the request has no input: add an ['i', <prompt>, 'text'] tag")
    if len(inputs) > MAX_INPUTS:
        raise JobRejected(f"at most {MAX_INPUTS} inputs per request")
    size = 0
    for i in inputs:
        if len(i) < 2 or not i[0].strip():
            raise JobRejected("an 'i' tag needs data and a type: ['i', <data>, <type>]")
        if i[1] not in INPUT_TYPES:
            raise JobRejected(f"unknown input type {i[1]!r}; this provider takes {', '.join(INPUT_TYPES)}")
        size += len(i[0].encode())
    if size > max_input_bytes:
        raise JobRejected(f"the input is {size} bytes; this provider takes at most {max_input_bytes}")
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise JobRejected(f"unknown param(s) {', '.join(unknown)}; known: {', '.join(sorted(PARAMS))}")
    return Job(
        event, event.id().to_hex(), event.author().to_hex(), inputs, params, bid, relays, encryption, targets, cashu
    )


def _number(name: str, text: str, integer: bool) -> Any:
    try:
        return int(text) if integer else float(text)
    except ValueError:
        raise JobRejected(
            f"param {name} must be {'an integer' if integer else 'a number'}, not {text[:40]!r}"
        ) from None


def _json_param(name: str, value: str) -> Any:
    """``response_format`` is a JSON object (OpenAI's shape); ``stop`` a JSON array of strings or one plain string."""
    try:
        parsed = json.loads(value)
    except ValueError:
        if name == "stop":
            return value  # a bare stop string
        raise JobRejected(f'param {name} must be JSON, e.g. {{"type": "json_object"}}') from None
    if name == "response_format" and not isinstance(parsed, dict):
        raise JobRejected('param response_format must be a JSON object, e.g. {"type": "json_object"}')
    if name == "stop" and isinstance(parsed, list):
        return tuple(parsed)
    return parsed


def generation(job: Job, prompt: str, *, chat: bool, max_tokens_cap: int, default_max: int) -> GenerationRequest:
    """The neutral generation request for ``prompt`` with the job's params (range checks: the request's)."""
    kw: dict[str, Any] = {"stream": True}
    for name, value in job.params.items():
        target = PARAMS[name]
        if target == "model":
            continue
        if target in JSON_PARAMS:
            kw[target] = _json_param(name, value)
            continue
        kw[target] = _number(name, value, target in INTEGER_PARAMS)
    max_tokens = kw.get("max_tokens", default_max)
    if isinstance(max_tokens, int) and max_tokens > max_tokens_cap:
        raise JobRejected(f"max_tokens {max_tokens} is over this provider's limit of {max_tokens_cap}")
    kw["max_tokens"] = max_tokens
    try:
        if chat:
            return GenerationRequest.chat([{"role": "user", "content": prompt}], **kw)
        return GenerationRequest.completion(prompt, **kw)
    except InvalidGenerationRequest as exc:
        raise JobRejected(f"param {exc.details.get('param')}: {exc.message}") from None
