"""The dashboard of a node that sells on Nostr, in headless Chromium: read-only without a login (no action
buttons, actions refused); its relays and NIP-89 announcement; the jobs chart showing a real NIP-90 job that
ran; a one-time login link that sets an HttpOnly, SameSite=Strict cookie, after which an action (stop selling)
works from the page; the same link a second time fails; the admin token never reaches the page. The CSRF
rules (Origin required and checked for cookie-authenticated actions) and link expiry are checked directly."""

from __future__ import annotations

import pytest
from browser import Browser
from dvm_helpers import TINY
from nostr_sdk import PublicKey

from silnode.api import make_app
from silnode.api.security import LOGIN_TTL_S, Logins

pytestmark = pytest.mark.timeout(240)

ROWS = "[...document.querySelectorAll('{table} tbody tr')].map(r => [...r.cells].map(c => c.innerText))"
READY = "location.pathname === '/' && document.body.dataset.ready === '1'"


async def test_dashboard_read_only_then_login_chart_and_action(seller, customer, aiohttp_client, tmp_path):
    client = await aiohttp_client(make_app(seller))
    base = f"http://127.0.0.1:{client.server.port}"
    token = seller.config.token_file.read_text().strip()
    relay = seller.dvm.pool.embedded.url

    async with Browser() as browser:
        await browser.goto(base + "/")
        await browser.wait_for(READY, "the first refresh")
        assert "read-only" in await browser.eval("document.getElementById('login').innerText")
        assert await browser.eval("document.querySelectorAll('button[data-action]').length") == 0
        relays = await browser.wait_for(ROWS.format(table="#relays"), "the relays table")
        assert relays == [[relay.rstrip("/"), "connected", "yes"]] or relays == [[relay, "connected", "yes"]]
        announced = await browser.wait_for(
            "document.getElementById('announcement').innerText.startsWith('NIP-89') && "
            "document.getElementById('announcement').innerText",
            "the NIP-89 announcement",
        )
        assert announced.endswith(f": {TINY}")
        # the chart before any job: 30 empty minutes
        assert (
            await browser.eval("[...document.querySelectorAll('#chart-jobs rect')].map(r => +r.dataset.value)")
            == [0] * 30
        )

        # a real NIP-90 job runs; the chart's current minute shows it, live
        reply = await customer.ask(
            "hello",
            provider=PublicKey.parse(seller.identity.nostr.pubkey_hex),
            params={"model": TINY, "max_tokens": "4"},
        )
        assert reply["text"]
        await browser.wait_for(
            "document.querySelector('#chart-jobs rect[data-minute=\"0\"]').dataset.value === '1'",
            "the chart to show the job",
        )
        assert await browser.eval("document.getElementById('activity-total').innerText") == (
            "1 job(s), 0 sat earned in the last 30 minutes"
        )
        # demand: 1 request in the 5-minute window (the serving table may be one refresh behind the chart)
        await browser.wait_for("document.querySelector('#serving .demand').innerText === '0.2'", "the demand cell")

        # read-only: an action without a login is refused
        r = await client.post("/api/v1/dvm/sell", json={"sell": False})
        assert r.status == 401

        # a one-time login link (what `silnode dashboard login` prints)
        r = await client.post("/api/v1/dashboard/login", headers={"Authorization": f"Bearer {token}"})
        link = (await r.json())["url"]
        assert link.startswith(f"{base}/login?code=") and token not in link
        await browser.goto(link)
        await browser.wait_for(READY + " && document.getElementById('login').innerText === 'logged in'", "the login")
        cookies = (await browser.send("Network.getAllCookies"))["cookies"]
        (cookie,) = [c for c in cookies if c["name"] == "silnode_session"]
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
        assert "silnode_session" not in await browser.eval("document.cookie")  # HttpOnly: scripts cannot read it
        assert token not in await browser.eval("document.documentElement.outerHTML")

        # an action from the page: stop selling
        await browser.wait_for(
            "!!document.querySelector('button[data-action=\"sell-off\"]')", "the Stop selling button"
        )
        await browser.eval("document.querySelector('button[data-action=\"sell-off\"]').click()")
        await browser.wait_for("document.getElementById('action-result').dataset.last === 'ok'", "the action")
        assert seller.dvm.state == "off"
        await browser.wait_for("document.getElementById('selling-state').innerText === 'off'", "the page to show it")
        await browser.screenshot(tmp_path / "dashboard-login.png")

        # the same link again: refused, and it names the way out
        r = await client.get(link.removeprefix(base), allow_redirects=False)
        assert r.status == 401
        body = await r.json()
        assert "used already or has expired" in body["error"] and "silnode dashboard login" in body["hint"]

        # CSRF: the cookie alone does not make an action; the browser's Origin (ours) must come with it
        sid = cookie["value"]
        jar = {"Cookie": f"silnode_session={sid}"}
        r = await client.post("/api/v1/dvm/sell", json={"sell": True}, headers=jar)
        assert r.status == 403  # no Origin: not our page
        r = await client.post("/api/v1/dvm/sell", json={"sell": True}, headers={**jar, "Origin": "http://evil.example"})
        assert r.status == 403
        r = await client.post("/api/v1/dvm/sell", json={"sell": True}, headers={**jar, "Origin": base})
        assert r.status == 200 and seller.dvm.state == "selling"
        # logging out ends the session: the cookie no longer counts
        r = await client.post("/api/v1/dashboard/logout", headers={**jar, "Origin": base})
        assert r.status == 200
        r = await client.post("/api/v1/dvm/sell", json={"sell": False}, headers={**jar, "Origin": base})
        assert r.status == 401
    assert (tmp_path / "dashboard-login.png").stat().st_size > 1000


def test_login_links_work_once_and_expire():
    now = [1000.0]
    logins = Logins(clock=lambda: now[0])
    code = logins.issue()
    sid = logins.redeem(code)
    assert sid and logins.valid(sid)
    assert logins.redeem(code) is None  # single use
    late = logins.issue()
    now[0] += LOGIN_TTL_S + 1
    assert logins.redeem(late) is None  # expired
    assert logins.redeem("made-up") is None and not logins.valid("made-up") and not logins.valid(None)
    now[0] += 13 * 3600
    assert not logins.valid(sid)  # sessions end too
