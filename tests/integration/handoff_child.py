"""Child process for test_crash_handoff: a node that downloads MAGNET and SIGKILLs itself at STEP.

usage: handoff_child.py HOME MAGNET STEP
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import silnode.store as store_mod
from silnode.config import load_config
from silnode.distribution import DistributionService
from silnode.node import Node


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(step: str) -> None:
    if step == "resume-saved":  # every piece recorded, the torrent written, libtorrent let go of the files

        async def adopt_dies(self, t, tdata):
            die()

        DistributionService._adopt = adopt_dies  # type: ignore[method-assign]
    elif step == "sha256":  # in the middle of the store's SHA-256 pass

        def hashing(*_a, **_kw):
            die()

        store_mod.sha256_file = hashing
    elif step == "move":  # files staged in partial/<id>.adopt, not yet in models/

        def place(self, work, name):
            die()

        store_mod.Store._place = place  # type: ignore[method-assign]
    elif step == "placed":  # the model is in models/, the transfer still recorded as running
        real_place = store_mod.Store._place

        def place_then_die(self, work, name):
            real_place(self, work, name)
            die()

        store_mod.Store._place = place_then_die  # type: ignore[method-assign]
    elif step == "state":  # transfer done in memory, its record not yet saved
        real_save = DistributionService._save_state

        def save(self):
            if any(t.state == "done" for t in self.transfers.values()):
                die()
            real_save(self)

        DistributionService._save_state = save  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown step {step}")


async def main(home: Path, target: str, step: str) -> None:
    cfg = load_config(home, overrides={"daemon.port": 0, "storage.min_free_bytes": 0})
    node = Node(cfg)
    await node.start()
    arm(step)
    t = await node.distribution.download(target, name="bob/m", force=True)
    await asyncio.wait_for(node.distribution.wait(t.id), 120)
    print("NOT KILLED", t.state, t.error, flush=True)
    await node.stop()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3]))
