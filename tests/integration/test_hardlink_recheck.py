"""A hardlinked import shares its bytes with the user's original file: an edit there is caught on start
(size, mtime or inode changed -> full recheck before seeding) instead of being served to peers."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest
from nodes import big_gguf, share

pytestmark = pytest.mark.timeout(180)


async def _settled(node, name: str) -> str:
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        m = node.store.read_manifest(name)
        if m.state == "damaged":
            return "damaged"
        tid = m.infohash
        if tid in node.distribution.seeds and tid not in getattr(node.distribution, "_rechecking", ()):
            st = node.distribution.session.status(tid)
            if st.progress >= 1.0 and st.state not in ("checking_files", "checking_resume_data"):
                return "seeding"
        assert asyncio.get_running_loop().time() < deadline, "the model never settled after the restart"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("edit", [False, True])
async def test_edit_through_the_original_path_is_rechecked_on_start(make_node, tmp_path, edit):
    (tmp_path / "user").mkdir()
    original = big_gguf(tmp_path / "user" / "m.gguf", 4 << 20, seed=6)
    a = await make_node("a")
    await share(a, original, "alice/m")
    stored = a.store.model_dir("alice/m") / "m.gguf"
    assert os.stat(stored).st_ino == os.stat(original).st_ino  # hardlinked
    await a.stop()
    if edit:  # the user edits their file in place: same size, other bytes
        with open(original, "r+b") as fh:
            fh.seek(2 << 20)
            fh.write(b"\x00" * 4096)
    else:  # control: the file is only read
        shutil.copy(original, tmp_path / "copy.gguf")
    a2 = await make_node("a")
    assert await _settled(a2, "alice/m") == ("damaged" if edit else "seeding")
    if edit:
        assert not a2.distribution.is_seeding("alice/m")
        assert "bad or missing" in a2.store.read_manifest("alice/m").problems[0]
