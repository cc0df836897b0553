"""`silnode dashboard` and `silnode dashboard login` against a real daemon: the read-only URL, and a one-time
login link that sets an HttpOnly, SameSite=Strict session cookie once and is refused the second time."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from daemons import run_cli, start_daemon, stop_daemon

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # keep the 303 and its Set-Cookie for the test to read
        return None


def test_dashboard_login_link_works_once(clean_env):
    d = start_daemon(clean_env)
    try:
        url = json.loads(run_cli(clean_env, "dashboard", "--json").stdout)["url"]
        assert url == f"{d.url}/"
        link = json.loads(run_cli(clean_env, "dashboard", "login", "--json").stdout)
        assert link["expires_in"] == 120 and link["url"].startswith(f"{d.url}/login?code=")
        assert d.token not in link["url"]
        human = run_cli(clean_env, "dashboard", "login").stdout
        assert human.startswith(f"{d.url}/login?code=") and "it works once" in human

        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as first:
            opener.open(link["url"], timeout=30)
        assert first.value.code == 303 and first.value.headers["Location"] == "/"
        cookie = first.value.headers["Set-Cookie"]
        first.value.close()
        assert cookie.startswith("silnode_session=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        with pytest.raises(urllib.error.HTTPError) as again:
            opener.open(link["url"], timeout=30)
        assert again.value.code == 401
        assert "used already or has expired" in json.loads(again.value.read())["error"]
        again.value.close()
    finally:
        stop_daemon(d)
