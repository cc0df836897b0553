"""The dashboard in headless Chromium: it shows the node's models, and values that change live while a
transfer runs (its progress bar) and while a request is served (the request counter). The DOM is asserted;
the screenshot is only an artefact (tmp_path/dashboard.png)."""

from __future__ import annotations

import pytest
from browser import Browser
from ggufgen import make_sized_gguf
from nodes import peer_of, share

from silnode.api import make_app

pytestmark = pytest.mark.timeout(240)

ROW = """[...document.querySelectorAll('{table} tbody tr')].map(r => [...r.cells].map(c => c.innerText))"""


async def test_dashboard_shows_models_and_live_transfer_and_requests(make_node, tiny_gguf, tmp_path, aiohttp_client):
    big = make_sized_gguf(tmp_path / "big.gguf", 48 << 20)
    # the seeder sends 8 MiB/s: the download takes seconds, so the page must show it moving
    a = await make_node("a", **{"network.upload_rate_limit": 8 << 20})
    shared = await share(a, big, "alice/big")
    b = await make_node("b")
    task = b.models.import_file(str(tiny_gguf), "test/tiny", license="mit")
    await b.tasks.wait(task)
    await b.serving.load("test/tiny")
    client = await aiohttp_client(make_app(b))
    url = f"http://127.0.0.1:{client.server.port}"

    async with Browser() as browser:
        await browser.goto(url + "/")
        await browser.wait_for("document.body.dataset.ready === '1'", "the first refresh")
        models = await browser.eval(ROW.format(table="#models"))
        assert ["test/tiny"] == [r[0] for r in models]
        assert models[0][5] == "ready"  # serving
        serving = await browser.eval(ROW.format(table="#serving"))
        assert serving[0][:3] == ["test/tiny", "ready", "CPU"] and serving[0][3] == "0"
        assert "ok" not in (await browser.eval("document.getElementById('banner').innerText"))

        # a transfer: its progress as the page shows it, sampled until it is done
        await b.distribution.download(shared["magnet"], peers=(peer_of(a),))
        seen: list[str] = []
        progress = "[...document.querySelectorAll('#transfers tbody tr')].filter(r => r.cells[0].innerText === 'alice/big').map(r => r.cells[2].innerText + ' ' + r.querySelector('.progress')?.innerText)[0] || ''"
        while True:
            now = await browser.wait_for(progress, "the transfer's row")
            if not seen or seen[-1] != now:
                seen.append(now)
            if now.startswith("seeding"):
                break
            assert len(seen) < 10_000
            await browser.wait_for(f"({progress}) !== {now!r}", "the transfer's row to change", timeout=120)
        moving = [s for s in seen if s.startswith("downloading") and not s.endswith(" 100.0 %")]
        assert len({s for s in moving}) >= 2, seen  # the bar moved while the page watched
        assert seen[-1] == "seeding 100.0 %"
        await browser.wait_for(
            "[...document.querySelectorAll('#models tbody tr')].some(r => r.cells[0].innerText === 'alice/big' && r.cells[4].innerText === 'seeding')",
            "the downloaded model listed as seeding",
        )

        # a request: the counter goes up on the page
        r = await client.post("/v1/completions", json={"model": "test/tiny", "prompt": "the", "max_tokens": 4})
        assert r.status == 200
        await browser.wait_for(
            "document.querySelector('#serving tbody tr').cells[3].innerText === '1'", "the request counter to show 1"
        )
        await browser.screenshot(tmp_path / "dashboard.png")
    assert (tmp_path / "dashboard.png").stat().st_size > 1000
