"""Child of test_lan_only, run in its own network namespace (`unshare -n`) where lo also carries the public
address 11.0.0.1: a seeder listens there, a leecher dials it with network.lan_only on or off.

usage: lan_only_child.py on|off DATA_DIR   -> prints "done" or "no-peer"
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from torrent_helpers import LOOPBACK, file_record, random_file  # noqa: E402

from silnode.torrent.create import make_torrent  # noqa: E402
from silnode.torrent.events import TorrentFinished  # noqa: E402
from silnode.torrent.session import TorrentSession  # noqa: E402

PUBLIC = "11.0.0.1"  # not in any private, loopback or link-local range


async def main(mode: str, data: Path) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", f"{PUBLIC}/32", "dev", "lo"], check=True)
    src = random_file(data / "seed" / "m.gguf", 2 << 20, seed=4)
    torrent = make_torrent(src.parent, [file_record(src)])
    seeder = TorrentSession(replace(LOOPBACK, listen_address=PUBLIC))
    leecher = TorrentSession(replace(LOOPBACK, lan_only=mode == "on"))
    await seeder.start()
    await leecher.start()
    try:
        await seeder.add_seed(torrent, src.parent)
        finished = leecher.expect(lambda e: isinstance(e, TorrentFinished))
        await leecher.add_download(torrent, data / "leech", peers=[f"{PUBLIC}:{seeder.listen_port()}"])
        tid = leecher.ids()[0]
        try:
            await asyncio.wait_for(finished, 10)  # 2 MiB on loopback takes well under a second
            print("done")
        except asyncio.TimeoutError:
            print("no-peer" if leecher.status(tid).num_peers == 0 and seeder.all_status()[0].num_peers == 0 else "?")
    finally:
        await leecher.stop()
        await seeder.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
