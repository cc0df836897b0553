#!/usr/bin/env python3
"""Benchmark: keystore unlock time with silnode's Argon2id parameters vs the anchors' parameters.

    python bench/identity_unlock.py [--repeat 7] [--json]

Writes one keystore per parameter set into a temp dir and times ``Keystore.unlock`` end to end (read,
Argon2id, SecretBox decrypt, BIP39 PBKDF2 seed, NIP-06 + SLIP-0010 derivations), median of ``--repeat``,
and the bare Argon2id ``hash_secret_raw`` alone. Anchors, run side by side in the same process:

- mesh-llm owner keystore: Argon2id m=19456 KiB, t=2, p=1 (+ ChaCha20-Poly1305)
- OpenAgents compute secure_store: argon2 crate defaults = the same m=19456 KiB, t=2, p=1 (+ AES-256-GCM)
- RFC 9106 §4 second recommended option (t=3, m=64 MiB, p=4), for reference

Ratios are silnode / anchor: time per unlock (= the attacker's time per guess on this CPU) and memory per
guess (what limits GPU/ASIC guessing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
try:
    import silnode  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT))

from silnode.identity import mnemonic
from silnode.identity.keystore import ANCHOR_KDF, DEFAULT_KDF, KdfParams, Keystore

SETS = [
    ("silnode default", DEFAULT_KDF),
    ("mesh-llm / OpenAgents", ANCHOR_KDF),
    ("RFC 9106 low-memory", KdfParams(time_cost=3, memory_cost=64 * 1024, parallelism=4)),
]
PASSWORD = "bench password, not a secret"


def median_time(n: int, fn) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7, help="runs per parameter set (median reported)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    a = ap.parse_args()

    phrase = mnemonic.generate(12)
    rows = []
    with tempfile.TemporaryDirectory(prefix="silnode-bench-") as tmp:
        for label, kdf in SETS:
            ks = Keystore(Path(tmp) / f"{label.split()[0]}.enc", kdf=kdf)
            ks.create(phrase, "", PASSWORD)
            ks.unlock(PASSWORD)  # warm-up (imports, page cache)
            unlock = median_time(a.repeat, lambda ks=ks: ks.unlock(PASSWORD))
            kdf_only = median_time(a.repeat, lambda kdf=kdf: kdf.derive(PASSWORD, os.urandom(16)))
            rows.append(
                {
                    "label": label,
                    "time_cost": kdf.time_cost,
                    "memory_kib": kdf.memory_cost,
                    "parallelism": kdf.parallelism,
                    "unlock_s": unlock,
                    "argon2_s": kdf_only,
                }
            )

    ours, anchor = rows[0], rows[1]
    for r in rows:
        r["silnode_unlock_ratio"] = ours["unlock_s"] / r["unlock_s"]
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "rows": rows,
        "ratios": {
            "unlock_time_silnode_vs_anchor": ours["unlock_s"] / anchor["unlock_s"],
            "argon2_time_silnode_vs_anchor": ours["argon2_s"] / anchor["argon2_s"],
            "memory_silnode_vs_anchor": ours["memory_kib"] / anchor["memory_kib"],
            "unlock_time_silnode_vs_rfc9106": ours["unlock_s"] / rows[2]["unlock_s"],
        },
    }
    if a.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"keystore unlock, median of {a.repeat} ({os.cpu_count()} CPUs, Python {platform.python_version()})")
    print(f"{'parameters':24} {'t':>2} {'m (MiB)':>8} {'p':>2} {'unlock':>10} {'argon2id':>10} {'silnode/this':>13}")
    for r in rows:
        ratio = ours["unlock_s"] / r["unlock_s"]
        print(
            f"{r['label']:24} {r['time_cost']:>2} {r['memory_kib'] / 1024:>8.1f} {r['parallelism']:>2} "
            f"{r['unlock_s'] * 1000:>8.1f}ms {r['argon2_s'] * 1000:>8.1f}ms {ratio:>12.2f}x"
        )
    q = result["ratios"]
    print(
        f"silnode vs mesh-llm/OpenAgents: {q['unlock_time_silnode_vs_anchor']:.1f}x unlock time, "
        f"{q['argon2_time_silnode_vs_anchor']:.1f}x Argon2id time, {q['memory_silnode_vs_anchor']:.1f}x memory per guess"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
