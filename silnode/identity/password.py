"""A weak-password heuristic for the keystore password (warn, never refuse: scripts may choose otherwise).

The keystore is only as strong as its password once the file is copied off the machine: Argon2id makes each
guess cost ~0.2 s and 128 MiB, which stops a million-word list but not a six-letter password. The estimate
is deliberately simple (no dictionary download): character classes × length, minus repeats and sequences,
plus a short list of passwords that top every leak list.
"""

from __future__ import annotations

import itertools
import math
import string

MIN_LENGTH = 12
MIN_BITS = 50.0  # ~1e15 guesses; at Argon2id cost that is out of reach of one GPU rig for decades

COMMON = {
    "password",
    "passw0rd",
    "123456",
    "12345678",
    "123456789",
    "1234567890",
    "qwerty",
    "qwertyuiop",
    "letmein",
    "iloveyou",
    "admin",
    "welcome",
    "monkey",
    "dragon",
    "abc123",
    "111111",
    "000000",
    "silnode",
    "changeme",
    "secret",
    "bitcoin",
    "nostr",
    "trustno1",
    "football",
    "baseball",
    "sunshine",
}


def estimate_bits(password: str) -> float:
    """Rough entropy in bits: log2(alphabet size) per character, counting repeated/sequential runs once."""
    if not password:
        return 0.0
    pool = 0
    if any(c in string.ascii_lowercase for c in password):
        pool += 26
    if any(c in string.ascii_uppercase for c in password):
        pool += 26
    if any(c in string.digits for c in password):
        pool += 10
    if any(c in string.punctuation or c == " " for c in password):
        pool += 33
    if any(ord(c) > 127 for c in password):
        pool += 100
    # characters that repeat or continue a sequence of the previous one add little
    effective = 1.0
    for prev, cur in itertools.pairwise(password):
        effective += 0.25 if abs(ord(cur) - ord(prev)) <= 1 else 1.0
    return effective * math.log2(max(pool, 2))


def password_warnings(password: str) -> list[str]:
    """Reasons this password is weak, as one-line messages (empty list: no warning). Never echoes it."""
    if not password:
        return ["the password is empty: anyone with the file can read the recovery phrase"]
    out: list[str] = []
    lowered = password.lower()
    stripped = lowered.rstrip(string.digits + string.punctuation)
    if lowered in COMMON or stripped in COMMON:
        out.append("the password is one of the most common passwords")
    if len(password) < MIN_LENGTH:
        out.append(f"the password has {len(password)} characters; use at least {MIN_LENGTH} (a few random words)")
    bits = estimate_bits(password)
    if bits < MIN_BITS and not out:
        out.append(
            f"the password is guessable (about {bits:.0f} bits; aim for {MIN_BITS:.0f}+): "
            "use a longer one or mix letters, digits and symbols"
        )
    return out


def is_weak(password: str) -> bool:
    return bool(password_warnings(password))
